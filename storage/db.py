"""Engine and sessions. Callers open one session per request or job (never inside a service).

SQLite is made safe for a ledger here (reliability.md §1.4): pysqlite's implicit transactions are
switched off and every transaction starts with ``BEGIN IMMEDIATE``, so a read-then-write cannot
run its read outside the transaction or fail on a stale snapshot; WAL and ``busy_timeout`` let
writers queue instead of erroring.
"""
from __future__ import annotations

import random
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

Clock = Callable[[], datetime]
BUSY_TIMEOUT_MS = 5000


def utcnow() -> datetime:
    """Naive UTC: every timestamp in the database is UTC without tzinfo (portable across engines)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: the 2 MiB default thrashes on a million lots
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        begin_immediate(conn.connection.dbapi_connection)


def begin_immediate(dbapi_conn, wait_seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Take SQLite's write lock, waiting up to ``wait_seconds`` (the busy_timeout) in fine steps.

    SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries, so several web workers
    queueing for the lock lose most of their time asleep; polling every 0.2–1 ms keeps the lock busy
    instead of idle. Once held, busy_timeout=5000 applies to everything else in the transaction.
    """
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.0002, 0.001))
    finally:
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 4) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_pragmas(engine, sqlite_synchronous)
        return engine
    kwargs: dict = {"pool_size": pool_size, "max_overflow": 4, "pool_pre_ping": True}
    if parsed.get_backend_name() == "mysql":
        kwargs["isolation_level"] = "READ COMMITTED"
        kwargs["connect_args"] = {"charset": "utf8mb4"}
    return create_engine(url, **kwargs)


class Database:
    """Holds the engine and the session factory; ``session_scope`` is the one way to a transaction."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", clock: Clock = utcnow) -> None:
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.clock = clock

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        session = self.sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def create_all(self) -> None:
        from storage.models import Base

        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
