"""Exports: only what the role may see, the figures 积分 shows, files Excel opens safely, every export audited."""
from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app import build_router
from bot.core.context import Context
from bot.core.events import Actor, TextCommand
from cards.text import plain_text
from storage.ledger import Ledger
from storage.models import AuditLog, Employee
from tests.console.conftest import login

URLS = [f"/console/export/{k}.{f}" for k in ("balances", "ledger", "orders") for f in ("csv", "xlsx")]


def table(resp: Any) -> list[list[str]]:
    if resp.mimetype == "text/csv":
        raw = resp.get_data()
        assert raw.startswith(b"\xef\xbb\xbf")  # Excel in China needs the BOM
        return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(resp.get_data()), read_only=True).worksheets[0]
    return [["" if c is None else str(c) for c in row] for row in sheet.iter_rows(values_only=True)]


@pytest.mark.parametrize("url", URLS)
def test_without_a_session_every_export_is_401(app: Any, ids: dict[str, int], url: str) -> None:
    resp = app.test_client().get(url)
    assert resp.status_code == 401 and "张三" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("who, people", [("M1", {"M1", "E1", "E2"}), ("H1", {"A1", "H1", "B1", "M1", "E1", "E2", "X1"})])
def test_each_export_holds_only_what_the_role_may_see(app: Any, ids: dict[str, int], url: str, who: str,
                                                      people: set[str]) -> None:
    client = app.test_client()
    login(client, app, who)
    resp = client.get(url)
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    rows = table(resp)
    col = rows[0].index("工号")
    seen = {r[col] for r in rows[1:]}
    if "balances" in url:
        assert seen == people
    else:
        assert seen <= people and ("ledger" not in url or "E1" in seen)  # E1 has awards everyone may see
        assert "X1" not in seen or who == "H1"


def test_balances_equal_what_points_shows_in_chat(app: Any, ids: dict[str, int], clock: Any) -> None:
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:  # 20 of 张三's 120 points held for an order
        Ledger(s, clock).hold(ids["E1"], 20, idem_key="h1", reason="兑换")
    client = app.test_client()
    login(client, app, "H1")
    rows = table(client.get("/console/export/balances.csv"))
    head = rows[0]
    router = build_router()
    for row in rows[1:]:
        no = row[head.index("工号")]
        with bot.db.session_scope() as s:
            ctx = Context(session=s, settings=bot.settings, clock=clock, platform="wecom")
            reply = router.dispatch(TextCommand(platform="wecom", event_id=f"p-{no}", actor=Actor(no.lower()),
                                                text="积分", received_at=clock()), ctx)
        shown = plain_text(reply.card)
        assert f"的积分: {row[head.index('可用积分')]}" in shown, (no, shown)
        assert f"兑换冻结中: {row[head.index('兑换冻结中')]}" in shown and f"累计获得: {row[head.index('累计获得')]}" in shown
    e1 = next(r for r in rows if r[head.index("工号")] == "E1")
    assert (e1[head.index("可用积分")], e1[head.index("兑换冻结中")], e1[head.index("累计获得")]) == ("100", "20", "120")


def test_formula_cells_are_defused_in_csv_and_xlsx(app: Any, ids: dict[str, int]) -> None:
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        s.get(Employee, ids["E2"]).name = "=HYPERLINK(\"http://x\")"
        s.get(Employee, ids["E1"]).department = "@SUM(A1)"
    client = app.test_client()
    login(client, app, "H1")
    for fmt in ("csv", "xlsx"):
        text = "\n".join(",".join(r) for r in table(client.get(f"/console/export/balances.{fmt}")))
        assert "'=HYPERLINK" in text and "'@SUM(A1)" in text
        assert not re.search(r"(^|,)[=@]", text, re.M)


def test_filters_and_the_audit_log(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    login(client, app, "H1")
    rows = table(client.get("/console/export/ledger.csv?employee=X1&kind=award"))
    assert [r[rows[0].index("原因")] for r in rows[1:]] == ["值班"]
    assert client.get("/console/export/ledger.csv?start=2026-99-01").status_code == 400
    assert client.get("/console/export/secrets.csv").status_code == 404
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        detail = s.scalar(select(AuditLog.detail).where(AuditLog.action == "console_export"))
    assert detail.startswith("ledger.csv rows=1 from 127.0.0.1") and "employee=X1" in detail


def test_the_exports_page_links_each_export_with_the_filters(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    assert client.get("/console/exports").status_code == 302
    login(client, app, "M1")
    html = client.get("/console/exports?department=研发部").get_data(as_text=True)
    assert "经理只能导出自己团队的数据" in html
    for kind in ("balances", "ledger", "orders"):
        assert f'/console/export/{kind}.csv?department=' in html and f'/console/export/{kind}.xlsx?department=' in html
