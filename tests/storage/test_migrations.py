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
