"""A console-enabled app on each engine, a small company, and a browser-like client that logs in by link."""
from __future__ import annotations

import re
from typing import Any, Iterator

import pytest

from app import create_app
from storage.console import issue_link
from storage.db import Database
from storage.ledger import Ledger
from storage.members import bind
from storage.models import Employee
from tests.conftest import reset_schema
from tests.storage.factories import make_employee

SECRET = "console-test-secret-key-0123456789abcdef"
# employee_no: (role, name, manager)
COMPANY = {"A1": ("admin", "曹管理", None), "H1": ("hr", "韩梅", None), "B1": ("manager", "周总", None),
           "M1": ("manager", "王经理", "B1"), "E1": ("employee", "张三", "M1"), "E2": ("employee", "<b>李四</b>", "M1"),
           "X1": ("employee", "孙八", None)}


@pytest.fixture
def app(engine_url: str, clock: Any) -> Iterator[Any]:
    db = Database(engine_url, clock=clock)
    reset_schema(db)
    application = create_app({"database": {"url": engine_url}, "server": {"public_url": "https://points.example.test"},
                              "console": {"enabled": True, "secret_key": SECRET}}, db=db)
    application.testing = True
    yield application
    db.dispose()


@pytest.fixture
def ids(app: Any, clock: Any) -> dict[str, int]:
    bot = app.extensions["pointsbot"]
    out: dict[str, int] = {}
    with bot.db.session_scope() as s:
        ledger = Ledger(s, clock)
        for no, (role, name, mgr) in COMPANY.items():
            emp = make_employee(s, no, role=role, name=name, manager_id=out.get(mgr) if mgr else None)
            out[no] = emp.id
            bind(s, emp, "wecom", no.lower(), now=clock(), actor_id=None, how="test")
        ledger.award(out["E1"], 120, idem_key="seed-e1", reason="季度之星")
        ledger.award(out["X1"], 80, idem_key="seed-x1", reason="值班")
    return out


def link(app: Any, no: str, minutes: int = 10) -> str:
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        emp = s.query(Employee).filter_by(employee_no=no).one()
        return issue_link(s, emp, bot.db.clock(), minutes, via="test")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client: Any, app: Any, no: str) -> Any:
    token = link(app, no)
    page = client.get(f"/console/login/{token}")
    assert page.status_code == 200
    resp = client.post(f"/console/login/{token}", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/console/people"), resp.get_data(as_text=True)
    return resp
