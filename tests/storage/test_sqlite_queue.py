"""SQLite writers queue for the write lock on a lock file (storage.db.QueuedConnection)."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Database, QueuedConnection


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    db.dispose()
    return tmp_path / "q.db"


def _writer(path: Path, hold_s: float, log: list[tuple[str, float]], name: str) -> None:
    db = Database(f"sqlite:///{path}")
    try:
        with db.session_scope() as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
            log.append((f"{name} in", time.monotonic()))
            time.sleep(hold_s)
            log.append((f"{name} out", time.monotonic()))
    finally:
        db.dispose()


def test_connections_are_queued_and_use_a_lock_file_beside_the_database(path: Path) -> None:
    db = Database(f"sqlite:///{path}")
    with db.session_scope() as s:
        raw = s.connection().connection.dbapi_connection
        assert isinstance(raw, QueuedConnection)
        assert raw.lock_path == str(path.resolve()) + "-writelock"
        assert raw._has_turn  # taken by BEGIN IMMEDIATE
    assert not raw._has_turn  # given back by COMMIT
    db.dispose()


def test_a_writer_waits_for_the_turn_and_goes_once_it_is_given_back(path: Path) -> None:
    """Order, not speed: how fast the turn is handed over is bench/ledger.py's to measure (a bound on
    the delay here failed on a loaded machine)."""
    holder = sqlite3.connect(path, factory=QueuedConnection)
    holder.lock_path = str(path.resolve()) + "-writelock"
    holder.take_turn()  # the turn only: SQLite's own lock stays free
    log: list[tuple[str, float]] = []
    worker = threading.Thread(target=_writer, args=(path, 0.0, log, "b"))
    worker.start()
    time.sleep(0.3)
    assert log == []  # queued behind the turn, although SQLite would have let it in
    released = time.monotonic()
    holder.give_turn()
    worker.join(10)
    assert [n for n, _ in log] == ["b in", "b out"]
    assert log[0][1] >= released  # it went in only after the turn was given back
    holder.close()


def test_two_writers_take_turns(path: Path) -> None:
    log: list[tuple[str, float]] = []
    first = threading.Thread(target=_writer, args=(path, 0.3, log, "a"))
    first.start()
    while not log:
        time.sleep(0.005)
    second = threading.Thread(target=_writer, args=(path, 0.0, log, "b"))
    second.start()
    first.join(10)
    second.join(10)
    assert [n for n, _ in log] == ["a in", "a out", "b in", "b out"]


def test_a_rolled_back_writer_gives_the_turn_back(path: Path) -> None:
    db = Database(f"sqlite:///{path}")
    with pytest.raises(RuntimeError):
        with db.session_scope() as s:
            s.execute(text("INSERT INTO t VALUES (2)"))
            raw = s.connection().connection.dbapi_connection
            raise RuntimeError("boom")
    assert not raw._has_turn
    log: list[tuple[str, float]] = []
    _writer(path, 0.0, log, "next")  # would block forever if the turn were still held
    assert [n for n, _ in log] == ["next in", "next out"]
    with db.session_scope() as s:
        assert s.execute(text("SELECT count(*) FROM t WHERE n = 2")).scalar() == 0
    db.dispose()


def test_a_nested_writer_in_the_same_thread_fails_instead_of_hanging(path: Path) -> None:
    outer, inner = Database(f"sqlite:///{path}"), Database(f"sqlite:///{path}")
    outcome: list[str] = []

    def nested() -> None:
        with outer.session_scope() as s:
            s.execute(text("INSERT INTO t VALUES (3)"))
            try:
                with inner.session_scope() as s2:
                    s2.execute(text("INSERT INTO t VALUES (4)"))
            except Exception as exc:  # noqa: BLE001 - what plain SQLite would raise
                outcome.append(type(exc).__name__)
    worker = threading.Thread(target=nested)
    worker.start()
    worker.join(20)
    assert not worker.is_alive()
    assert outcome == ["OperationalError"]  # "database is locked" after the busy wait
    outer.dispose()
    inner.dispose()


def test_a_process_that_dies_holding_the_turn_frees_it(path: Path) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        conn = sqlite3.connect(path, factory=QueuedConnection)
        conn.lock_path = str(path.resolve()) + "-writelock"
        conn.take_turn()
        os._exit(0)  # no commit, no close
    os.waitpid(pid, 0)
    log: list[tuple[str, float]] = []
    worker = threading.Thread(target=_writer, args=(path, 0.0, log, "after"))
    worker.start()
    worker.join(10)
    assert [n for n, _ in log] == ["after in", "after out"]


def test_a_scan_uses_a_small_page_cache_and_gives_the_connection_its_cache_back(sqlite_db) -> None:
    from sqlalchemy import text

    from storage.db import CACHE_KIB, SCAN_CACHE_KIB

    with sqlite_db.read_scope(scan=True) as s:
        assert s.execute(text("PRAGMA cache_size")).scalar() == -SCAN_CACHE_KIB
    with sqlite_db.read_scope() as s:
        assert s.execute(text("PRAGMA cache_size")).scalar() == -CACHE_KIB
