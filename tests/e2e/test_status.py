"""GET /status: what an operator asks first, only for those allowed to ask."""
from __future__ import annotations

from datetime import timedelta

import pytest

from storage.models import JobRun, Outbox
from storage.status import beat

REMOTE = {"REMOTE_ADDR": "10.1.2.3"}


def test_status_is_for_loopback_only_without_a_token(client) -> None:
    assert client.get("/status").status_code == 200
    assert client.get("/status", environ_base=REMOTE).status_code == 404


@pytest.fixture
def token_config(config):  # type: ignore[no-untyped-def]
    config["server"]["status_token"] = "st-secret-123"
    return config


@pytest.mark.usefixtures("token_config")
def test_status_with_a_token_requires_it_from_everywhere(client) -> None:
    assert client.get("/status").status_code == 401
    assert client.get("/status", headers={"Authorization": "Bearer wrong"}, environ_base=REMOTE).status_code == 401
    ok = client.get("/status", headers={"Authorization": "Bearer st-secret-123"}, environ_base=REMOTE)
    assert ok.status_code == 200 and set(ok.json) == {"configuration_errors", "outbox", "jobs", "heartbeats"}


@pytest.mark.usefixtures("token_config")
def test_status_reports_config_errors_outbox_jobs_and_heartbeats(app, client) -> None:
    bot = app.extensions["pointsbot"]
    now = bot.db.clock()
    with bot.db.session_scope() as s:
        s.add(Outbox(idem_key="held", kind="notice", payload="{}", status="pending", attempts=0, created_at=now -
                     timedelta(minutes=5), next_attempt_at=now, last_error="WeCom refused the call (errcode 60020)"))
        s.add(Outbox(idem_key="dead", kind="notice", payload="{}", status="dead", attempts=10, created_at=now,
                     next_attempt_at=now, last_error="user invalid"))
        s.add(JobRun(job="expire-points", period="2026-03-10", status="done", owner="o", started_at=now,
                     lease_until=now, finished_at=now, detail=""))
    beat(bot.db, "scheduler", "host-a:1", now - timedelta(seconds=120))
    beat(bot.db, "scheduler", "host-b:2", now)
    data = client.get("/status", headers={"Authorization": "Bearer st-secret-123"}).json
    assert data["configuration_errors"] == ["WeCom refused the call (errcode 60020)"]
    assert data["outbox"]["pending"] == 1 and data["outbox"]["dead"] == 1
    assert data["outbox"]["oldest_pending_seconds"] >= 299
    assert list(data["jobs"]) == ["expire-points"]
    assert [(b["instance"], b["stale"]) for b in data["heartbeats"]] == [("host-a:1", True), ("host-b:2", False)]


def test_readyz_waits_for_pending_migrations(app, client) -> None:
    from alembic import command

    from storage.migrate import alembic_config

    db = app.extensions["pointsbot"].db
    pending = client.get("/readyz")  # the schema was created without Alembic: no revision recorded
    assert pending.status_code == 503 and pending.json["database"] == "migrations pending"
    cfg = alembic_config(db)
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.stamp(cfg, "head")
        conn.commit()
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["ready"] is True and ready.json["spool"]["events"] == 0
