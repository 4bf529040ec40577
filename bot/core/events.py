"""Platform-neutral events: the contract between the platform edges and the router.

Adapters turn verified, decrypted platform payloads into these frozen values; nothing past the
router ever sees XML, JSON or a platform name other than as the plain ``platform`` string.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused the event, by platform user id (WeCom UserID, DingTalk userId/staffId)."""

    platform_user_id: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a reply belongs. ``reply_url`` is DingTalk's sessionWebhook (empty elsewhere), kept for the
    Stream edge, which answers through it (docs/protocols.md). ``is_group``: a group chat, where
    everyone present reads the reply (DingTalk ``conversationType`` 2; a WeCom app chat is one-to-one)."""

    reply_url: str = ""
    reply_url_expires_at: float | None = None
    is_group: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    platform: str
    event_id: str
    actor: Actor
    conversation: Conversation = field(default_factory=Conversation)
    received_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TextCommand(Event):
    """A typed message. ``mentions`` are platform user ids of @mentioned people, in order."""

    text: str
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CardAction(Event):
    """A button click. ``command`` is the typed command the button stands for (e.g. ``确认兑换 R12``)."""

    command: str
    task_id: str = ""
    response_code: str = ""


# Approval statuses, normalised across WeCom SpStatus and DingTalk type/result.
APPROVAL_RUNNING = "running"
APPROVAL_APPROVED = "approved"
APPROVAL_REJECTED = "rejected"
APPROVAL_WITHDRAWN = "withdrawn"  # withdrawn or terminated while running: changes nothing
APPROVAL_REVOKED = "revoked"  # withdrawn after approval: reverse the award
APPROVAL_OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalChange(Event):
    """An approval instance changed state.

    ``form`` holds (field title, value) pairs when the event carries them; ``form_complete`` is
    False when the platform sends no form values (both platforms' events), so a rule that needs a
    field must fetch the instance detail.
    """

    instance_id: str
    template: str
    status: str
    applicant_user_id: str
    title: str = ""
    form: tuple[tuple[str, str], ...] = ()
    form_complete: bool = False
    finished_at: datetime | None = None  # when the approval finished (naive UTC); caps count in its period


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberLeft(Event):
    user_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberJoined(Event):
    user_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlCheck(Event):
    """DingTalk ``check_url`` and similar handshakes: answered, never dispatched."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown(Event):
    """Verified but not understood: logged and answered 200 so the platform stops retrying."""

    kind: str = ""
