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


def test_0006_binds_roster_ids_except_those_an_unbind_removed(engine_url: str) -> None:
    """Existing deployments: active employees' roster ids become bindings unless the audit log shows an unbind
    of that account (before 0006 an unbind deleted the row) or the account or platform is already bound."""
    db = Database(engine_url)
    Base.metadata.drop_all(db.engine)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(db, "0005")
    t = "2026-03-01 00:00:00"
    with db.engine.begin() as conn:
        for i, (no, status, ding, wecom) in enumerate([("E1", "active", "d1", "w1"), ("E2", "active", "", "w2"),
                                                       ("E3", "left", "d3", ""), ("E4", "active", "d4", "w4")], 1):
            conn.exec_driver_sql(
                "INSERT INTO employees (id, employee_no, name, department, role, status, dingtalk_userid, wecom_userid,"
                f" created_at) VALUES ({i}, '{no}', '{no}', '', 'employee', '{status}', '{ding}', '{wecom}', '{t}')")
        conn.exec_driver_sql("INSERT INTO bindings (employee_id, platform, platform_user_id, created_at) "
                             f"VALUES (4, 'wecom', 'w4-own', '{t}')")  # E4 bound another wecom account by code
        conn.exec_driver_sql("INSERT INTO audit_log (at, action, target_id, detail) "
                             f"VALUES ('{t}', 'unbind', 2, 'wecom:w2 (U7)')")  # E2 unbound w2
    upgrade(db)
    with db.engine.connect() as conn:
        rows = set(conn.exec_driver_sql("SELECT employee_id, platform, platform_user_id, status FROM bindings").all())
    assert rows == {(1, "dingtalk", "d1", "active"), (1, "wecom", "w1", "active"), (4, "dingtalk", "d4", "active"),
                    (4, "wecom", "w4-own", "active")}
    downgrade(db, "base")
    db.dispose()
