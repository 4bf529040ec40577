"""Writing thousands of rows in a few statements, for the batch jobs (expiry).

SQLite's executemany runs natively and PyMySQL rewrites an INSERT executemany into multi-row
VALUES, so both get the plain Core executemany. psycopg's executemany pipelines one statement a
row at ~50 µs of client CPU each, which made a 1,000-lot expiry batch on PostgreSQL spend most of
its time in the driver; there the rows travel as one array per column through ``unnest``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Table, any_, bindparam, case, text
from sqlalchemy.dialects.postgresql import ARRAY

_PG_TYPES = ((bool, "BOOLEAN"), (int, "BIGINT"), (str, "TEXT"), (datetime, "TIMESTAMP"))  # bool before int


def _pg_type(sample: object) -> str:
    """The array type of a column's values; a ``StrEnum`` member (storage/kinds.py) is a str."""
    return next(name for kind, name in _PG_TYPES if isinstance(sample, kind))


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, str) else value  # an enum member as the string it stands for


def _pg_arrays(rows: list[dict[str, Any]]) -> tuple[list[str], str, dict[str, list[Any]]]:
    """Columns, the ``unnest(...)`` call and one list per column (columns that are None in every row left out)."""
    columns = [c for c in rows[0] if any(r[c] is not None for r in rows)]
    casts = []
    for c in columns:
        sample = next(r[c] for r in rows if r[c] is not None)
        casts.append(f"CAST(:{c} AS {_pg_type(sample)}[])")
    return columns, f"unnest({', '.join(casts)})", {c: [_plain(r[c]) for r in rows] for c in columns}


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns, unnest, arrays = _pg_arrays(rows)
    conn.execute(text(f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM {unnest}"), arrays)


def insert_returning_ids(conn: Connection, table: Table, rows: list[dict[str, Any]], key: str) -> list[int]:
    """Insert and return the new ids in the order of ``rows``, matched by the unique column ``key``."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        columns, unnest, arrays = _pg_arrays(rows)
        found = conn.execute(text(f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM {unnest} "
                                  f"RETURNING id, {key}"), arrays).all()
    else:
        conn.execute(table.insert(), rows)
        keys = [r[key] for r in rows]
        found = conn.execute(table.select().with_only_columns(table.c.id, table.c[key])
                             .where(table.c[key].in_(bindparam("keys", expanding=True))), {"keys": keys}).all()
    by_key = {k: i for i, k in found}
    return [by_key[r[key]] for r in rows]


def subtract_from(conn: Connection, table: Table, column: str, amounts: dict[int, int]) -> None:
    """``column -= amount`` for each row id, in one statement on PostgreSQL and MariaDB."""
    if not amounts:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"UPDATE {table.name} SET {column} = {table.name}.{column} - v.amount "
                          f"FROM unnest(CAST(:ids AS BIGINT[]), CAST(:amounts AS BIGINT[])) AS v(id, amount) "
                          f"WHERE {table.name}.id = v.id"), {"ids": list(amounts), "amounts": list(amounts.values())})
        return
    if conn.dialect.name == "mysql":  # PyMySQL runs an UPDATE executemany one round trip a row
        conn.execute(table.update().where(table.c.id.in_(list(amounts)))
                     .values({column: table.c[column] - case(amounts, value=table.c.id)}))
        return
    conn.execute(table.update().where(table.c.id == bindparam("row_id"))
                 .values({column: table.c[column] - bindparam("delta")}),
                 [{"row_id": i, "delta": a} for i, a in amounts.items()])


def among(column: ColumnElement[Any], ids: list[int], dialect: str) -> ColumnElement[bool]:
    """``column IN (ids)``; on PostgreSQL ``= ANY(array)``, one parameter instead of a thousand to parse."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, value=list(ids), type_=ARRAY(BigInteger)))
    return column.in_(ids)
