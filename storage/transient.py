"""Which database errors are worth trying again at once: deadlocks, lock timeouts, lost connections.

Why a list of codes: each engine reports these its own way, and everything else (a constraint, a
bad statement) fails the same on every try. docs/reliability.md says how callbacks use this.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy.exc import DBAPIError, OperationalError

MYSQL_UNREACHABLE = {2003, 2006, 2013}  # cannot connect, server has gone away, lost connection during query
MYSQL_CODES = {
    1205,  # lock wait timeout exceeded
    1213,  # deadlock found when trying to get lock
    1317,  # query execution was interrupted
    *MYSQL_UNREACHABLE,
}
POSTGRES_STATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03"}  # serialization, deadlock, lock, shutdown
POSTGRES_CLASSES = ("08",)  # connection exceptions
SQLITE_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (a lock held past busy_timeout)


def _is_unreachable_one(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", "") is None:
        return True  # psycopg's client-side failures (connection refused, timed out) carry no SQLSTATE
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(POSTGRES_CLASSES)
    args = getattr(orig, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in MYSQL_UNREACHABLE


def _is_transient_one(exc: BaseException) -> bool:
    if _is_unreachable_one(exc):
        return True
    if isinstance(exc, DBAPIError):
        exc = exc.orig  # type: ignore[assignment]
    state = getattr(exc, "sqlstate", None)  # psycopg
    if isinstance(state, str):
        return state in POSTGRES_STATES or state.startswith(POSTGRES_CLASSES)
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in SQLITE_CODES  # extended codes keep the primary code in the low byte
    args = getattr(exc, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in MYSQL_CODES  # PyMySQL


def _in_chain(exc: BaseException, test: Callable[[BaseException], bool]) -> bool:
    """The chain matters: a deadlock inside a savepoint rolls back the whole transaction on MariaDB,
    and what reaches the caller is the failed ``ROLLBACK TO SAVEPOINT`` raised during the deadlock."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if test(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def is_transient(exc: BaseException) -> bool:
    """True when this error, or one it was raised from or during, may pass if tried again."""
    return _in_chain(exc, _is_transient_one)


def is_unreachable(exc: BaseException) -> bool:
    """True when the database cannot be reached at all: trying again within a request will not help."""
    return _in_chain(exc, _is_unreachable_one)
