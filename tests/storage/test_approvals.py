"""storage.approvals.on_approval: one award per approved instance, whatever order and however often.

Also the start-up validation of ``[[rules]]`` (unknown field, overlapping tiers, negative points
fail naming the rule).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from settings import ConfigError, build_settings
from storage import approvals, rules
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import ApprovalInstance, ApprovalSlot, Shortfall, Txn
from tests.storage.factories import make_employee

RULES: list[dict[str, Any]] = [
    {"name": "全勤", "platform": "dingtalk", "template": "PROC-FULLATT", "points": 100, "category": "attendance",
     "max_per": {"count": 1, "period": "month"}},
    {"name": "季度绩效", "platform": "wecom", "template": "TPL-PERF", "field": "绩效得分", "category": "performance",
     "tiers": [{"min": 90, "points": 500}, {"min": 80, "points": 300}, {"min": 70, "points": 100}]},
    {"name": "培训", "platform": "wecom", "template": "TPL-TRAIN", "points": 50, "category": "training",
     "max_per": {"count": 2, "period": "quarter"}},
]


def make_settings(**extra: Any) -> Any:
    return build_settings({"rules": RULES, **extra})


@pytest.fixture
def settings() -> Any:
    return make_settings()


@pytest.fixture
def people(sqlite_db) -> dict[str, int]:
    with sqlite_db.session_scope() as s:
        ids = {"E1": make_employee(s, "E1", name="张三", dingtalk="dt_e1", wecom="wc_e1").id,
               "E2": make_employee(s, "E2", name="李四", dingtalk="dt_e2", wecom="wc_e2").id,
               "H1": make_employee(s, "H1", role="hr", name="人事乙").id,
               "A1": make_employee(s, "A1", role="admin", name="管理员甲").id}
        rules.seed_from_config(s, make_settings().rules, now=datetime(2026, 1, 1))  # as db upgrade does
    return ids


def change(db, settings, clock, status: str, instance: str = "I1", *, platform: str = "dingtalk",
           template: str = "PROC-FULLATT", user: str = "dt_e1", title: str = "三月全勤",
           form: dict[str, str] | None = None, finished_at: datetime | None = None) -> approvals.Decision:
    """One delivery, one transaction, like the handler."""
    with db.session_scope() as s:
        ledger = Ledger(s, db.clock, settings.points["validity_days"])
        return approvals.on_approval(s, ledger, settings, platform=platform, instance_id=instance, template=template,
                                     status=status, applicant_user_id=user, title=title, form=form, now=clock(),
                                     finished_at=finished_at)


def awards(db) -> list[Txn]:
    with db.session_scope() as s:
        return list(s.scalars(select(Txn).where(Txn.kind.in_(("award", "reverse"))).order_by(Txn.id)))


def balance(db, emp_id: int) -> int:
    with db.session_scope() as s:
        ledger = Ledger(s, db.clock)
        return ledger.balance(ledger.wallet(emp_id).id)


def instance(db, iid: str, platform: str = "dingtalk") -> ApprovalInstance | None:
    with db.session_scope() as s:
        return s.scalar(select(ApprovalInstance).where(ApprovalInstance.platform == platform,
                                                       ApprovalInstance.instance_id == iid))


def test_approved_awards_once_and_tells_the_employee(sqlite_db, settings, clock, people) -> None:
    first = change(sqlite_db, settings, clock, "approved")
    assert first.action == "awarded" and first.points == 100
    (notice,) = first.notices
    assert notice.employee_id == people["E1"] and notice.kind == "awarded"
    assert notice.data["rule"] == "全勤" and notice.data["title"] == "三月全勤"
    for _ in range(3):
        assert change(sqlite_db, settings, clock, "approved").action == "already"
    (txn,) = awards(sqlite_db)
    assert txn.idem_key == "approval:dingtalk:I1" and txn.amount == 100 and txn.category == "attendance"
    assert "全勤" in txn.reason and "三月全勤" in txn.reason
    assert balance(sqlite_db, people["E1"]) == 100


@pytest.mark.parametrize("status", ["running", "rejected", "withdrawn", "other"])
def test_statuses_that_change_nothing(sqlite_db, settings, clock, people, status: str) -> None:
    assert change(sqlite_db, settings, clock, status).action == "ignored"
    assert awards(sqlite_db) == [] and instance(sqlite_db, "I1") is None


def test_unmatched_template_changes_nothing(sqlite_db, settings, clock, people) -> None:
    for status in ("approved", "revoked"):
        assert change(sqlite_db, settings, clock, status, template="PROC-OTHER").action == "ignored"
    # the same template id on the other platform is another rule (none)
    assert change(sqlite_db, settings, clock, "approved", platform="wecom").action == "ignored"
    assert awards(sqlite_db) == []


def test_revoke_after_approval_reverses_once(sqlite_db, settings, clock, people) -> None:
    change(sqlite_db, settings, clock, "approved")
    out = change(sqlite_db, settings, clock, "revoked")
    assert out.action == "reversed" and out.points == 100
    assert [n.kind for n in out.notices] == ["reversed"]
    assert out.notices[0].data["title"] == "三月全勤"
    assert change(sqlite_db, settings, clock, "revoked").action == "already"
    assert change(sqlite_db, settings, clock, "approved").action == "already"
    kinds = [(t.kind, t.amount, t.idem_key) for t in awards(sqlite_db)]
    assert kinds == [("award", 100, "approval:dingtalk:I1"), ("reverse", -100, "approval-reverse:dingtalk:I1")]
    assert balance(sqlite_db, people["E1"]) == 0
    row = instance(sqlite_db, "I1")
    assert row is not None and row.status == "revoked" and row.reversal_txn_id is not None


def test_revoke_before_approval_awards_nothing(sqlite_db, settings, clock, people) -> None:
    assert change(sqlite_db, settings, clock, "revoked").action == "recorded"
    assert change(sqlite_db, settings, clock, "approved").action == "already"
    assert change(sqlite_db, settings, clock, "running").action == "ignored"
    assert awards(sqlite_db) == []
    assert instance(sqlite_db, "I1").status == "revoked"  # type: ignore[union-attr]


def test_revoke_of_spent_points_records_a_shortfall_and_tells_hr(sqlite_db, settings, clock, people) -> None:
    change(sqlite_db, settings, clock, "approved")
    with sqlite_db.session_scope() as s:
        Ledger(s, sqlite_db.clock).hold(people["E1"], 80, idem_key="order-1", reason="兑换")
    out = change(sqlite_db, settings, clock, "revoked")
    assert out.action == "reversed" and out.points == 20
    assert sorted((n.employee_id, n.kind) for n in out.notices) == sorted(
        [(people["E1"], "reversed"), (people["H1"], "shortfall"), (people["A1"], "shortfall")])
    assert balance(sqlite_db, people["E1"]) == 0
    with sqlite_db.session_scope() as s:
        (sf,) = s.scalars(select(Shortfall))
        assert (sf.employee_id, sf.amount, sf.resolved) == (people["E1"], 80, False)
        assert check_invariants(s) == []
    again = change(sqlite_db, settings, clock, "revoked")
    assert again.action == "already" and again.notices == []
    with sqlite_db.session_scope() as s:
        assert s.scalar(select(func.count(Shortfall.id))) == 1


def test_tiers_need_the_form(sqlite_db, settings, clock, people) -> None:
    kw = {"platform": "wecom", "template": "TPL-PERF", "user": "wc_e1", "title": "Q1 绩效"}
    pending = change(sqlite_db, settings, clock, "approved", "S1", **kw)
    assert pending.action == "pending_detail" and pending.fetch_detail and pending.notices == []
    assert instance(sqlite_db, "S1", "wecom").status == "pending_detail"  # type: ignore[union-attr]
    assert change(sqlite_db, settings, clock, "approved", "S1", **kw).fetch_detail  # redelivery asks again
    done = change(sqlite_db, settings, clock, "approved", "S1", form={"绩效得分": "92", "备注": "好"}, **kw)
    assert done.action == "awarded" and done.points == 500
    assert change(sqlite_db, settings, clock, "approved", "S1", form={"绩效得分": "92"}, **kw).action == "already"


@pytest.mark.parametrize("value,points", [("90", 500), ("89.5", 300), ("80分", 300), ("79", 100), ("70", 100)])
def test_tier_values(sqlite_db, settings, clock, people, value: str, points: int) -> None:
    out = change(sqlite_db, settings, clock, "approved", "S1", platform="wecom", template="TPL-PERF", user="wc_e1",
                 form={"绩效得分": value})
    assert (out.action, out.points) == ("awarded", points)


def test_below_every_tier_or_missing_field_awards_nothing(sqlite_db, settings, clock, people) -> None:
    kw = {"platform": "wecom", "template": "TPL-PERF", "user": "wc_e1"}
    low = change(sqlite_db, settings, clock, "approved", "S1", form={"绩效得分": "69"}, **kw)
    assert low.action == "skipped" and low.notices == []
    missing = change(sqlite_db, settings, clock, "approved", "S2", form={"得分": "95"}, **kw)
    assert missing.action == "skipped"
    assert sorted(n.employee_id for n in missing.notices) == sorted([people["H1"], people["A1"]])
    assert awards(sqlite_db) == []


def test_monthly_cap_in_the_organisation_time_zone(sqlite_db, settings, clock, people) -> None:
    clock.now = datetime(2026, 3, 31, 15, 0)  # 23:00 in Shanghai, still March
    assert change(sqlite_db, settings, clock, "approved", "I1").action == "awarded"
    capped = change(sqlite_db, settings, clock, "approved", "I2")
    assert capped.action == "skipped" and "每月最多 1 次" in capped.detail
    assert [n.kind for n in capped.notices] == ["capped"]
    assert change(sqlite_db, settings, clock, "approved", "I2").action == "already"  # a skip is final
    assert change(sqlite_db, settings, clock, "approved", "I3", user="dt_e2").action == "awarded"  # per employee
    clock.now = datetime(2026, 3, 31, 16, 30)  # 00:30 on 1 April in Shanghai
    assert change(sqlite_db, settings, clock, "approved", "I4").action == "awarded"
    assert [t.amount for t in awards(sqlite_db)] == [100, 100, 100]


def test_a_revoked_award_frees_the_cap(sqlite_db, settings, clock, people) -> None:
    change(sqlite_db, settings, clock, "approved", "I1")
    change(sqlite_db, settings, clock, "revoked", "I1")
    assert change(sqlite_db, settings, clock, "approved", "I2").action == "awarded"


def test_cap_counts_in_the_period_the_approval_finished(sqlite_db, settings, clock, people) -> None:
    """Reconcile processes a 31 January approval on 1 February: it is January's, February's slot stays free."""
    clock.now = datetime(2026, 2, 1, 3, 0)
    january = datetime(2026, 1, 31, 9, 0)
    assert change(sqlite_db, settings, clock, "approved", "I1", finished_at=january).action == "awarded"
    assert change(sqlite_db, settings, clock, "approved", "I2", finished_at=january).action == "skipped"
    assert change(sqlite_db, settings, clock, "approved", "I3").action == "awarded"  # no finish time: now
    with sqlite_db.session_scope() as s:
        assert s.scalar(select(ApprovalInstance.finished_at).where(ApprovalInstance.instance_id == "I1")) == january
        assert sorted(s.scalars(select(ApprovalSlot.period))) == ["2026-01", "2026-02"]


def test_the_finish_time_of_the_first_delivery_is_kept_for_the_detail_fetch(sqlite_db, settings, clock, people) -> None:
    kw = {"platform": "wecom", "template": "TPL-PERF", "user": "wc_e1"}
    clock.now = datetime(2026, 4, 1, 3, 0)
    march = datetime(2026, 3, 31, 9, 0)
    assert change(sqlite_db, settings, clock, "approved", "P1", finished_at=march, **kw).action == "pending_detail"
    out = change(sqlite_db, settings, clock, "approved", "P1", form={"绩效得分": "95"}, **kw)
    assert out.action == "awarded"
    with sqlite_db.session_scope() as s:
        assert s.scalar(select(ApprovalInstance.finished_at)) == march


def test_an_unpaid_approval_does_not_use_the_cap(sqlite_db, settings, clock, people) -> None:
    with sqlite_db.session_scope() as s:
        Ledger(s, sqlite_db.clock).set_frozen(people["E1"], True)
    assert change(sqlite_db, settings, clock, "approved", "I1").action == "skipped"
    with sqlite_db.session_scope() as s:
        Ledger(s, sqlite_db.clock).set_frozen(people["E1"], False)
        assert s.scalar(select(func.count(ApprovalSlot.id))) == 0
    assert change(sqlite_db, settings, clock, "approved", "I2").action == "awarded"


def test_awards_from_before_slots_fill_the_first_slots(sqlite_db, settings, clock, people) -> None:
    """An upgrade keeps the cap: an approved instance without a slot row counts in its period."""
    change(sqlite_db, settings, clock, "approved", "I1")
    with sqlite_db.session_scope() as s:
        s.execute(delete(ApprovalSlot))  # as a database migrated from before slots holds it
    assert change(sqlite_db, settings, clock, "approved", "I2").action == "skipped"


def test_quarterly_cap(sqlite_db, settings, clock, people) -> None:
    kw = {"platform": "wecom", "template": "TPL-TRAIN", "user": "wc_e1"}
    clock.now = datetime(2026, 1, 5)
    assert change(sqlite_db, settings, clock, "approved", "T1", **kw).action == "awarded"
    clock.now = datetime(2026, 3, 20)
    assert change(sqlite_db, settings, clock, "approved", "T2", **kw).action == "awarded"
    assert change(sqlite_db, settings, clock, "approved", "T3", **kw).action == "skipped"
    clock.now = datetime(2026, 4, 2)
    assert change(sqlite_db, settings, clock, "approved", "T4", **kw).action == "awarded"


def test_unknown_applicant_tells_hr_and_a_later_delivery_awards(sqlite_db, settings, clock, people) -> None:
    out = change(sqlite_db, settings, clock, "approved", user="dt_new")
    assert out.action == "unknown"
    assert sorted(n.employee_id for n in out.notices) == sorted([people["H1"], people["A1"]])
    assert {n.kind for n in out.notices} == {"unknown_applicant"}
    with sqlite_db.session_scope() as s:
        make_employee(s, "E9", dingtalk="dt_new")  # HR completes the roster
    assert change(sqlite_db, settings, clock, "approved", user="dt_new").action == "awarded"


def test_a_leaver_gets_no_award_and_hr_is_told(sqlite_db, settings, clock, people) -> None:
    from storage.employees import mark_left
    from storage.models import Employee

    with sqlite_db.session_scope() as s:
        mark_left(s, Ledger(s, sqlite_db.clock), s.get(Employee, people["E1"]), now=clock(), actor_id=None, why="t")
    out = change(sqlite_db, settings, clock, "approved")
    assert out.action == "skipped" and {n.kind for n in out.notices} == {"frozen"}
    assert awards(sqlite_db) == []


def test_form_numbers() -> None:
    assert approvals.parse_number("92") == 92 and approvals.parse_number(" 88.5 分") == 88.5
    assert approvals.parse_number("1,200") == 1200 and approvals.parse_number("优秀") is None
    assert approvals.parse_number(None) is None


# ---- start-up validation of [[rules]] ------------------------------------------------------------

def _rule(**over: Any) -> dict[str, Any]:
    base = {"name": "绩效奖", "platform": "wecom", "template": "TPL-X", "field": "得分",
            "tiers": [{"min": 90, "points": 500}, {"min": 80, "points": 300}]}
    return {**base, **over}


@pytest.mark.parametrize("rule,message", [
    (_rule(feild="得分"), "rules[绩效奖].feild: unknown setting"),
    (_rule(tiers=[{"min": 90, "points": 500}, {"min": 90, "points": 300}]), "rules[绩效奖].tiers: two tiers share"),
    (_rule(tiers=[{"min": 90, "points": 2.5}]), "rules[绩效奖].tiers[0].points"),  # negative is a deduction
    (_rule(tiers=[{"min": 90, "percent": 110}]), "rules[绩效奖].tiers: a percentage tier needs base_points"),
    ({"name": "全勤", "platform": "dingtalk", "template": "P", "points": -100}, "rules[全勤].points"),
    ({"name": "全勤", "platform": "dingtalk", "template": "P", "points": 0}, "rules[全勤].points"),
    ({"name": "全勤", "platform": "dingtalk", "template": "P", "points": 10, "max_per": {"count": 1, "period": "week"}},
     "rules[全勤].max_per.period"),
    (_rule(points=10), "rules[绩效奖]: give either points or field + tiers"),
    (_rule(platform="slack"), "rules[绩效奖].platform"),
])
def test_a_bad_rule_fails_start_up_naming_it(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_settings({"rules": [rule]})
    assert message in str(err.value)


def test_tiers_pick_the_highest_min_not_above_the_value() -> None:
    (rule,) = build_settings({"rules": [_rule(tiers=[{"min": 70, "points": 100}, {"min": 90, "points": 500},
                                                       {"min": 80, "points": 300}])]}).rules
    assert [rule.points_for(v) for v in (95, 90, 89.9, 80, 75, 69, None)] == [500, 500, 300, 300, 100, 0, 0]
