"""待办/todo: each decider sees what they may act on, and nothing else."""
from __future__ import annotations

import re

from storage.employees import mark_left
from storage.ledger import Ledger
from storage.models import Employee, Order
from tests.handlers.test_award import PeopleBot, pbot  # noqa: F401  (fixture)


def appeal_ids(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"·\s*A(\d+)", text)}


def test_manager_sees_only_their_reports_appeals(pbot: PeopleBot) -> None:  # noqa: F811
    a1 = int(re.search(r"A(\d+)", pbot.send("u_e1", "申诉 - 全勤没发")).group(1))
    a3 = int(re.search(r"A(\d+)", pbot.send("u_e3", "申诉 - 项目奖没发")).group(1))
    m1 = pbot.send("u_m1", "待办")
    assert appeal_ids(m1) == {a1} and f"通过申诉 A{a1}" in m1 and "订单" not in m1
    assert appeal_ids(pbot.send("u_m2", "todo")) == {a3}
    assert appeal_ids(pbot.send("u_hr", "待办")) == {a1, a3}


def test_hr_sees_orders_and_leavers_but_not_own_appeal(pbot: PeopleBot) -> None:  # noqa: F811
    a_hr = int(re.search(r"A(\d+)", pbot.send("u_hr", "申诉 - 我的积分没到")).group(1))
    with pbot.db.session_scope() as s:
        ledger, now = Ledger(s, pbot.clock), pbot.clock()
        e2 = s.get(Employee, pbot.ids["E2"])
        s.add(Order(employee_id=e2.id, sku="card100", item_name="100元购物卡", quantity=1, cost=1000,
                    status="awaiting_fulfilment", created_at=now))
        s.add(Order(employee_id=e2.id, sku="mug", item_name="马克杯", quantity=2, cost=200, status="fulfilled",
                    created_at=now))
        ledger.award(pbot.ids["E3"], 70, idem_key="t:e3", reason="好")
        mark_left(s, ledger, s.get(Employee, pbot.ids["E3"]), now=now, actor_id=None, why="test")
    hr = pbot.send("u_hr", "待办")
    assert "100元购物卡" in hr and "马克杯" not in hr and "发放 R" in hr
    assert "王五（E3）剩余 70 积分" in hr
    assert a_hr not in appeal_ids(hr)
    assert a_hr in appeal_ids(pbot.send("u_admin", "待办"))


def test_nothing_to_do(pbot: PeopleBot) -> None:  # noqa: F811
    assert "暂无待办" in pbot.send("u_m1", "待办")


def test_employee_has_no_todo(pbot: PeopleBot) -> None:  # noqa: F811
    assert "没有权限" in pbot.send("u_e1", "待办")
