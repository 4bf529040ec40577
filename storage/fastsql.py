"""Prebuilt Core statements run straight on the DBAPI cursor, for the few that run under a hot lock.

SQLAlchemy's execution path costs about 30 µs a statement on this machine, more than SQLite needs
to run the statement. A redemption runs seven of them while it holds SQLite's write lock (or, on
a server, the wallet row), so every other writer waits for that bookkeeping too. A ``Fast``
statement is compiled by SQLAlchemy once per dialect (the same SQL, parameter style and literal
values, with the column types' bind processors applied to the parameters), then executed on the
raw cursor of the connection's current transaction.

A SELECT's rows go through its column types' result processors (SQLite's datetimes come back as
``datetime``); a RETURNING clause's do not, so return ids and amounts there. Driver errors are
re-raised as the SQLAlchemy exceptions the rest of the code catches (``IntegrityError`` …).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql import ClauseElement

M = TypeVar("M")


class Executed(NamedTuple):
    rowcount: int
    lastrowid: int | None
    rows: list[tuple[Any, ...]]


class _Plan(NamedTuple):
    sql: str
    positional: tuple[str, ...] | None  # parameter order for qmark/format styles, None for named
    defaults: dict[str, Any]  # literal values of the statement (``kind = 'wallet'``, LIMIT 20)
    processors: dict[str, Callable[[Any], Any]]
    results: tuple[Callable[[Any], Any] | None, ...] | None  # per result column, None when none applies

    def bind(self, params: dict[str, Any]) -> Any:
        values = {**self.defaults, **params}
        for name, proc in self.processors.items():
            if values.get(name) is not None:
                values[name] = proc(values[name])
        if self.positional is None:
            return values
        return tuple(values[name] for name in self.positional)


class Fast:
    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled: Any = self.stmt.compile(dialect=dialect)
            if "POSTCOMPILE" in compiled.string:
                raise ValueError("Fast statements take no expanding IN lists; spell the alternatives out with OR")
            processors = {}
            for name, bind in compiled.binds.items():
                proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if proc is not None:
                    processors[name] = proc
            defaults = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
            positional = tuple(compiled.positiontup) if compiled.positional else None
            columns = getattr(self.stmt, "selected_columns", None) if getattr(self.stmt, "is_select", False) else None
            results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns or ())
            plan = self._plans[dialect.name] = _Plan(compiled.string, positional, defaults, processors,
                                                     results if any(results) else None)
        return plan

    def run(self, conn: Connection, params: dict[str, Any] | list[dict[str, Any]]) -> Executed:
        """Execute once (a dict) or for many rows (a list of dicts, no result rows)."""
        plan = self._plan(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        bound: Any = None
        try:
            if isinstance(params, list):
                bound = [plan.bind(p) for p in params]
                cursor.executemany(plan.sql, bound)
                rows: list[tuple[Any, ...]] = []
            else:
                bound = plan.bind(params)
                cursor.execute(plan.sql, bound)
                rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
                if plan.results and rows:
                    rows = [tuple(v if p is None or v is None else p(v) for p, v in zip(plan.results, r))
                            for r in rows]
            return Executed(cursor.rowcount, getattr(cursor, "lastrowid", None), rows)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(plan.sql, bound, exc, conn.dialect.loaded_dbapi.Error,
                                      dialect=conn.dialect) from exc
        finally:
            cursor.close()


def as_persistent(s: Session, model: type[M], values: dict[str, Any]) -> M:
    """A row this transaction read or wrote through Fast, as the session's ORM object, without another SELECT."""
    existing = s.identity_map.get(identity_key(model, values["id"]))
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    obj = model(**values)
    make_transient_to_detached(obj)
    s.add(obj)
    return obj
