"""Acting from the console: the chat's commands through the same pipeline, so the same effects (Console 2)."""
from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
from sqlalchemy import select

from bot.core.events import Actor, TextCommand
from storage.catalog import seed_from_config
from storage.invariants import check_invariants
from storage.models import Appeal, Order, Outbox, Txn
from tests.console.conftest import csrf_of, login


def chat(app: Any, user: str, text: str, event_id: str) -> str:
    """The same command typed in chat (WeCom), through the same pipeline."""
    from bot.core.pipeline import Answer

    bot = app.extensions["pointsbot"]
    event = TextCommand(platform="wecom", event_id=event_id, actor=Actor(user), text=text, received_at=bot.db.clock())
    return bot.pipeline.handle(event, lambda e, r: (Answer(200, getattr(r, "text", "")), ())).body


def txns(app: Any, reason: str) -> list[Txn]:
    with app.extensions["pointsbot"].db.session_scope() as s:
        return list(s.scalars(select(Txn).where(Txn.reason == reason)))


def notices(app: Any, employee_id: int) -> list[dict]:
    with app.extensions["pointsbot"].db.session_scope() as s:
        rows = [json.loads(r.payload) for r in s.scalars(select(Outbox).where(Outbox.kind == "notice"))]
    return [r["card"] for r in rows if r.get("employee_id") == employee_id]


def act(client: Any, employee_id: int, **fields: str) -> str:
    url = f"/console/people/{employee_id}"
    html = client.get(url).get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)-award"', html).group(1)
    resp = client.post(url + "/act", data={"csrf_token": csrf_of(html), "token": f"{token}-{fields['action']}",
                                           **fields})
    assert resp.status_code == 302
    return client.get(url).get_data(as_text=True)


def test_a_console_award_is_the_chat_award(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    login(client, app, "H1")
    shown = act(client, ids["E1"], action="award", points="30", reason="控制台 表彰")
    assert "已奖励 张三（E1）30 积分" in shown
    assert "（E2）30 积分" in chat(app, "h1", "奖励 E2 30 控制台 表彰", "chat-1")
    console, typed = txns(app, "控制台 表彰")
    assert (console.kind, console.amount, console.actor_id, console.category) == \
        (typed.kind, typed.amount, typed.actor_id, typed.category) == ("award", 30, ids["H1"], "manual")
    assert console.idem_key.startswith("award:console:") and typed.idem_key.startswith("award:wecom:")
    a, b = notices(app, ids["E1"])[-1], notices(app, ids["E2"])[-1]
    strip = lambda card: re.sub(r"E\d+", "E#", json.dumps({**card, "lines": [], "fields": [
        f for f in card["fields"] if f[0] != "当前可用积分"]}, ensure_ascii=False))  # noqa: E731
    assert strip(a) == strip(b)  # the same notice, the same words


def test_the_same_form_acts_once_and_roles_and_scope_hold(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    login(client, app, "H1")
    url = f"/console/people/{ids['E1']}"
    html = client.get(url).get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)-award"', html).group(1)
    form = {"csrf_token": csrf_of(html), "token": f"{token}-award", "action": "award", "points": "5", "reason": "两次"}
    client.post(url + "/act", data=form)
    client.post(url + "/act", data=form)  # a double click
    assert len(txns(app, "两次")) == 1
    assert client.post(url + "/act", data={**form, "csrf_token": "x"}).status_code == 400
    manager = app.test_client()
    login(manager, app, "M1")
    assert "没有权限使用「扣除」" in act(manager, ids["E1"], action="deduct", points="5", reason="想扣")
    assert "单次奖励最多 500 积分" in act(manager, ids["E1"], action="award", points="900", reason="太多")
    assert manager.post(f"/console/people/{ids['X1']}/act", data={"csrf_token": csrf_of(html)}).status_code in (400, 404)


def _orders(app: Any, ids: dict[str, int], n: int) -> list[int]:
    bot = app.extensions["pointsbot"]
    out = []
    for i in range(n):
        chat(app, "e1", "兑换 1", f"r-{i}")
    with bot.db.session_scope() as s:
        out = [o.id for o in s.scalars(select(Order).order_by(Order.id))]
    for oid in out:
        chat(app, "e1", f"确认兑换 R{oid}", f"c-{oid}")
    return out


@pytest.fixture
def shop_app(app: Any, ids: dict[str, int]) -> Any:
    from settings import build_settings

    bot = app.extensions["pointsbot"]
    object.__setattr__(bot, "settings", build_settings({**{k: dict(getattr(bot.settings, k)) for k in (
        "server", "console", "points")}, "catalog": [{"sku": "mug", "name": "马克杯", "cost": 10, "stock": 50}]}))
    bot.pipeline.settings = bot.settings
    with bot.db.session_scope() as s:  # the catalog lives in the database: what db upgrade does with [[catalog]]
        seed_from_config(s, bot.settings.catalog, now=bot.db.clock())
    return app


def test_bulk_fulfil_and_reject_report_each_order_and_close_its_cards(shop_app: Any, ids: dict[str, int]) -> None:
    app = shop_app
    orders = _orders(app, ids, 3)
    client = app.test_client()
    login(client, app, "H1")
    html = client.get("/console/orders").get_data(as_text=True)
    assert all(f'value="{o}"' in html for o in orders)
    assert html.count("发放实物：马克杯 ×1") == 3  # what to do, by the item's kind (cards/messages.py FULFIL_TODO)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    resp = client.post("/console/orders/act", data={"csrf_token": csrf_of(html), "token": token, "decision": "reject",
                                                    "preset": "库存不足", "order": [str(o) for o in orders[:2]]})
    text = resp.get_data(as_text=True)
    assert text.count("已拒绝订单") == 2 and "库存不足" in text
    resp = client.post("/console/orders/act", data={"csrf_token": csrf_of(html), "token": token + "x",
                                                    "decision": "fulfil", "preset": "库存不足",  # a select always sends
                                                    "order": [str(o) for o in orders]})
    text = resp.get_data(as_text=True)
    assert text.count("已被拒绝，积分已退回") == 2 and text.count("已发放订单") == 1  # each order's own outcome
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        states = [s.get(Order, o).status for o in orders]
        tasks = [json.loads(r.payload) for r in s.scalars(select(Outbox).where(Outbox.kind == "task"))]
        assert check_invariants(s) == []
    assert states == ["rejected", "rejected", "fulfilled"]
    with bot.db.session_scope() as s:  # the reject presets on the form are no note for a fulfilment
        assert s.get(Order, orders[2]).note == ""
    assert {t["subject"] for t in tasks if t.get("task") == "close_cards"} >= {f"R{o}" for o in orders}
    assert any("拒绝理由" in json.dumps(c, ensure_ascii=False) and "库存不足" in json.dumps(c, ensure_ascii=False)
               for c in notices(app, ids["E1"]))


