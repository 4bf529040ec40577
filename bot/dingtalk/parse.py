"""Decrypted DingTalk payloads → neutral events (docs/protocols.md B.1, B.2, B.4, B.5, B.6.2).

Field casing differs between old and new DingTalk pages (``CorpId``/``corpId``, ``UserId``/``userId``),
so readers accept both. ``eventId`` exists only on newer pushes; otherwise the plaintext is hashed
so retries (10 s, 30 s) dedupe to the same id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from bot.clockutil import platform_time
from bot.errors import MalformedPayload
from bot.core.events import (
    APPROVAL_APPROVED,
    APPROVAL_OTHER,
    APPROVAL_REJECTED,
    APPROVAL_RUNNING,
    APPROVAL_WITHDRAWN,
    Actor,
    ApprovalChange,
    CardAction,
    Conversation,
    Event,
    MemberJoined,
    MemberLeft,
    TextCommand,
    Unknown,
    UrlCheck,
)

PLATFORM = "dingtalk"


def _hash(text: str) -> str:
    return "h:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _hash_obj(obj: object) -> str:
    """Hash a JSON body canonically, so key order or whitespace cannot defeat dedupe."""
    try:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        raise MalformedPayload("body is not a JSON object") from None
    return _hash(text)


def _str(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return ""


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _get(data: Mapping[str, Any], *names: str) -> Any:
    """First present key among alternative casings."""
    for name in names:
        if name in data:
            return data[name]
    return None


def _user_ids(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(s for s in (_str(v) for v in items) if s)


# --- encrypted event pushes ---------------------------------------------------------------------


class _Ctx(NamedTuple):
    data: Mapping[str, Any]
    plain: str
    received_at: datetime

    def base(self, actor_id: str = "") -> dict[str, Any]:
        event_id = _str(self.data.get("eventId")) or _hash(self.plain)
        return {
            "platform": PLATFORM,
            "event_id": event_id,
            "actor": Actor(actor_id),
            "received_at": self.received_at,
        }


Builder = Callable[[_Ctx], Event]
_REGISTRY: dict[str, Builder] = {}


def _register(event_type: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _REGISTRY[event_type] = fn
        return fn

    return deco


@_register("check_url")
def _check_url(ctx: _Ctx) -> Event:
    return UrlCheck(**ctx.base())


def instance_status(type_: str, result: str) -> str:
    """Map bpms_instance_change ``type``/``result`` to a neutral approval status."""
    if type_ == "finish":
        return {"agree": APPROVAL_APPROVED, "refuse": APPROVAL_REJECTED}.get(result, APPROVAL_OTHER)
    return {"terminate": APPROVAL_WITHDRAWN, "start": APPROVAL_RUNNING}.get(type_, APPROVAL_OTHER)


@_register("bpms_instance_change")
def _instance_change(ctx: _Ctx) -> Event:
    d = ctx.data
    instance_id = _str(d.get("processInstanceId"))
    if not instance_id:
        raise MalformedPayload("bpms_instance_change without processInstanceId")
    applicant = _str(d.get("staffId"))
    return ApprovalChange(
        **ctx.base(applicant),
        instance_id=instance_id,
        template=_str(d.get("processCode")),
        status=instance_status(_str(d.get("type")), _str(d.get("result"))),
        applicant_user_id=applicant,
        title=_str(d.get("title")),
        form_complete=False,
        finished_at=platform_time(d.get("finishTime")),
    )


def _members(ctx: _Ctx, cls: type[MemberLeft] | type[MemberJoined]) -> Event:
    user_ids = _user_ids(_get(ctx.data, "userId", "UserId", "userid"))  # userid: the failed-push list
    if not user_ids:
        raise MalformedPayload("member event without userId")
    return cls(**ctx.base(), user_ids=user_ids)


@_register("user_leave_org")
def _user_leave(ctx: _Ctx) -> Event:
    return _members(ctx, MemberLeft)


@_register("user_add_org")
def _user_add(ctx: _Ctx) -> Event:
    return _members(ctx, MemberJoined)


def corp_id(data: Mapping[str, Any]) -> str:
    """The pushing corp's id, whichever casing the page version uses."""
    return _str(_get(data, "CorpId", "corpId"))


