"""DingTalk decrypted events, robot messages, card callbacks and instance details → neutral values."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.dingtalk.parse import (parse_card_callback, parse_event, parse_failed_push, parse_instance_detail,
                                parse_robot)
from bot.errors import MalformedPayload
from bot.core.events import ApprovalChange, CardAction, MemberJoined, MemberLeft, TextCommand, Unknown, UrlCheck

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dingtalk"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def obj(name: str) -> dict:
    return json.loads(text(name))


def test_check_url():
    plain = text("check_url.json")
    event = parse_event(plain, NOW)
    assert isinstance(event, UrlCheck)
    assert event.platform == "dingtalk"
    assert event.event_id == "h:" + hashlib.sha256(plain.encode()).hexdigest()


def test_instance_change_new_shape():
    event = parse_event(text("bpms_instance_change.json"), NOW)
    assert isinstance(event, ApprovalChange)
    assert event.event_id == "c7c7d1b2e3f4"
    assert event.instance_id == "9Qgx5QqjR7axMwxxxx"
    assert event.template == "PROC-FF6Y4BE1N2-ABC"
    assert event.applicant_user_id == "manager75"
    assert event.title == "自测-1016"
    assert event.status == "approved"
    assert event.form_complete is False
    assert event.finished_at == datetime(2017, 5, 24, 2, 17, 52)  # finishTime, epoch milliseconds


def test_instance_change_old_shape_terminate():
    plain = text("bpms_instance_change_old.json")
    event = parse_event(plain, NOW)
    assert isinstance(event, ApprovalChange)
    assert event.status == "withdrawn"
    assert event.event_id.startswith("h:")
    assert event.applicant_user_id == "er5875"


@pytest.mark.parametrize(
    ("type_", "result", "expected"),
    [("finish", "agree", "approved"), ("finish", "refuse", "rejected"), ("terminate", None, "withdrawn"),
     ("start", None, "running"), ("delete", None, "other"), ("finish", None, "other"), ("weird", "agree", "other")],
)
def test_instance_status_mapping(type_, result, expected):
    data = obj("bpms_instance_change.json") | {"type": type_}
    data.pop("result")
    if result:
        data["result"] = result
    assert parse_event(json.dumps(data), NOW).status == expected


def test_task_change_is_unknown():
    event = parse_event(text("bpms_task_change.json"), NOW)
    assert isinstance(event, Unknown) and event.kind == "bpms_task_change" and event.event_id == "d8d8"


def test_member_events_both_casings():
    left = parse_event(text("user_leave_org.json"), NOW)
    assert isinstance(left, MemberLeft) and left.user_ids == ("015xxxx227",) and left.event_id == "e5e5f6"
    joined = parse_event(text("user_add_org_old.json"), NOW)
    assert isinstance(joined, MemberJoined) and joined.user_ids == ("user1", "user2")
    with pytest.raises(MalformedPayload):
        parse_event('{"EventType":"user_leave_org","userId":[]}', NOW)


@pytest.mark.parametrize("bad", ["", "{", "[]", '"x"', "null", '{"EventType":"bpms_instance_change"}'])
def test_event_malformed(bad):
    with pytest.raises(MalformedPayload):
        parse_event(bad, NOW)


def test_robot_text_group_message():
    event = parse_robot(obj("robot_text.json"), NOW)
    assert isinstance(event, TextCommand)
    assert event.text == "加分 @lisi 5 修复线上问题"
    assert event.actor.platform_user_id == "user123"
    assert event.conversation.reply_url == "https://oapi.dingtalk.com/robot/sendBySession?session=abc"
    assert event.conversation.reply_url_expires_at == pytest.approx(1613635652.738)
    assert event.mentions == ("lisi",)  # robot itself and the external user without staffId excluded
    assert event.event_id == "msg0Ab12Cd34=="


def test_robot_single_chat_top_level_content_and_hash_id():
    body = obj("robot_text.json")
    del body["text"], body["msgId"]
    body |= {"content": "  余额 ", "conversationType": "1"}
    event = parse_robot(body, NOW)
    assert isinstance(event, TextCommand)
    assert event.text == "余额"
    assert event.event_id.startswith("h:")
    reordered = dict(reversed(list(body.items())))
    assert parse_robot(reordered, NOW).event_id == event.event_id


def test_robot_mention_of_robot_excluded_even_with_staff_id():
    body = obj("robot_text.json")
    body["atUsers"][0]["staffId"] = "robotstaff"
    assert parse_robot(body, NOW).mentions == ("lisi",)


def test_robot_quota_exhausted_and_non_text():
    event = parse_robot(obj("robot_quota.json"), NOW)
    assert isinstance(event, Unknown) and event.kind == "robot:error:20001"
    picture = obj("robot_text.json")
    del picture["text"]
    picture |= {"msgtype": "picture", "content": {"downloadCode": "x"}}
    event = parse_robot(picture, NOW)
    assert isinstance(event, Unknown) and event.kind == "robot:picture"


def test_robot_without_staff_id_is_unknown():
    body = obj("robot_text.json")
    del body["senderStaffId"]
    assert isinstance(parse_robot(body, NOW), Unknown)


def test_card_callback():
    body = obj("card_callback.json")
    event = parse_card_callback(body, NOW)
    assert isinstance(event, CardAction)
    assert event.command == "确认兑换 R12"
    assert event.task_id == "req42"
    assert event.actor.platform_user_id == "manager1234"
    assert event.event_id.startswith("h:")
    body["content"] = json.dumps({"cardPrivateData": {"params": {"command": "加分 @a 1", "action": "x"}}})
    assert parse_card_callback(body, NOW).command == "加分 @a 1"
    body["content"] = json.dumps({"cardPrivateData": {"params": {}}})
    assert isinstance(parse_card_callback(body, NOW), Unknown)
    body["content"] = "{not json"
    with pytest.raises(MalformedPayload):
        parse_card_callback(body, NOW)


def test_failed_push_items_as_documented_and_flat():
    items = obj("failed_callbacks.json")["failed_list"]
    approval, leaver, joiner, dept = (parse_failed_push(item, NOW) for item in items)
    assert isinstance(approval, ApprovalChange)
    assert (approval.instance_id, approval.template, approval.status, approval.applicant_user_id) == (
        "D-NESTED", "PROC-FULLATT", "approved", "dt_e1")
    assert approval.finished_at == datetime(2026, 3, 9, 21, 0)
    assert isinstance(leaver, MemberLeft) and leaver.user_ids == ("dt_e2",)
    assert isinstance(joiner, MemberJoined) and joiner.user_ids == ("zhangsan",)
    assert isinstance(dept, Unknown) and dept.kind == "org_dept_create"
    flat = {"call_back_tag": "bpms_instance_change", "bpms_instance_change": text("bpms_instance_change.json")}
    assert parse_failed_push(flat, NOW).instance_id == "9Qgx5QqjR7axMwxxxx"  # a JSON string, live shape
    for bad in ({}, {"call_back_tag": "user_leave_org"}, {"call_back_tag": "x", "x": "not json"}, "[]", 7):
        with pytest.raises(MalformedPayload):
            parse_failed_push(bad, NOW)


def test_instance_detail():
    detail = parse_instance_detail(obj("instance_detail.json"))
    assert detail.status == "approved"
    assert detail.applicant == "manager75"
    assert detail.title == "绩效加分申请"
    assert detail.form == (("绩效得分", "92"), ("事由", "修复线上问题"), ("说明", ""))
    assert detail.finished_at == datetime(2026, 11, 1, 12, 0)  # "2026-11-01T12:00Z"


@pytest.mark.parametrize(
    ("status", "result", "expected"),
    [("COMPLETED", "refuse", "rejected"), ("RUNNING", None, "running"), ("TERMINATED", None, "withdrawn"),
     ("CANCELED", None, "other"), ("COMPLETED", None, "other")],
)
def test_instance_detail_status(status, result, expected):
    data = obj("instance_detail.json")
    data["result"] |= {"status": status, "result": result}
    assert parse_instance_detail(data).status == expected


def test_instance_detail_malformed():
    with pytest.raises(MalformedPayload):
        parse_instance_detail({"success": True, "result": {}})


def test_instance_detail_reads_bare_result_object_too() -> None:
    from bot.dingtalk.parse import parse_instance_detail

    bare = {"status": "COMPLETED", "result": "agree", "originatorUserId": "u1", "title": "t",
            "formComponentValues": [{"name": "绩效得分", "value": "92"}]}
    for payload in (bare, {"success": True, "result": bare}):
        detail = parse_instance_detail(payload)
        assert detail.status == "approved" and detail.applicant == "u1" and detail.form == (("绩效得分", "92"),)
