"""The app as gunicorn serves it, plus two yardsticks to compare it with (benchmarks only).

``/bare`` is Flask alone. ``/minimal`` is the least a WeCom callback can cost here: verify the signature,
decrypt, and one durable insert (SQLite, WAL, synchronous FULL, like the app's database), then answer.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from flask import request

from app import create_app
from bot.crypto import CallbackCrypto
from bot.wecom import crypto as wc

app = create_app()
_wecom = app.extensions["pointsbot"].settings.wecom
_crypto = CallbackCrypto(_wecom["token"], _wecom["encoding_aes_key"], [_wecom["corp_id"]])
_db: dict[int, sqlite3.Connection] = {}


def _connection() -> sqlite3.Connection:
    """One connection per worker process, opened after gunicorn forked it."""
    conn = _db.get(os.getpid())
    if conn is None:
        path = Path(os.environ["POINTSBOT_CONFIG"]).parent / "minimal.db"
        conn = _db[os.getpid()] = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS seen (id INTEGER PRIMARY KEY, at REAL, body TEXT)")
    return conn


@app.get("/bare")
def bare() -> str:
    return "ok"


@app.post("/minimal")
def minimal() -> str:
    plaintext = wc.decrypt_post(request.args, request.get_data(), _crypto, time.time, 300)
    conn = _connection()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO seen (at, body) VALUES (?, ?)", (time.time(), plaintext[:200]))
    conn.execute("COMMIT")
    return "success"