def test_console_and_chat_deciding_the_same_orders_at_once_leave_one_state(shop_app: Any,
                                                                           ids: dict[str, int]) -> None:
    app = shop_app
    orders = _orders(app, ids, 4)
    client = app.test_client()
    login(client, app, "H1")
    html = client.get("/console/orders").get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    form = {"csrf_token": csrf_of(html), "token": token, "decision": "fulfil", "order": [str(o) for o in orders]}

    def typed() -> None:
        for o in orders:
            chat(app, "a1", f"拒绝订单 R{o} 信息不全", f"race-{o}")

    other = threading.Thread(target=typed)
    other.start()
    client.post("/console/orders/act", data=form)
    other.join()
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        for o in orders:
            order = s.get(Order, o)
            kinds = sorted(t.kind for t in s.scalars(select(Txn).where(Txn.related_txn_id == order.hold_txn_id)))
            assert order.status in ("fulfilled", "rejected") and kinds in (["settle"], ["release"]), (o, kinds)
        assert check_invariants(s) == []


def test_the_appeals_queue_decides_with_the_chats_rules(app: Any, ids: dict[str, int]) -> None:
    chat(app, "e1", "申诉 - 上月全勤未到账", "ap-1")
    manager, hr = app.test_client(), app.test_client()
    login(manager, app, "M1")
    login(hr, app, "H1")
    html = manager.get("/console/appeals").get_data(as_text=True)
    a = re.search(r'name="appeal" value="(\d+)"', html).group(1)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    manager.post("/console/appeals/act", data={"csrf_token": csrf_of(html), "token": token, "appeal": a,
                                               "decision": "deny", "preset": "信息不全"})
    assert f"申诉 A{a} 已驳回，理由: 信息不全" in manager.get("/console/appeals").get_data(as_text=True)
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.get(Appeal, int(a)).status == "denied"
    assert f'value="{a}"' not in hr.get("/console/appeals").get_data(as_text=True)  # decided: gone for everyone


CSV = "employee_no,points,reason,key\nE1,15,年会表演,ny-E1\nE9,5,不存在,ny-E9\nE2,abc,非数字,ny-bad\n"


def test_bulk_awards_preview_then_apply_once_with_the_hr_member_as_actor(app: Any, ids: dict[str, int]) -> None:
    import io as _io

    client = app.test_client()
    login(client, app, "M1")
    assert client.get("/console/awards").status_code == 403  # HR and admins only
    login(client, app, "H1")
    html = client.get("/console/awards").get_data(as_text=True)
    preview = client.post("/console/awards", data={"csrf_token": csrf_of(html),
                                                   "file": (_io.BytesIO(("\ufeff" + CSV).encode()), "a.csv")},
                          content_type="multipart/form-data").get_data(as_text=True)
    assert "E1 张三 +15 年会表演" in preview and "找不到工号为 E9 的员工" in preview and "确认发放 1 笔" in preview
    assert "积分 &#39;abc&#39; 不是正整数" in preview
    assert txns(app, "年会表演") == []  # a preview writes nothing
    for _ in range(2):  # applied twice (a double click): one award
        done = client.post("/console/awards", data={"csrf_token": csrf_of(preview), "apply": "1", "csv_text": CSV})
        assert "已发放" in done.get_data(as_text=True)
    [txn] = txns(app, "年会表演")
    assert (txn.amount, txn.actor_id, txn.category) == (15, ids["H1"], "bulk")
    assert any("年会表演" in json.dumps(c, ensure_ascii=False) and "韩梅" in json.dumps(c, ensure_ascii=False)
               for c in notices(app, ids["E1"]))
    bad = client.post("/console/awards", data={"csrf_token": csrf_of(preview), "csv_text": "a,b\n1,2\n"})
    assert bad.status_code == 400 and "CSV 缺少列：employee_no, key, points, reason" in bad.get_data(as_text=True)


