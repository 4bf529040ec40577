"""Gift-card codes through the real endpoints (Catalog 2): the code reaches its owner and is kept nowhere else.

Every code here starts with ``GIFTCODE-``, which the suite's log scan (tests/conftest.py) treats as a leak.
"""
from __future__ import annotations

import json
import time

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from storage import gift_codes
from storage.models import Outbox, ProcessedEvent
from tests.e2e import signing
from tests.e2e.conftest import DINGTALK, WECOM, load_roster
from tests.e2e.test_conversations import Chat

KEY = Fernet.generate_key().decode()
ROSTER = """employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid
E1,张三,研发部,,employee,zhang,zhang
H1,韩梅,人力资源部,,hr,hr1,hr1
"""


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    config["catalog"] = [{"sku": "jd100", "name": "京东卡100元", "cost": 100, "kind": "gift_card"}]
    config["gift_cards"] = {"codes_key": KEY}
    return config


@pytest.fixture
def bot(app):  # type: ignore[no-untyped-def]
    bot = app.extensions["pointsbot"]
    load_roster(bot, ROSTER)
    with bot.db.session_scope() as s:
        gift_codes.add(s, gift_codes.Vault(KEY), "jd100", [(1, "GIFTCODE-W1"), (2, "GIFTCODE-D2")],
                       now=bot.db.clock(), actor_id=None)
    return bot


@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    import responses

    from tests.bot.fake_platforms import FakePlatforms

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        f = FakePlatforms()
        f.install(rsps)
        yield f


def kept(bot) -> str:  # type: ignore[no-untyped-def]
    """Everything the database keeps of messages: the outbox rows and the stored answers."""
    with bot.db.session_scope() as s:
        return "\n".join([*s.scalars(select(Outbox.payload)), *s.scalars(select(ProcessedEvent.response_body))])


def wecom_twice(chat: Chat, user: str, text: str) -> tuple[str, str]:
    """The same WeCom message delivered twice (the platform did not get the first answer): both answers."""
    ts = int(time.time())
    xml = signing.wecom_text_xml(user, WECOM["corp_id"], text, 990001, ts)
    return chat._wecom(xml, ts), chat._wecom(xml, ts)


def dingtalk_twice(client, user: str, text: str, *, group: bool) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    body = signing.robot_body(user, text, f"gift-{group}", group=group)
    answers = []
    for _ in range(2):
        resp = client.post("/callback/dingtalk/robot", data=body,
                           headers=signing.robot_headers(DINGTALK["app_secret"], int(time.time() * 1000)))
        data = json.loads(resp.data)
        answers.append(data.get("markdown", {}).get("text", "") or data.get("text", {}).get("content", ""))
    return answers[0], answers[1]


def test_the_code_goes_one_to_one_and_is_kept_nowhere(client, bot, fake) -> None:
    wecom, ding = Chat(client, "wecom"), Chat(client, "dingtalk")
    ding.say("hr1", "奖励 E1 300 年度之星")
    ding.say("zhang", "兑换 jd100")
    confirmed = ding.say("zhang", "确认兑换 R1")
    assert "卡密已私信发送给你" in confirmed and "GIFTCODE" not in confirmed
    assert "GIFTCODE" not in kept(bot)
    bot.deliver(worker_id="w1")
    to_zhang = [d.text for d in fake.delivered if "zhang" in d.to.split("|")]
    assert sum("GIFTCODE-W1" in t for t in to_zhang) == 2  # one message on each platform he is bound on
    assert not any("GIFTCODE" in d.text for d in fake.delivered if "zhang" not in d.to.split("|"))
    assert "GIFTCODE" not in kept(bot)

    first, again = wecom_twice(wecom, "zhang", "我的订单")
    assert "卡密: GIFTCODE-W1" in first
    assert "GIFTCODE" not in again and "卡密: （已隐藏）" in again  # the redelivery is answered from the store
    private, private_again = dingtalk_twice(client, "zhang", "我的订单", group=False)
    assert "GIFTCODE-W1" in private and "GIFTCODE" not in private_again
    in_group, _ = dingtalk_twice(client, "zhang", "我的订单", group=True)
    assert "GIFTCODE" not in in_group and "单聊" in in_group
    assert "GIFTCODE" not in kept(bot)


def test_a_changed_key_keeps_the_code_notice_waiting_and_says_why(client, bot, fake) -> None:
    chat = Chat(client, "wecom")
    chat.say("hr1", "奖励 E1 300 年度之星")
    chat.say("zhang", "兑换 jd100")
    chat.say("zhang", "确认兑换 R1")
    bot.settings.gift_cards["codes_key"] = Fernet.generate_key().decode()  # an operator's mistake
    bot.deliver(worker_id="w1")
    with bot.db.session_scope() as s:
        row = s.scalar(select(Outbox).where(Outbox.payload.like('%"codes_of"%')))
        assert row.status == "pending" and "codes_key" in row.last_error and "GIFTCODE" not in row.last_error
    assert not any("GIFTCODE" in d.text for d in fake.delivered)
