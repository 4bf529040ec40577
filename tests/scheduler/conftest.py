"""The scheduler tests' bot (SQLite, two leaderboard groups) and a small company with this month's budget."""
from __future__ import annotations

from typing import Any

import pytest

import app as app_module
from settings import build_settings
from storage.ledger import Ledger
from tests.scheduler.helpers import GROUPS
from tests.storage.factories import make_employee


@pytest.fixture
def bot(sqlite_db: Any) -> Any:
    settings = build_settings({"leaderboard": {"top_n": 3, "groups": GROUPS}, "points": {"expiry_notice_days": [30, 7]}})
    return app_module.PointsBot(settings=settings, db=sqlite_db, router=None, pipeline=None)


@pytest.fixture
def company(bot: Any, clock: Any) -> dict[str, int]:
    """A manager with two reports, an HR person and a leaver; the manager has this month's budget."""
    with bot.db.session_scope() as s:
        mgr = make_employee(s, "M1", role="manager", name="王经理")
        ids = {"mgr": mgr.id,
               "a": make_employee(s, "A1", name="张三", manager_id=mgr.id).id,
               "b": make_employee(s, "B1", name="李四", manager_id=mgr.id, department="市场部").id,
               "hr": make_employee(s, "H1", role="hr", name="赵HR", department="人事部").id,
               "gone": make_employee(s, "L1", name="钱离职").id}
        Ledger(s, clock, 365).grant_budget(mgr.id, "2026-03", 1000)
    return ids
