"""An app from create_app(mapping) on a per-engine database, plus helpers to talk to it."""
from __future__ import annotations

import copy
import time
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest

from app import create_app
from storage.db import Database
from tests.conftest import reset_schema

WECOM = {"enabled": True, "corp_id": "wwtestcorp", "agent_id": 1000002, "secret": "wecom-secret-XYZ",
         "token": "wecomToken123", "encoding_aes_key": "pointsbotTestWeComEncodingAesKey0123456789A",
         "contacts_token": "contactsToken9", "contacts_encoding_aes_key": "pointsbotTestContactsAesKey0123456789abcdef",
         "api_base": "http://fake-wecom.test"}
DINGTALK = {"enabled": True, "app_key": "dingtestappkey", "app_secret": "dingtalk-secret-XYZ",
            "robot_code": "dingtestappkey", "corp_id": "dingtestcorp", "token": "dtToken123",
            "aes_key": "pointsbotTestDingTalkEventAesKey0123456789B", "api_base": "http://fake-dingtalk.test",
            "oapi_base": "http://fake-dingtalk-oapi.test", "card_template_id": "tpl1", "card_api_secret": "cardSecret1"}
BASE_CONFIG: dict[str, Any] = {
    "server": {"timezone": "Asia/Shanghai"},
    "wecom": WECOM, "dingtalk": DINGTALK,
    "catalog": [{"sku": "card100", "name": "100元购物卡", "cost": 1000, "stock": 5},
                {"sku": "course", "name": "1门培训课程", "cost": 300}],
    "rules": [{"name": "全勤", "platform": "dingtalk", "template": "PROC-FULLATT", "points": 100, "category": "attendance"},
              {"name": "季度绩效", "platform": "wecom", "template": "TPL-PERF", "field": "绩效得分",
               "tiers": [{"min": 90, "points": 500}, {"min": 80, "points": 300}]}],
}


class WallClock:
    """Real time by default (signatures are checked against it), settable for expiry tests."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.offset, timezone.utc).replace(tzinfo=None)

    def epoch(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
def config() -> dict[str, Any]:
    return copy.deepcopy(BASE_CONFIG)


@pytest.fixture
def app(engine_url: str, config: dict[str, Any], wall_clock: WallClock, tmp_path: Any) -> Iterator[Any]:
    config["database"] = {"url": engine_url}
    config["spool"] = {"dir": str(tmp_path / "spool")}
    db = Database(engine_url, clock=wall_clock)
    reset_schema(db)
    application = create_app(config, db=db)
    application.testing = True
    yield application
    db.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def load_roster(bot: Any, roster_csv: str, *, budget: int = 1000) -> dict[str, int]:
    """Import a roster the way ``import-employees`` does; {employee number: id}."""
    from sqlalchemy import select

    from storage.employees import import_roster, read_roster
    from storage.ledger import Ledger
    from storage.models import Employee

    with bot.db.session_scope() as s:
        rows, err = read_roster(roster_csv)
        assert err is None
        report = import_roster(s, rows, Ledger(s, bot.db.clock), now=bot.db.clock(), budget=budget, rollover=False)
        assert not report.rejected
        return dict(s.execute(select(Employee.employee_no, Employee.id)).all())


def post_approval(client: Any, instance: str, user: str, *, template: str = "PROC-FULLATT",
                  finished: datetime | None = None) -> int:
    """An approved instance as DingTalk pushes it (``finishTime`` in epoch milliseconds); the HTTP status."""
    from tests.e2e import signing

    finished = finished or datetime.now(timezone.utc)
    payload = {"EventType": "bpms_instance_change", "eventId": f"ev-{instance}", "processInstanceId": instance,
               "processCode": template, "type": "finish", "result": "agree", "staffId": user, "title": "全勤",
               "finishTime": int(finished.timestamp() * 1000)}
    params, body = signing.dingtalk_event(DINGTALK["token"], DINGTALK["aes_key"], DINGTALK["app_key"], payload,
                                          int(time.time() * 1000))
    return client.post("/callback/dingtalk", query_string=params, data=body,
                       headers={"Content-Type": "application/json"}).status_code
