"""The declarative base of every model, and the column types and limits the models share."""
from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import DeclarativeBase

Id = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid
REASON_MAX = 200  # characters of a reason or note a person types (longer ones broke paged replies' limits)


class Base(DeclarativeBase):
    pass
