"""The console's rules and budgets pages (Rules): versions from the form, CSV, per-manager budgets, announcements."""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from storage import rules
from storage.invariants import check_invariants
from storage.models import Account, AuditLog, Outbox, RuleVersion, Txn
from tests.console.conftest import csrf_of, login

PERF = {"name": "季度绩效", "platform": "wecom", "template": "TPL-PERF", "points": "", "base_points": "129",
        "tiers": "90:110%;80:100%;70:95%;0:0%", "field": "绩效得分", "category": "performance", "max_count": "",
        "max_period": "", "active": "1"}


def save(client: Any, rule_id: int = 0, **fields: str) -> Any:
    url = f"/console/rules/item/{rule_id}" if rule_id else "/console/rules/item"
    html = client.get(url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_of(html), **fields})


@pytest.fixture
def groups(app: Any) -> list[dict]:
    bot = app.extensions["pointsbot"]
    bot.settings.announcements["groups"] = [{"platform": "wecom", "chat_id": "all-staff"}]
    return bot.settings.announcements["groups"]


def test_hr_creates_and_versions_a_rule_and_announces_it(app: Any, ids: dict, groups: list) -> None:
    client = app.test_client()
    login(client, app, "H1")
    assert save(client, **PERF).status_code == 302
    page = client.get("/console/rules").get_data(as_text=True)
    assert "季度绩效" in page and "≥90: 142（110%）" in page and "第 1 版" in page
    changed = save(client, 1, **{**PERF, "base_points": "200", "announce": "1"})
    assert changed.status_code == 302
    assert "已向 1 个群发送规则调整公告" in client.get(changed.location).get_data(as_text=True)
    item = client.get("/console/rules/item/1").get_data(as_text=True)
    assert "第 2 版" in item and "第 1 版" in item and "≥90: 220（110%）" in item
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        assert [v.base_points for v in s.scalars(select(RuleVersion).order_by(RuleVersion.version))] == [129, 200]
        row = s.scalar(select(Outbox).where(Outbox.kind == "group"))
        card = json.loads(row.payload)["card"]
        assert json.loads(row.payload)["chat_id"] == "all-staff" and card["title"] == "积分规则调整：季度绩效"
        assert "142" in card["lines"][0] and "220" in card["lines"][1]
        assert s.scalar(select(AuditLog.actor_id).where(AuditLog.action == "rule_update")) == ids["H1"]