def parse_event(plain_json: str, received_at: datetime) -> Event:
    """Decrypted event JSON → event; unregistered types (e.g. bpms_task_change) → Unknown."""
    try:
        data = json.loads(plain_json)
    except (TypeError, ValueError, RecursionError):
        raise MalformedPayload("event payload is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedPayload("event payload is not a JSON object")
    ctx = _Ctx(data, plain_json, received_at)
    event_type = _str(data.get("EventType"))
    builder = _REGISTRY.get(event_type)
    if builder is None:
        return Unknown(**ctx.base(), kind=event_type)
    return builder(ctx)


FAILED_PUSH_INNER = ("bpmsCallBackData", "callbackData", "roleLabelChange")
"""Where an item of the failed-push list keeps the event's fields (docs/protocols.md)."""


def _json_object(value: object) -> Mapping[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, Mapping) else None


def parse_failed_push(item: object, received_at: datetime) -> Event:
    """One item of ``call_back/get_call_back_failed_result`` → the event its live push would have been.

    The documented items nest the fields under the tag and then under ``bpmsCallBackData`` (approvals)
    or ``callbackData`` (other events), with member ids as a lowercase ``userid`` list:
    ``{"call_back_tag": "user_leave_org", "user_leave_org": {"userid": ["…"], "corpid": "…"}}``. The
    flat shape of a live push (possibly as a JSON string) is accepted too. Unreadable → MalformedPayload.
    """
    item = _json_object(item)
    tag = _str(item.get("call_back_tag")) if item is not None else ""
    body = _json_object(item.get(tag)) if item is not None and tag else None
    if body is None:
        raise MalformedPayload("failed-push item without a readable payload")
    for key in FAILED_PUSH_INNER:
        inner = _json_object(body.get(key))
        if inner is not None:
            body = {**{k: v for k, v in body.items() if k != key}, **inner}
            break
    return parse_event(json.dumps({**body, "EventType": tag}, ensure_ascii=False), received_at)


# --- robot messages (HTTP mode, B.2) -------------------------------------------------------------


def parse_robot(body: Mapping[str, Any], received_at: datetime) -> TextCommand | Unknown:
    """A robot push (already sign-checked) → TextCommand; non-text, quota or anonymous → Unknown."""
    if not isinstance(body, Mapping):
        raise MalformedPayload("robot body is not a JSON object")
    sender = _str(body.get("senderStaffId"))
    event_id = _str(body.get("msgId")) or _hash_obj(body)
    expires = body.get("sessionWebhookExpiredTime")
    conversation = Conversation(
        reply_url=_str(body.get("sessionWebhook")),
        reply_url_expires_at=expires / 1000
        if isinstance(expires, (int, float)) and not isinstance(expires, bool)
        else None,
        is_group=_str(body.get("conversationType")) == "2",
    )
    base: dict[str, Any] = {
        "platform": PLATFORM,
        "event_id": event_id,
        "actor": Actor(sender),
        "conversation": conversation,
        "received_at": received_at,
    }
    text_obj = body.get("text")
    if isinstance(text_obj, Mapping) and isinstance(text_obj.get("content"), str):
        content: str | None = text_obj["content"]
    else:
        content = body.get("content") if isinstance(body.get("content"), str) else None
    if content is None:
        if "errorCode" in body:
            return Unknown(**base, kind=f"robot:error:{_str(body.get('errorCode'))}")
        return Unknown(**base, kind=f"robot:{_str(body.get('msgtype'))}")
    if not sender:
        # senderStaffId is absent for external users and unpublished robots: no one to credit.
        return Unknown(**base, kind="robot:anonymous")
    robot_id = _str(body.get("chatbotUserId"))
    at_users = body.get("atUsers")
    mentions = tuple(
        staff
        for at in (at_users if isinstance(at_users, list) else [])
        if isinstance(at, Mapping)
        and (staff := _str(at.get("staffId")))
        and not (robot_id and _str(at.get("dingtalkId")) == robot_id)
    )
    return TextCommand(**base, text=content.strip(), mentions=mentions)


# --- interactive card callbacks (B.6.2) ----------------------------------------------------------


def parse_card_callback(body: Mapping[str, Any], received_at: datetime) -> CardAction | Unknown:
    """An ``actionCallback`` → CardAction whose command comes from the button's params."""
    if not isinstance(body, Mapping):
        raise MalformedPayload("card callback is not a JSON object")
    content = body.get("content")
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except (ValueError, RecursionError):
            raise MalformedPayload("card callback content is not JSON") from None
    params = _dict(_dict(_dict(content).get("cardPrivateData")).get("params"))
    command = _str(params.get("command")) or _str(params.get("action"))
    user = _str(body.get("userId"))
    base: dict[str, Any] = {
        "platform": PLATFORM,
        "event_id": _hash_obj(body),
        "actor": Actor(user),
        "received_at": received_at,
    }
    if not command or not user:
        return Unknown(**base, kind="card:" + _str(body.get("type")))
    return CardAction(**base, command=command, task_id=_str(body.get("outTrackId")))


# --- workflow/processInstances detail (B.4) ------------------------------------------------------


class InstanceDetail(NamedTuple):
    """The parts of a DingTalk approval instance the points rules need."""

    status: str
    applicant: str
    title: str
    form: tuple[tuple[str, str], ...]
    finished_at: datetime | None = None


def parse_instance_detail(json_dict: Mapping[str, Any]) -> InstanceDetail:
    """Read ``GET /v1.0/workflow/processInstances`` (or its ``result``) into an InstanceDetail."""
    if not isinstance(json_dict, Mapping):
        raise MalformedPayload("instance detail is not an object")
    # The envelope is {"success", "result": {...}}; the bare ``result`` object has its own string
    # "result" ("agree"), so only a mapping under "result" means an envelope.
    inner = json_dict.get("result")
    result = _dict(inner) if isinstance(inner, Mapping) else json_dict
    status_text = _str(result.get("status")).upper()
    if not status_text:
        raise MalformedPayload("instance detail has no status")
    outcome = _str(result.get("result")).lower()
    if status_text == "COMPLETED":
        status = {"agree": APPROVAL_APPROVED, "refuse": APPROVAL_REJECTED}.get(outcome, APPROVAL_OTHER)
    else:
        status = {"RUNNING": APPROVAL_RUNNING, "TERMINATED": APPROVAL_WITHDRAWN}.get(status_text, APPROVAL_OTHER)
    values = result.get("formComponentValues")
    form = tuple(
        (name, _str(item.get("value")))
        for item in (values if isinstance(values, list) else [])
        if isinstance(item, Mapping) and (name := _str(item.get("name")))
    )
    return InstanceDetail(
        status=status,
        applicant=_str(result.get("originatorUserId")),
        title=_str(result.get("title")),
        form=form,
        finished_at=platform_time(result.get("finishTime")),
    )
