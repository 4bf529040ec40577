"""Decrypted WeCom XML → neutral events (docs/protocols.md A.7, A.8.4/A.8.5, A.9).

A registry keyed by (MsgType, Event[, ChangeType]) picks a builder; anything unregistered becomes
:class:`Unknown` so the edge can answer 200 and WeCom stops retrying. Events without ``MsgId`` get
an id hashed from the whole plaintext because ``FromUserName + CreateTime`` collides (A.9).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from bot.clockutil import platform_time
from bot.errors import MalformedPayload
from bot.core.events import (
    APPROVAL_APPROVED,
    APPROVAL_OTHER,
    APPROVAL_REJECTED,
    APPROVAL_REVOKED,
    APPROVAL_RUNNING,
    APPROVAL_WITHDRAWN,
    Actor,
    ApprovalChange,
    CardAction,
    Event,
    MemberJoined,
    MemberLeft,
    TextCommand,
    Unknown,
)

PLATFORM = "wecom"

SP_STATUS: Mapping[str, str] = {
    "1": APPROVAL_RUNNING,
    "2": APPROVAL_APPROVED,
    "3": APPROVAL_REJECTED,
    "4": APPROVAL_WITHDRAWN,
    "6": APPROVAL_REVOKED,
}
"""Form-level SpStatus/sp_status (A.7.4); 7 deleted, 10 paid and anything new map to ``other``."""

STATUS_CHANGE_REVOKED = "8"
"""StatuChangeEvent 8 = withdrawn after approval: the award must be reversed whatever SpStatus says."""


class _Ctx(NamedTuple):
    root: Element
    xml_text: str
    received_at: datetime

    def text(self, path: str) -> str:
        node = self.root.find(path)
        return (node.text or "").strip() if node is not None else ""

    def required(self, path: str) -> str:
        value = self.text(path)
        if not value:
            raise MalformedPayload(f"missing element {path}")
        return value

    def base(self) -> dict[str, Any]:
        sender = self.text("FromUserName")
        return {
            "platform": PLATFORM,
            "event_id": self.text("MsgId") or hash_id(self.xml_text),
            "actor": Actor(sender),
            "received_at": self.received_at,
        }


Builder = Callable[[_Ctx], Event]
_REGISTRY: dict[tuple[str, ...], Builder] = {}


def _register(*key: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _REGISTRY[key] = fn
        return fn

    return deco


def hash_id(text: str) -> str:
    """Dedupe id for payloads without a platform id: ``h:`` + SHA-256 of the decrypted text."""
    return "h:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@_register("text")
def _text(ctx: _Ctx) -> Event:
    ctx.required("FromUserName")
    return TextCommand(**ctx.base(), text=ctx.text("Content"))


@_register("event", "template_card_event")
def _card(ctx: _Ctx) -> Event:
    ctx.required("FromUserName")
    base = ctx.base() | {"event_id": hash_id(ctx.xml_text)}
    return CardAction(
        **base,
        command=ctx.required("EventKey"),
        task_id=ctx.text("TaskId"),
        response_code=ctx.text("ResponseCode"),
    )


def _finished_at(node_times: list[str | None], fallback: object) -> datetime | None:
    """The latest approver's decision time (``SpTime``), else the event's ``CreateTime``.

    An approval finishes when its last node is decided; reconciliation may process it days later,
    and a monthly cap counts it in the month it finished.
    """
    times = [t for t in (platform_time(v) for v in node_times) if t is not None]
    return max(times) if times else platform_time(fallback)


@_register("event", "sys_approval_change")
def _approval(ctx: _Ctx) -> Event:
    info = "ApprovalInfo/"
    instance_id = ctx.text(info + "SpNoStr") or ctx.required(info + "SpNo")
    status = SP_STATUS.get(ctx.text(info + "SpStatus"), APPROVAL_OTHER)
    if ctx.text(info + "StatuChangeEvent") == STATUS_CHANGE_REVOKED:
        status = APPROVAL_REVOKED
    return ApprovalChange(
        **(ctx.base() | {"event_id": hash_id(ctx.xml_text)}),
        instance_id=instance_id,
        template=ctx.text(info + "TemplateId"),
        status=status,
        applicant_user_id=ctx.text(info + "Applyer/UserId"),
        title=ctx.text(info + "SpName"),
        form_complete=False,
        finished_at=_finished_at([n.text for n in ctx.root.iterfind(info + "SpRecord/Details/SpTime")],
                                 ctx.text("CreateTime")),
    )


@_register("event", "change_contact", "delete_user")
def _member_left(ctx: _Ctx) -> Event:
    return MemberLeft(**ctx.base(), user_ids=(ctx.required("UserID"),))


@_register("event", "change_contact", "create_user")
def _member_joined(ctx: _Ctx) -> Event:
    return MemberJoined(**ctx.base(), user_ids=(ctx.required("UserID"),))


def _kind(msg_type: str, event: str, change: str) -> str:
    return ":".join(part for part in (msg_type, event, change) if part)


def parse(xml_text: str, received_at: datetime) -> Event:
    """Turn a decrypted WeCom plaintext into an event; malformed XML raises MalformedPayload."""
    if not isinstance(xml_text, str):
        raise MalformedPayload("payload is not text")
    try:
        root = SafeET.fromstring(xml_text)
    except (ParseError, DefusedXmlException, ValueError, UnicodeError, LookupError):
        raise MalformedPayload("payload is not well-formed XML") from None
    if root.tag != "xml":
        raise MalformedPayload("payload root is not <xml>")
    ctx = _Ctx(root, xml_text, received_at)
    msg_type = ctx.text("MsgType").lower()
    event = ctx.text("Event").lower() if msg_type == "event" else ""
    change = ctx.text("ChangeType").lower() if event else ""
    builder = _REGISTRY.get((msg_type, event, change)) or _REGISTRY.get((msg_type, event) if event else (msg_type,))
    if builder is None:
        return Unknown(**ctx.base(), kind=_kind(msg_type, event, change))
    return builder(ctx)


# --- oa/getapprovaldetail (A.8.4, A.8.5) -------------------------------------------------------


class ApprovalDetail(NamedTuple):
    """The parts of an approval instance the points rules need."""

    status: str
    applicant: str
    template: str
    title: str
    form: tuple[tuple[str, str], ...]
    finished_at: datetime | None = None


def _str(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return ""


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _lang_text(items: object) -> str:
    """First ``text`` of a ``[{"text","lang"}]`` list, preferring zh_CN."""
    entries = [_dict(item) for item in _list(items)]
    for entry in entries:
        if entry.get("lang") == "zh_CN" and _str(entry.get("text")):
            return _str(entry.get("text"))
    return next((_str(e.get("text")) for e in entries if _str(e.get("text"))), "")


def _control_value(control: str, value: Mapping[str, Any]) -> str | None:
    if control in ("Text", "Textarea"):
        return _str(value.get("text"))
    if control == "Number":
        return _str(value.get("new_number"))
    if control == "Money":
        return _str(value.get("new_money"))
    if control == "Date":
        return _str(_dict(value.get("date")).get("s_timestamp"))
    if control == "Selector":
        options = _list(_dict(value.get("selector")).get("options"))
        return ",".join(t for t in (_lang_text(_dict(o).get("value")) for o in options) if t)
    return None


def parse_approval_detail(json_dict: Mapping[str, Any]) -> ApprovalDetail:
    """Read an ``oa/getapprovaldetail`` response (or its ``info`` object) into an ApprovalDetail.

    Controls other than Text/Textarea/Number/Money/Date/Selector are skipped: no rule reads them.
    """
    if not isinstance(json_dict, Mapping):
        raise MalformedPayload("approval detail is not an object")
    info = _dict(json_dict.get("info")) if "info" in json_dict else json_dict
    if not info or (not _str(info.get("sp_no")) and "sp_status" not in info):
        raise MalformedPayload("approval detail has no info")
    form: list[tuple[str, str]] = []
    for item in _list(_dict(info.get("apply_data")).get("contents")):
        item = _dict(item)
        title = _lang_text(item.get("title"))
        value = _control_value(_str(item.get("control")), _dict(item.get("value")))
        if title and value is not None:
            form.append((title, value))
    return ApprovalDetail(
        status=SP_STATUS.get(_str(info.get("sp_status")), APPROVAL_OTHER),
        applicant=_str(_dict(info.get("applyer")).get("userid")),
        template=_str(info.get("template_id")),
        title=_str(info.get("sp_name")),
        form=tuple(form),
        finished_at=_finished_at([_str(_dict(d).get("sptime")) for r in _list(info.get("sp_record"))
                                  for d in _list(_dict(r).get("details"))], None),
    )
