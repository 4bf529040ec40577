"""Engine and sessions. Callers open one session per request or job (never inside a service).

SQLite is made safe for a ledger here (docs/reliability.md §1.4): pysqlite's implicit transactions are
switched off and every transaction starts with ``BEGIN IMMEDIATE``, so a read-then-write cannot
run its read outside the transaction or fail on a stale snapshot; WAL and ``busy_timeout`` let
writers queue instead of erroring; ``QueuedConnection`` makes them queue in the kernel.
"""
from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from telemetry import LEDGER_TXNS

Clock = Callable[[], datetime]
BUSY_TIMEOUT_MS = 5000
CACHE_KIB = 65536  # each SQLite connection's page cache
SCAN_CACHE_KIB = 8192  # the page cache of a read_scope(scan=True)
CONNECT_TIMEOUT_S = 2
READ_ONLY = "pointsbot_read_only"  # execution option of Database.read_scope's sessions


_TXNS = "pointsbot_txns"  # session.info: (transaction, kind, n) of ledger transactions written in this session


def count_txns(s: Session, kind: str, n: int = 1) -> None:
    """Count ``n`` ledger transactions of ``kind`` in the metrics when, and only if, the session commits them:
    a savepoint rolled back (a domain error) or a rolled-back session counts nothing."""
    s.info.setdefault(_TXNS, []).append((s.get_nested_transaction() or s.get_transaction(), kind, n))


def _inside(trans: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while trans is not None:
        if trans is outer:
            return True
        trans = trans.parent
    return False


def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    noted = session.info.get(_TXNS)
    if noted:
        session.info[_TXNS] = [n for n in noted if not _inside(n[0], previous)] if previous.nested else []


def _count_committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: its work is not committed yet
        return
    for _, kind, n in session.info.pop(_TXNS, []):
        LEDGER_TXNS.labels(kind).inc(n)


def utcnow() -> datetime:
    """Naive UTC: every timestamp in the database is UTC without tzinfo (portable across engines)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _sqlite_pragmas(engine: Engine, synchronous: str, lock_path: str | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        if isinstance(dbapi_conn, QueuedConnection):
            dbapi_conn.lock_path = lock_path
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # 64 MiB: the 2 MiB default thrashes on a million lots
        cur.execute("PRAGMA temp_store=MEMORY")  # a savepoint's statement journal: RAM, not a temp file
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        raw = conn.connection.dbapi_connection
        if conn.get_execution_options().get(READ_ONLY):
            cur = raw.cursor()
            cur.execute("PRAGMA query_only=1")  # a write in a read scope fails instead of taking the lock
            cur.execute("BEGIN")
            cur.close()
        else:
            begin_immediate(raw)


_turns = threading.local()  # per thread: the lock files whose turn this thread holds


class QueuedConnection(sqlite3.Connection):
    """A pysqlite connection whose writers wait their turn on a lock file, in the kernel.

    SQLite has no queue for its write lock: waiters poll, and with eight processes on two cores
    the lock sat idle a third of the time between a commit and the next poll (bench/ledger.py).
    An ``flock`` on ``<database>-writelock``, taken before ``BEGIN IMMEDIATE`` and dropped after
    COMMIT or ROLLBACK, hands the turn over the moment it is free. It is only a queue: SQLite's
    own lock stays the guard, so a writer that does not take part (the sqlite3 shell) is still
    waited for by polling, and a process that dies drops its turn with its file descriptor. A
    thread that already holds a turn (a second session opened inside a first) does not queue
    behind itself: it polls and times out as plain SQLite would.
    """

    lock_path: str | None = None
    _lock_fd: int | None = None
    _has_turn = False

    def take_turn(self) -> None:
        if self.lock_path is None:
            return
        held: set[str] = getattr(_turns, "paths", None) or set()
        if self.lock_path in held:
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._has_turn = True
        _turns.paths = held | {self.lock_path}

    def give_turn(self) -> None:
        if self._has_turn and self._lock_fd is not None:
            self._has_turn = False
            _turns.paths = (getattr(_turns, "paths", None) or set()) - {self.lock_path}
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_turn()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def begin_immediate(dbapi_conn, wait_seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Take SQLite's write lock, waiting up to ``wait_seconds`` (the busy_timeout) in fine steps.

    SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries, so several web workers
    queueing for the lock lose most of their time asleep; polling every 0.2–1 ms keeps the lock busy
    instead of idle. Once held, busy_timeout=5000 applies to everything else in the transaction.
    """
    if isinstance(dbapi_conn, QueuedConnection):
        dbapi_conn.take_turn()
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=0")  # the connection may come from a read scope
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
        lock_path = None
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
            lock_path = str(Path(db).resolve()) + "-writelock"
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False,
                                                  "factory": QueuedConnection})
        _sqlite_pragmas(engine, sqlite_synchronous, lock_path)
        return engine
    # An unreachable server must fail a connection attempt fast: the callback is then spooled (bot/spool.py).
    kwargs: dict = {"pool_size": pool_size, "max_overflow": 4, "pool_pre_ping": True,
                    "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    if parsed.get_backend_name() == "mysql":
        kwargs["isolation_level"] = "READ COMMITTED"
        kwargs["connect_args"] |= {"charset": "utf8mb4"}
    return create_engine(url, **kwargs)


class Database:
    """Holds the engine and the session factory; ``session_scope`` is the one way to a transaction."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", clock: Clock = utcnow) -> None:
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self.sessions, "after_soft_rollback", _forget_rolled_back)
        event.listen(self.sessions, "after_commit", _count_committed)
        # PostgreSQL: BEGIN READ ONLY (psycopg's own switch, no extra round trip) refuses a write in a read scope.
        readonly = {"postgresql_readonly": True} if self.dialect == "postgresql" else {}
        self._read_engine = self.engine.execution_options(**{READ_ONLY: True}, **readonly)
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

    @contextmanager
    def read_scope(self, *, scan: bool = False) -> Iterator[Session]:
        """A transaction that only reads. On SQLite it takes no write lock (a plain deferred BEGIN
        with ``query_only``, so a write raises instead of queueing); on PostgreSQL it is READ ONLY; on
        MariaDB an ordinary one.
        ``scan``: a read over a whole table (an export) uses a small page cache on SQLite, so it does not
        fill the connection's 64 MiB with pages nobody reads twice; the connection gets its cache back after.
        """
        session = self.sessions(bind=self._read_engine)
        small = scan and self.dialect == "sqlite"
        try:
            with session.begin():
                if small:
                    session.execute(text(f"PRAGMA cache_size=-{SCAN_CACHE_KIB}"))
                yield session
                if small:
                    session.execute(text(f"PRAGMA cache_size=-{CACHE_KIB}"))
        finally:
            session.close()

    def create_all(self) -> None:
        from storage.models import Base

        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
