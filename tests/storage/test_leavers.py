"""Leavers: member-left events from both platforms, roster import, reactivation and the leaver policy."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.dingtalk.parse import parse_event
from bot.core.events import Actor, MemberJoined
from bot.core.pipeline import Answer, Pipeline
from bot.core.router import Router
from bot.wecom.parse import parse as parse_wecom
from handlers import members as member_handlers
from settings import build_settings
from storage import members
from storage.employees import import_roster, reactivate
from storage.errors import WalletFrozen
from storage.invariants import check_invariants
from storage.leavers import apply_leaver_policy
from storage.ledger import Ledger
from storage.models import Binding, Employee, Order, Outbox, Txn
from tests.storage.factories import make_employee

T0 = datetime(2026, 3, 10, 2, 0)


def wecom_left(user: str, t: int = 1773100000) -> Any:
    xml = (f"<xml><ToUserName><![CDATA[wwtestcorp]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
           f"<CreateTime>{t}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>"
           f"<ChangeType>delete_user</ChangeType><UserID><![CDATA[{user}]]></UserID></xml>")
    return parse_wecom(xml, T0)


def dingtalk_left(*users: str, event_id: str = "ev-leave-1") -> Any:
    return parse_event(json.dumps({"EventType": "user_leave_org", "EventTime": 1773100000000, "CorpId": "dingcorp",
                                   "eventId": event_id, "userId": list(users)}), T0)


class Company:
    """E1 holds 300 points, a pending order of 100 and two chat accounts; H1 and A1 are told."""

    def __init__(self, db, clock, leavers: dict[str, Any] | None = None) -> None:
        self.db, self.clock = db, clock
        self.settings = build_settings({"leavers": leavers or {}})
        router = Router()
        member_handlers.register(router)
        self.pipeline = Pipeline(db, self.settings, router)
        with db.session_scope() as s:
            ledger = Ledger(s, db.clock)
            e1 = make_employee(s, "E1", name="张三", wecom="zhangsan", dingtalk="")  # DingTalk only by binding
            self.ids = {"E1": e1.id, "E2": make_employee(s, "E2", name="李四", wecom="lisi", dingtalk="dt_lisi").id,
                        "H1": make_employee(s, "H1", role="hr").id, "A1": make_employee(s, "A1", role="admin").id,
                        "P0": make_employee(s, "P0", name="积分池").id}
            members.bind(s, e1, "wecom", "zhangsan", now=clock(), actor_id=None, how="code")
            members.bind(s, e1, "dingtalk", "dt_zhang", now=clock(), actor_id=None, how="code")
            ledger.award(e1.id, 300, idem_key="seed:e1", reason="种子")
            ledger.award(self.ids["E2"], 40, idem_key="seed:e2", reason="种子")
            hold = ledger.hold(e1.id, 100, idem_key="order:1", reason="兑换")
            s.add(Order(employee_id=e1.id, sku="card100", item_name="100元购物卡", quantity=1, cost=100,
                        status="awaiting_fulfilment", created_at=clock(), hold_txn_id=hold.id))

    def send(self, event: Any) -> None:
        assert self.pipeline.handle(event, lambda e, r: (Answer(200, "success"), ())).status == 200

    def emp(self, no: str = "E1") -> Employee:
        with self.db.session_scope() as s:
            return s.get(Employee, self.ids[no])  # type: ignore[return-value]

    def balance(self, no: str = "E1") -> int:
        with self.db.session_scope() as s:
            ledger = Ledger(s, self.db.clock)
            return ledger.balance(ledger.wallet(self.ids[no]).id)

    def frozen(self, no: str = "E1") -> bool:
        with self.db.session_scope() as s:
            return Ledger(s, self.db.clock).wallet(self.ids[no]).frozen

    def bindings(self, no: str = "E1") -> list[str]:
        with self.db.session_scope() as s:
            active = select(Binding).where(Binding.employee_id == self.ids[no], Binding.status == "active")
            return sorted(b.platform for b in s.scalars(active))

    def notices(self) -> list[tuple[int, str]]:
        with self.db.session_scope() as s:
            rows = [json.loads(r.payload) for r in s.scalars(select(Outbox).where(Outbox.kind == "notice"))]
        return [(r["employee_id"], json.dumps(r["card"], ensure_ascii=False)) for r in rows]


@pytest.fixture
def co(sqlite_db, clock) -> Company:
    return Company(sqlite_db, clock)


def assert_left(co: Company) -> None:
    assert co.emp().status == "left" and co.emp().left_at is not None
    assert co.bindings() == [] and co.frozen()
    assert co.balance() == 200  # kept (frozen) until the policy runs
    with co.db.session_scope() as s:
        (order,) = s.scalars(select(Order))
        assert order.status == "awaiting_fulfilment"  # pending orders stay for HR
        assert check_invariants(s) == []
    notices = co.notices()
    assert sorted(i for i, _ in notices) == sorted([co.ids["H1"], co.ids["A1"]])
    for _, card in notices:
        assert "张三" in card and "200" in card and "R1" in card and "100元购物卡" in card
        assert "flask --app app reactivate E1" in card  # how to undo it: a command that exists (no chat one yet)


def test_wecom_member_deleted(co: Company) -> None:
    co.send(wecom_left("zhangsan"))
    co.send(wecom_left("zhangsan"))  # exact redelivery (inbox)
    co.send(wecom_left("zhangsan", t=1773100077))  # the same fact as another event: no second notice
    assert_left(co)


def test_dingtalk_user_leave_org_by_binding(co: Company) -> None:
    co.send(dingtalk_left("dt_zhang", "dt_unknown"))
    co.send(dingtalk_left("dt_zhang", event_id="ev-leave-2"))
    assert_left(co)
    assert co.emp("E2").status == "active"


def test_dingtalk_leaver_found_by_roster_id(co: Company) -> None:
    co.send(dingtalk_left("dt_lisi"))
    assert co.emp("E2").status == "left" and co.frozen("E2")


def test_roster_import_with_status_left(co: Company) -> None:
    with co.db.session_scope() as s:
        report = import_roster(s, [(2, {"employee_no": "E1", "name": "张三", "role": "employee", "status": "left",
                                        "wecom_userid": "zhangsan"})], Ledger(s, co.db.clock), now=co.clock(),
                               budget=1000, rollover=False)
    assert report.left == [co.ids["E1"]]
    assert co.emp().status == "left" and co.bindings() == [] and co.frozen() and co.balance() == 200


def test_a_leaver_gets_no_awards_and_no_orders(co: Company) -> None:
    co.send(wecom_left("zhangsan"))
    with co.db.session_scope() as s:
        ledger = Ledger(s, co.db.clock)
        with pytest.raises(WalletFrozen):
            ledger.award(co.ids["E1"], 10, idem_key="late", reason="x")
        with pytest.raises(WalletFrozen):
            ledger.hold(co.ids["E1"], 10, idem_key="order:2")


def test_reactivate_and_leave_again(co: Company) -> None:
    co.send(wecom_left("zhangsan"))
    with co.db.session_scope() as s:
        assert reactivate(s, Ledger(s, co.db.clock), s.get(Employee, co.ids["E1"]), now=co.clock(), actor_id=None)
    assert co.emp().status == "active" and not co.frozen() and co.balance() == 200
    assert co.bindings() == []  # chat accounts are bound again by the person, never restored by guess
    with co.db.session_scope() as s:
        Ledger(s, co.db.clock).award(co.ids["E1"], 10, idem_key="back", reason="回归")
    co.clock.advance(days=40)
    co.send(dingtalk_left("dt_other", event_id="noise"))
    co.send(wecom_left("zhangsan", t=1773200000))
    assert co.emp().status == "left" and co.frozen()
    assert len(co.notices()) == 4  # told twice, once per departure


def test_member_joined_is_only_logged(co: Company) -> None:
    event = MemberJoined(platform="wecom", event_id="j1", actor=Actor("sys"), received_at=T0, user_ids=("newbie",))
    co.send(event)
    assert co.notices() == []
    with co.db.session_scope() as s:
        assert s.scalar(select(Binding).where(Binding.platform_user_id == "newbie")) is None


# ---- the leaver policy ------------------------------------------------------------------------------------

def test_policy_freeze_keeps_points(sqlite_db, clock) -> None:
    co = Company(sqlite_db, clock)
    co.send(wecom_left("zhangsan"))
    clock.advance(days=365)
    assert apply_leaver_policy(co.db, co.settings, clock()) == 0
    assert co.balance() == 200


def test_policy_expire_after_the_grace_period(sqlite_db, clock) -> None:
    co = Company(sqlite_db, clock, {"policy": "expire", "grace_days": 30})
    co.send(wecom_left("zhangsan"))
    clock.advance(days=29)
    assert apply_leaver_policy(co.db, co.settings, clock()) == 0 and co.balance() == 200
    clock.advance(days=2)
    assert apply_leaver_policy(co.db, co.settings, clock()) == 1
    assert apply_leaver_policy(co.db, co.settings, clock()) == 0  # a rerun moves nothing
    assert co.balance() == 0 and co.balance("E2") == 40
    with co.db.session_scope() as s:
        (txn,) = s.scalars(select(Txn).where(Txn.idem_key == f"leaver:{co.ids['E1']}:expire"))
        assert (txn.kind, txn.amount) == ("expire", -200)
        assert check_invariants(s) == []


def test_policy_transfer_to_the_pool(sqlite_db, clock) -> None:
    co = Company(sqlite_db, clock, {"policy": "transfer", "grace_days": 7, "pool_employee_no": "P0"})
    co.send(dingtalk_left("dt_zhang", "dt_lisi"))
    clock.advance(days=8)
    assert apply_leaver_policy(co.db, co.settings, clock()) == 2
    assert apply_leaver_policy(co.db, co.settings, clock()) == 0
    assert (co.balance("E1"), co.balance("E2"), co.balance("P0")) == (0, 0, 240)
    with co.db.session_scope() as s:
        keys = set(s.scalars(select(Txn.idem_key).where(Txn.kind == "transfer")))
        assert keys == {f"leaver:{co.ids['E1']}:transfer", f"leaver:{co.ids['E2']}:transfer"}
        assert check_invariants(s) == []


def test_policy_transfer_without_the_pool_employee_moves_nothing(sqlite_db, clock) -> None:
    co = Company(sqlite_db, clock, {"policy": "transfer", "grace_days": 0, "pool_employee_no": "NOPE"})
    co.send(wecom_left("zhangsan"))
    clock.advance(days=1)
    assert apply_leaver_policy(co.db, co.settings, clock()) == 0 and co.balance() == 200


def test_leaving_in_the_grace_period_then_reactivated_keeps_points(sqlite_db, clock) -> None:
    co = Company(sqlite_db, clock, {"policy": "expire", "grace_days": 30})
    co.send(wecom_left("zhangsan"))
    clock.advance(days=10)
    with co.db.session_scope() as s:
        reactivate(s, Ledger(s, co.db.clock), s.get(Employee, co.ids["E1"]), now=clock(), actor_id=None)
    clock.advance(days=60)
    assert apply_leaver_policy(co.db, co.settings, clock()) == 0 and co.balance() == 200
    assert timedelta(days=70) == clock() - datetime(2026, 3, 10, 2, 0)
