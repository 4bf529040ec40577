"""Alembic migrations create exactly what the models declare, on every engine."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from storage.db import Database
from storage.migrate import alembic_config, downgrade, upgrade
from storage.models import Base


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config(Database("sqlite://")))
    assert len(script.get_heads()) == 1


def test_upgrade_matches_models_and_downgrades(engine_url: str) -> None:
    db = Database(engine_url)
    Base.metadata.drop_all(db.engine)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(db)
    upgrade(db)  # safe to run again
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    downgrade(db, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    db.dispose()


PARTIAL = {"ix_lots_live": "remaining > 0", "ix_lots_fifo": "remaining > 0",
           "ix_ledger_txns_reverses_txn_id": "reverses_txn_id IS NOT NULL",
           "ix_ledger_txns_related_txn_id": "related_txn_id IS NOT NULL"}


def test_partial_indexes_are_partial_after_upgrade(engine_url: str) -> None:
    """compare_metadata does not look at an index's WHERE; the hot paths depend on it."""
    db = Database(engine_url)
    if db.dialect == "mysql":  # no partial indexes: plain ones, which compare_metadata checks
        db.dispose()
        return
    Base.metadata.drop_all(db.engine)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(db)
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            found = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'").all())
        else:
            found = dict(conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes").all())
    for name, where in PARTIAL.items():
        assert where.lower() in found[name].lower().replace("(", "").replace(")", ""), (name, found[name])
    downgrade(db, "base")
    db.dispose()