def test_reverse_in_the_console_is_a_correcting_transaction(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    login(client, app, "H1")
    [award] = txns(app, "季度之星")  # 张三's 120 points
    shown = act(client, ids["E1"], action="reverse", txn=f"E{award.id}", reason="重复发放")
    assert f"已撤销 E{award.id}（张三，积分变动 -120）" in shown
    [rev] = txns(app, "重复发放")
    assert (rev.kind, rev.amount, rev.actor_id, rev.reverses_txn_id) == ("reverse", -120, ids["H1"], award.id)
    assert any(c["title"] == f"你的积分记录 E{award.id} 已被撤销" for c in notices(app, ids["E1"]))
    assert "已经处理过了" in act(client, ids["E1"], action="reverse", txn=f"E{award.id}", reason="再来")
    manager = app.test_client()
    login(manager, app, "M1")
    assert "没有权限使用「撤销」" in act(manager, ids["E1"], action="reverse", txn=f"E{award.id}", reason="想撤")


PERSON_ACTIONS = {  # action: fields, and who may (manager, HR, admin)
    "award": ({"points": "5", "reason": "矩阵"}, (True, True, True)),
    "deduct": ({"points": "1", "reason": "矩阵"}, (False, True, True)),
    "reverse": ({"txn": "E1", "reason": "矩阵"}, (False, True, True)),
    "unbind": ({"platform": "wecom"}, (False, True, True)),
    "force_unbind": ({"platform": "wecom", "reason": "矩阵"}, (False, True, True)),
    "bind_code": ({}, (False, True, True)),
    "reactivate": ({}, (False, True, True)),
}


@pytest.mark.parametrize("action", sorted(PERSON_ACTIONS))
@pytest.mark.parametrize("who", ["M1", "H1", "A1"])
def test_every_person_action_by_role(app: Any, ids: dict[str, int], action: str, who: str) -> None:
    fields, allowed = PERSON_ACTIONS[action]
    client = app.test_client()
    login(client, app, who)
    shown = act(client, ids["E1"], action=action, **fields)
    refused = "没有权限使用" in shown or "只有 HR 或管理员" in shown  # by the route, or by the rule
    assert refused != allowed[("M1", "H1", "A1").index(who)], shown


@pytest.mark.parametrize("url", ["/console/orders/act", "/console/appeals/act", "/console/awards",
                                 "/console/people/1/act", "/console/logout"])
def test_every_console_form_needs_its_csrf_token(app: Any, ids: dict[str, int], url: str) -> None:
    client = app.test_client()
    login(client, app, "H1")
    assert client.post(url, data={"decision": "fulfil", "order": "1", "action": "award"}).status_code == 400
    assert client.get("/console/people").status_code == 200  # and the session is still there


def test_a_manager_has_no_orders_queue_and_only_their_teams_appeals(app: Any, ids: dict[str, int]) -> None:
    chat(app, "x1", "申诉 - 别组的申诉", "ap-x")
    client = app.test_client()
    login(client, app, "M1")
    assert client.get("/console/orders").status_code == 403
    assert "别组的申诉" not in client.get("/console/appeals").get_data(as_text=True)


def test_a_decision_made_in_chat_shows_in_the_console_at_once(app: Any, ids: dict[str, int]) -> None:
    reply = chat(app, "x1", "申诉 - 值班积分少了", "ap-chat")
    a = re.search(r"A(\d+)", reply).group(1)
    client = app.test_client()
    login(client, app, "A1")
    assert f'name="appeal" value="{a}"' in client.get("/console/appeals").get_data(as_text=True)
    chat(app, "h1", f"驳回申诉 A{a} 已核实无误", "deny-chat")
    assert f'name="appeal" value="{a}"' not in client.get("/console/appeals").get_data(as_text=True)
    person = client.get(f"/console/people/{ids['X1']}").get_data(as_text=True)
    assert f"A{a}" in person and "已驳回" in person


def test_an_approval_in_the_console_takes_no_denial_preset_as_its_note(app: Any, ids: dict[str, int]) -> None:
    reply = chat(app, "e1", "申诉 - 上月全勤未到账", "ap-ok")
    a = re.search(r"A(\d+)", reply).group(1)
    client = app.test_client()
    login(client, app, "H1")
    html = client.get("/console/appeals").get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    client.post("/console/appeals/act", data={"csrf_token": csrf_of(html), "token": token, "appeal": a,
                                              "decision": "approve", "points": "20", "preset": "已核实无误"})
    with app.extensions["pointsbot"].db.session_scope() as s:
        appeal = s.get(Appeal, int(a))
        assert (appeal.status, appeal.points, appeal.note) == ("approved", 20, "")
