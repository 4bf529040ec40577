"""Earning rules as versioned data (Rules): percentage tiers, versions, deductions, per-manager budgets, the CSV."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from settings import build_settings
from settings_rules import check_rule, parse_tiers
from storage import approvals, budgets, rules, rules_csv
from storage.db import Database
from storage.errors import InvalidAmount, InvalidState, NotPermitted
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Account, ApprovalInstance, AuditLog, Employee, Shortfall, Txn
from storage.services import Services
from tests.storage.factories import make_employee

NOW = datetime(2026, 3, 10, 2, 0, 0)
PERF = {"name": "季度绩效", "platform": "wecom", "template": "TPL-PERF", "field": "绩效得分", "base_points": 129,
        "tiers": "90:110%;80:100%;70:95%;0:0%", "category": "performance"}


def test_the_articles_table_from_base_129() -> None:
    rule, problems = check_rule(PERF)
    assert problems == [] and rule is not None
    assert [rule.points_for(v) for v in (95, 90, 85, 80, 75, 70, 69.9, 10)] == [142, 142, 129, 129, 123, 123, 0, 0]
    assert rule.tiers_text() == "90:110%;80:100%;70:95%;0:0%"


@pytest.mark.parametrize("tiers, code", [
    ("90:110%;90:100%", "tiers_overlap"), ("90:abc", "tiers"), ("90:110%;", None), ("60:-50", None),
    ("90:1.5", "tiers"), ("90:2000%", "tiers"),
])
def test_tiers_are_read_and_overlaps_refused(tiers: str, code: str | None) -> None:
    rule, problems = check_rule({**PERF, "tiers": tiers})
    assert (problems[0][1] if problems else None) == code


def test_a_percentage_needs_a_base_and_a_rule_needs_points_or_tiers() -> None:
    assert check_rule({**PERF, "base_points": None})[1] == [("tiers", "tiers_need_base")]
    assert check_rule({**PERF, "points": 5})[1][0] == ("points", "points_or_tiers")
    assert parse_tiers("90：110%；0:0%") == parse_tiers("90:110%;0:0%")  # full-width separators


@pytest.fixture
def company(engine_db: Database) -> dict[str, int]:
    with engine_db.session_scope() as s:
        ids = {no: make_employee(s, no, role=role, wecom=f"wc_{no.lower()}").id
               for no, role in (("E1", "employee"), ("M1", "manager"), ("H1", "hr"))}
        Ledger(s, lambda: NOW).award(ids["E1"], 30, idem_key="seed", reason="r")
    return ids


def approve(db: Database, settings: Any, instance: str, score: str, finished: datetime) -> approvals.Decision:
    with db.session_scope() as s:
        return approvals.on_approval(s, Ledger(s, db.clock), settings, platform="wecom", instance_id=instance,
                                     template="TPL-PERF", status="approved", applicant_user_id="wc_e1", title="Q1",
                                     form={"绩效得分": score}, now=finished + timedelta(hours=1), finished_at=finished)


def test_a_new_version_applies_to_approvals_finished_after_it_only(engine_db: Database, company: dict) -> None:
    settings = build_settings({})
    rule, _ = check_rule(PERF)
    with engine_db.session_scope() as s:
        rules.save(s, rule, now=NOW, actor_id=company["H1"])
    assert approve(engine_db, settings, "before", "95", NOW + timedelta(days=1)).points == 142
    with engine_db.session_scope() as s:
        first = rules.current(s)[0]
        outcome, second = rules.save(s, check_rule({**PERF, "id": first.id, "base_points": 200})[0],
                                     now=NOW + timedelta(days=2), actor_id=company["H1"])
        assert (outcome, second.id, second.version) == ("updated", first.id, 2)
        assert rules.save(s, second, now=NOW + timedelta(days=3), actor_id=None)[0] == "unchanged"
    # reconciled late, but it finished under version 1: still 142
    assert approve(engine_db, settings, "late", "95", NOW + timedelta(days=1, hours=5)).points == 142
    assert approve(engine_db, settings, "after", "95", NOW + timedelta(days=2, hours=1)).points == 220
    with engine_db.session_scope() as s:
        awards = dict(s.execute(select(Txn.idem_key, Txn.amount).where(Txn.kind == "award", Txn.idem_key.like("approval:%"))).all())
        assert awards == {"approval:wecom:before": 142, "approval:wecom:late": 142, "approval:wecom:after": 220}
        versions = dict(s.execute(select(ApprovalInstance.instance_id, ApprovalInstance.rule_version)).all())
        assert versions == {"before": 1, "late": 1, "after": 2}
        assert [a for a in s.scalars(select(AuditLog.detail).where(AuditLog.action == "rule_update"))] == \
            [f"rule {first.id} v2: base_points"]


def test_two_active_rules_cannot_share_a_template(engine_db: Database, company: dict) -> None:
    with engine_db.session_scope() as s:
        rules.save(s, check_rule(PERF)[0], now=NOW, actor_id=None)
        with pytest.raises(InvalidState) as clash:
            rules.save(s, check_rule({**PERF, "name": "别的"})[0], now=NOW, actor_id=None)
        assert clash.value.reason == "rule_template_taken"
        assert rules.save(s, check_rule({**PERF, "name": "别的", "active": False})[0], now=NOW, actor_id=None)[0] \
            == "created"


def test_a_negative_tier_deducts_at_most_what_is_there_and_reports_the_rest(engine_db: Database,
                                                                           company: dict) -> None:
    with engine_db.session_scope() as s:
        rules.save(s, check_rule({**PERF, "tiers": "80:100%;60:-50", "base_points": 100})[0], now=NOW, actor_id=None)
    decision = approve(engine_db, build_settings({}), "low", "65", NOW + timedelta(days=1))
    assert decision.action == "deducted" and decision.points == -30  # 30 was all E1 had
    assert {n.kind for n in decision.notices} == {"deducted", "deduction_short"}
    short = next(n for n in decision.notices if n.kind == "deduction_short")
    assert short.data["shortfall"] == 20 and short.employee_id == company["H1"]
    with engine_db.session_scope() as s:
        txn = s.scalar(select(Txn).where(Txn.kind == "deduct"))
        assert (txn.amount, txn.category, txn.actor_id) == (-30, "performance", None) and "季度绩效" in txn.reason
        assert s.scalar(select(Shortfall.amount)) == 20
        assert check_invariants(s) == []
    revoked = None
    with engine_db.session_scope() as s:  # a revoked approval gives the deduction back
        revoked = approvals.on_approval(s, Ledger(s, engine_db.clock), build_settings({}), platform="wecom",
                                        instance_id="low", template="TPL-PERF", status="revoked",
                                        applicant_user_id="wc_e1", title="Q1", form=None, now=NOW + timedelta(days=2))
    assert revoked.action == "reversed"
    with engine_db.session_scope() as s:
        assert s.scalar(select(Account.balance).where(Account.employee_id == company["E1"],
                                                      Account.kind == "wallet")) == 30


def test_budgets_per_manager_and_top_ups_are_ledger_transactions(engine_db: Database, company: dict) -> None:
    settings = build_settings({"points": {"manager_monthly_budget": 300}})
    with engine_db.session_scope() as s:
        sv = Services(s, settings, lambda: NOW)
        manager, hr, emp = (s.get(Employee, company[n]) for n in ("M1", "H1", "E1"))
        assert sv.budgets.terms([manager.id]) == {manager.id: budgets.Terms(300, False, False)}
        sv.budgets.set_terms(manager, 800, True, hr)
        with pytest.raises(NotPermitted):
            sv.budgets.set_terms(manager, 900, None, emp)
        sv.ledger.grant_budget(manager.id, "2026-03", sv.budgets.terms([manager.id])[manager.id].monthly)
        txn = sv.budgets.top_up(manager, 150, "年会活动", hr, key="topup:1")
        assert sv.budgets.top_up(manager, 150, "年会活动", hr, key="topup:1").id == txn.id  # once per key
        for bad in (0, -5, budgets.TOPUP_MAX + 1):
            with pytest.raises(InvalidAmount):
                sv.budgets.top_up(manager, bad, "x", hr, key=f"topup:bad{bad}")
        with pytest.raises(NotPermitted):
            sv.budgets.top_up(manager, 10, "x", emp, key="topup:emp")
    with engine_db.session_scope() as s:
        budget = s.scalar(select(Account.balance).where(Account.employee_id == company["M1"], Account.kind == "budget"))
        assert budget == 950 and check_invariants(s) == []
        assert s.scalar(select(Txn.reason).where(Txn.kind == "budget_topup")) == "额度追加: 年会活动"


def test_the_csv_round_trip_and_bad_rows_with_line_and_reason(engine_db: Database, company: dict) -> None:
    with engine_db.session_scope() as s:
        rules.save(s, check_rule(PERF)[0], now=NOW, actor_id=None)
        text = rules_csv.export_text(s)
    assert "1,季度绩效,wecom,TPL-PERF,,129,90:110%;80:100%;70:95%;0:0%,绩效得分,performance,,,true" in text
    rows, problem = rules_csv.read(text + "\n".join([
        ",全勤,dingtalk,PROC-FULLATT,100,,,,attendance,1,month,true",
        ",坏规则,slack,P,100,,,,x,,,true",
        ",重叠,wecom,TPL-X,,,90:5;90:6,得分,x,,,true",
        "99,不存在,wecom,TPL-Y,5,,,,x,,,true",
        ",撞车,wecom,TPL-PERF,5,,,,x,,,true"]))
    assert problem == ""
    with engine_db.session_scope() as s:
        report = rules_csv.import_rows(s, rows, now=NOW, actor_id=company["H1"])
    assert report.unchanged == ["1 季度绩效"] and report.created == ["2 全勤"]
    assert report.rejected == [(4, "platform", "platform"), (5, "tiers", "tiers_overlap"), (6, "id", "unknown_rule"),
                               (7, "template", "rule_template_taken")]
    with engine_db.session_scope() as s:
        assert [r.name for r in rules.current(s)] == ["季度绩效", "全勤"]



def test_the_deduction_notices_read_well() -> None:
    from cards.builders_events import approval_notice
    from cards.text import plain_text

    info = {"rule": "季度绩效", "title": "Q1", "employee": "张三", "employee_no": "E1", "instance_id": "I9"}
    told = plain_text(approval_notice("deducted", {**info, "points": 30, "balance": 0, "txn_id": 7}))
    assert "按规则扣除 30 积分" in told and "E7" in told
    hr = plain_text(approval_notice("deduction_short", {**info, "points": 30, "shortfall": 20}))
    assert "按规则应扣 50 积分，余额只够扣 30 积分" in hr and "差额" in hr


def test_seeding_gives_earlier_approvals_and_cap_slots_the_new_ids(engine_db: Database, company: dict) -> None:
    """Before rules had ids an approval named its rule by name and its cap slot by platform and template; after the
    upgrade's seeding the cap keeps counting: a second approval in the same month is over the cap."""
    from storage.models import ApprovalSlot

    settings = build_settings({"rules": [{"name": "全勤", "platform": "wecom", "template": "TPL-ATT", "points": 10,
                                          "max_per": {"count": 1, "period": "month"}}]})
    with engine_db.session_scope() as s:
        old = ApprovalInstance(platform="wecom", instance_id="old", rule="全勤", employee_id=company["E1"],
                               status="approved", title="", note="", updated_at=NOW, finished_at=NOW)
        s.add(old)
        s.flush()
        s.add(ApprovalSlot(employee_id=company["E1"], rule_key="wecom:TPL-ATT", period="2026-03", n=1,
                           instance_id=old.id, created_at=NOW))
        assert rules.seed_from_config(s, settings.rules, now=NOW) == [1]
        assert rules.seed_from_config(s, settings.rules, now=NOW) == []  # once
        assert s.scalar(select(ApprovalSlot.rule_key)) == "rule:1"
        assert s.scalar(select(ApprovalInstance.rule_id).where(ApprovalInstance.instance_id == "old")) == 1
    with engine_db.session_scope() as s:
        second = approvals.on_approval(s, Ledger(s, engine_db.clock), settings, platform="wecom", instance_id="new",
                                       template="TPL-ATT", status="approved", applicant_user_id="wc_e1", title="",
                                       form={}, now=NOW + timedelta(days=2), finished_at=NOW + timedelta(days=1))
    assert second.action == "skipped" and "最多" in second.detail
