"""WeCom decrypted XML → neutral events, and the passive-reply builders."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest

from bot.errors import MalformedPayload
from bot.core.events import ApprovalChange, CardAction, MemberJoined, MemberLeft, TextCommand, Unknown
from bot.wecom.crypto import cdata, text_reply_xml, update_button_reply_xml
from bot.wecom.parse import parse, parse_approval_detail

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wecom"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def load(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def sha(text: str) -> str:
    return "h:" + hashlib.sha256(text.encode()).hexdigest()


def test_text_message():
    event = parse(load("text.xml"), NOW)
    assert isinstance(event, TextCommand)
    assert event.platform == "wecom"
    assert event.text == "加分 @lisi 5 帮忙修复线上问题"
    assert event.event_id == "1234567890123456"
    assert event.actor.platform_user_id == "fromUser"
    assert event.mentions == ()
    assert event.received_at == NOW


def test_text_message_official_w2_plaintext():
    event = parse(load("text_w2.xml"), NOW)
    assert isinstance(event, TextCommand)
    assert (event.text, event.event_id, event.actor.platform_user_id) == ("你好", "1456453720", "ChenJiaShun")


def test_template_card_event():
    xml = load("template_card_event.xml")
    event = parse(xml, NOW)
    assert isinstance(event, CardAction)
    assert event.command == "key111"
    assert event.task_id == "taskid111"
    assert event.response_code == "ResponseCode"
    assert event.actor.platform_user_id == "FromUser"
    assert event.event_id == sha(xml)


def test_approval_change_running():
    xml = load("sys_approval_change.xml")
    event = parse(xml, NOW)
    assert isinstance(event, ApprovalChange)
    assert event.instance_id == "202506110001"
    assert event.template == "3TkaH5KFbrG9heEQWLJjhgpFwmqAFB4dLEnapaB7aaa"
    assert event.applicant_user_id == "WuJunJie"  # not the approver WangXiaoMing in SpRecord
    assert event.title == "示例模板"
    assert event.status == "running"
    assert event.form == () and event.form_complete is False
    assert event.event_id == sha(xml)
    assert event.actor.platform_user_id == "sys"
    assert event.finished_at == datetime(2019, 10, 22, 8, 17, 52)  # no SpTime yet: the event's CreateTime


def test_approval_finished_at_is_the_latest_decision():
    """A cap counts in the month the approval finished, not the month we process it (docs/commands.md)."""
    xml = load("sys_approval_change.xml").replace("<SpTime>0</SpTime>", "<SpTime>1769875199</SpTime>")
    xml = xml.replace("</SpRecord>", "</SpRecord><SpRecord><Details><SpTime>1769860800</SpTime></Details></SpRecord>")
    assert parse(xml, NOW).finished_at == datetime(2026, 1, 31, 15, 59, 59)


@pytest.mark.parametrize(
    ("sp_status", "change", "expected"),
    [("1", "1", "running"), ("2", "2", "approved"), ("3", "3", "rejected"), ("4", "6", "withdrawn"),
     ("6", "8", "revoked"), ("7", "1", "other"), ("10", "1", "other"), ("2", "8", "revoked"), ("", "1", "other")],
)
def test_approval_status_mapping(sp_status, change, expected):
    xml = load("sys_approval_change.xml")
    xml = xml.replace("<SpStatus>1</SpStatus>\n    <TemplateId>", f"<SpStatus>{sp_status}</SpStatus>\n    <TemplateId>")
    xml = xml.replace("<StatuChangeEvent>1<", f"<StatuChangeEvent>{change}<")
    assert parse(xml, NOW).status == expected


def test_approval_without_spnostr_uses_spno():
    xml = load("sys_approval_change.xml").replace("<SpNoStr><![CDATA[202506110001]]></SpNoStr>", "")
    xml = xml.replace("<SpNo>202506110001</SpNo>", "<SpNo>202506110002</SpNo>")
    assert parse(xml, NOW).instance_id == "202506110002"
    with pytest.raises(MalformedPayload):
        parse(xml.replace("<SpNo>202506110002</SpNo>", ""), NOW)


def test_same_second_events_get_distinct_ids():
    a = load("delete_user.xml")
    b = a.replace("zhangsan", "wangwu")
    ea, eb = parse(a, NOW), parse(b, NOW)
    assert isinstance(ea, MemberLeft) and ea.user_ids == ("zhangsan",)
    assert ea.event_id != eb.event_id and ea.event_id.startswith("h:")


def test_member_joined_and_update_user_is_unknown():
    joined = parse(load("create_user.xml"), NOW)
    assert isinstance(joined, MemberJoined) and joined.user_ids == ("lisi",)
    other = parse(load("update_user.xml"), NOW)
    assert isinstance(other, Unknown) and other.kind == "event:change_contact:update_user"


def test_enter_agent_and_other_types_are_unknown():
    event = parse(load("enter_agent.xml"), NOW)
    assert isinstance(event, Unknown) and event.kind == "event:enter_agent"
    image = parse("<xml><FromUserName>u</FromUserName><MsgType>image</MsgType><MsgId>7</MsgId></xml>", NOW)
    assert isinstance(image, Unknown) and image.kind == "image" and image.event_id == "7"


@pytest.mark.parametrize(
    "bad",
    ["", "not xml", "<xml><MsgType>text</MsgType>", "<root><MsgType>text</MsgType></root>",
     '<!DOCTYPE x [<!ENTITY e "boom">]><xml><Content>&e;</Content></xml>',
     "<xml><MsgType>text</MsgType><Content>hi</Content></xml>",  # no sender
     "<xml><FromUserName>u</FromUserName><MsgType>event</MsgType><Event>template_card_event</Event></xml>"],
)
def test_malformed_rejected(bad):
    with pytest.raises(MalformedPayload):
        parse(bad, NOW)


def test_approval_detail():
    detail = parse_approval_detail(json.loads(load("approval_detail.json")))
    assert detail.status == "approved"
    assert detail.applicant == "WuJunJie"
    assert detail.template == "3TkaH5KFbrG9heEQWLJjhgpFwmqAFB4dLEnapaB7aaa"
    assert detail.title == "绩效加分"
    assert dict(detail.form) == {
        "事由": "修复线上问题",
        "详情": "凌晨两点",
        "绩效得分": "92",
        "金额": "100.50",
        "日期": "1569859200",
        "类别": "技术,协作",
    }
    status, applicant, template, title, form, finished_at = detail  # usable as a plain tuple
    assert (status, applicant, finished_at) == ("approved", "WuJunJie", None)  # no approver has acted
    data = json.loads(load("approval_detail.json"))
    data["info"]["sp_record"] = [{"details": [{"sptime": 1769875200}]}, {"details": [{"sptime": 1769860800},
                                                                                        {"sptime": 0}]}]
    assert parse_approval_detail(data).finished_at == datetime(2026, 1, 31, 16, 0)  # the latest decision
    with pytest.raises(MalformedPayload):
        parse_approval_detail({"errcode": 0, "info": {}})


# --- passive reply builders -----------------------------------------------------------------------------


def test_text_reply_truncates_on_character_boundary():
    xml = text_reply_xml("u", "corp", 1, "你" * 1000)
    content = SafeET.fromstring(xml).findtext("Content")
    assert content == "你" * 681 + "…"  # 681 × 3 + 3 = 2046 bytes ≤ 2048: cut whole, and marked as cut
    assert text_reply_xml("u", "corp", 1, "a" * 2048).count("a" * 2048) == 1  # what fits is not cut


def test_cdata_escape_keeps_content_intact():
    nasty = "x]]><evil/>]]]>y"
    root = SafeET.fromstring(text_reply_xml("u]]>", "corp", 1476422779, nasty))
    assert root.findtext("Content") == nasty
    assert root.findtext("ToUserName") == "u]]>"
    assert root.find("evil") is None
    assert cdata("a\x00b") == "<![CDATA[ab]]>"


def test_update_button_reply():
    root = SafeET.fromstring(update_button_reply_xml("zhangsan", "ww1", 1700000000, "已处理"))
    assert root.findtext("MsgType") == "update_button"
    assert root.findtext("Button/ReplaceName") == "已处理"
    assert (root.findtext("ToUserName"), root.findtext("FromUserName"), root.findtext("CreateTime")) == (
        "zhangsan", "ww1", "1700000000")