def test_the_form_refuses_overlapping_tiers_and_a_taken_template(app: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    bad = save(client, **{**PERF, "tiers": "90:5;90:6"})
    assert bad.status_code == 400 and "两个分档的分数相同" in bad.get_data(as_text=True)
    save(client, **PERF)
    taken = save(client, **{**PERF, "name": "第二个"})
    assert taken.status_code == 400 and "已在使用这个审批模板" in taken.get_data(as_text=True)
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert len(rules.current(s)) == 1


def test_the_rules_csv_upload_reports_lines(app: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    token = csrf_of(client.get("/console/rules").get_data(as_text=True))
    body = ("id,name,platform,template,points,base_points,tiers,field,category,max_count,max_period,active\n"
            ",全勤,dingtalk,PROC-FULLATT,100,,,,attendance,1,month,true\n,坏的,slack,X,1,,,,a,,,true\n")
    done = client.post("/console/rules/import", data={"csrf_token": token, "file": (io.BytesIO(body.encode()), "r.csv")},
                       content_type="multipart/form-data")
    page = done.get_data(as_text=True)
    assert "1 全勤" in page and "第 3 行" in page and "平台必须是 dingtalk 或 wecom" in page
    assert "全勤" in client.get("/console/rules.csv").get_data(as_text=True)


def test_budgets_per_manager_and_a_top_up_once(app: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    page = client.get("/console/budgets").get_data(as_text=True)
    token, nonce = csrf_of(page), page.split('name="nonce" value="')[1].split('"')[0]
    assert client.post("/console/budgets/M1/terms", data={"csrf_token": token, "monthly": "800",
                                                          "rollover": "yes"}).status_code == 302
    for _ in range(2):  # a double submit of the same form adds once
        client.post("/console/budgets/M1/topup", data={"csrf_token": token, "points": "150", "reason": "年会",
                                                       "nonce": nonce})
    assert client.post("/console/budgets/E1/topup", data={"csrf_token": token, "points": "5", "reason": "x",
                                                          "nonce": "n2"}).status_code == 302
    page = client.get("/console/budgets").get_data(as_text=True)
    assert 'value="800"' in page
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        assert [t.amount for t in s.scalars(select(Txn).where(Txn.kind == "budget_topup"))] == [150]
        assert s.scalar(select(Account.balance).where(Account.employee_id == ids["M1"], Account.kind == "budget")) == 150
        assert check_invariants(s) == []


@pytest.mark.parametrize("no", ["M1", "B1"])
def test_only_hr_and_admins_reach_rules_and_budgets(app: Any, ids: dict, no: str) -> None:
    client = app.test_client()
    login(client, app, no)
    token = csrf_of(client.get("/console/people").get_data(as_text=True))
    for url in ("/console/rules", "/console/rules/item", "/console/rules.csv", "/console/budgets"):
        assert client.get(url).status_code == 403, url
    assert client.post("/console/rules/item", data={"csrf_token": token, **PERF}).status_code == 403
    assert client.post("/console/budgets/M1/topup", data={"csrf_token": token, "points": "5", "reason": "x",
                                                          "nonce": "n"}).status_code == 403
    assert client.post("/console/budgets/M1/terms", data={"csrf_token": token, "monthly": "9"}).status_code == 403
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.scalar(select(RuleVersion.id)) is None and s.scalar(select(Txn.id).where(Txn.kind == "budget_topup")) is None


def test_every_rules_form_needs_its_csrf_token(app: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    for url, data in (("/console/rules/item", PERF), ("/console/rules/import", {}),
                      ("/console/budgets/M1/terms", {"monthly": "5"}),
                      ("/console/budgets/M1/topup", {"points": "5", "reason": "x", "nonce": "n"})):
        assert client.post(url, data=data).status_code == 400, url


def test_a_catalog_change_can_be_announced_too(app: Any, ids: dict, groups: list) -> None:
    client = app.test_client()
    login(client, app, "H1")
    url = "/console/catalog/item"
    tea = {"sku": "tea", "name": "好茶", "kind": "goods", "cost": "120", "stock": "", "sort": "1", "active": "1",
           "description": "", "limit": "", "limit_period": "", "leave_days": "", "charity": ""}
    client.post(url, data={"csrf_token": csrf_of(client.get(url).get_data(as_text=True)), **tea})
    url = "/console/catalog/item/tea"
    client.post(url, data={"csrf_token": csrf_of(client.get(url).get_data(as_text=True)), **tea, "cost": "90",
                           "announce": "1"})
    with app.extensions["pointsbot"].db.session_scope() as s:
        cards = [json.loads(p)["card"] for p in s.scalars(select(Outbox.payload).where(Outbox.kind == "group"))]
    assert [(c["title"], c["lines"]) for c in cards] == [
        ("积分商城调整：好茶", ["调整前：好茶（实物）120 积分", "调整后：好茶（实物）90 积分"])]


def test_the_rules_cli_round_trip_and_its_exit_status(app: Any, ids: dict, tmp_path: Any) -> None:
    runner = app.test_cli_runner()
    src = tmp_path / "rules.csv"
    src.write_text("id,name,platform,template,points,base_points,tiers,field,category,max_count,max_period,active\n"
                   ",季度绩效,wecom,TPL-PERF,,129,90:110%;80:100%;70:95%;0:0%,绩效得分,performance,,,true\n"
                   ",重叠,wecom,TPL-X,,,90:5;90:6,得分,x,,,true\n", encoding="utf-8")
    done = runner.invoke(args=["rules", "import", str(src)])
    assert done.exit_code == 1 and "created 1: 1 季度绩效" in done.output
    assert "line 3: rejected: tiers: two tiers share the same min" in done.output
    out = tmp_path / "out.csv"
    exported = runner.invoke(args=["rules", "export", str(out)])
    assert exported.exit_code == 0 and "wrote 1 rules" in exported.output
    again = runner.invoke(args=["rules", "import", str(out)])
    assert again.exit_code == 0 and "unchanged 1: 1 季度绩效" in again.output
    assert "rules" in runner.invoke(args=["rules", "--help"]).output
