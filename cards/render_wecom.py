"""Render a neutral :class:`~cards.model.Card` as WeCom ``message/send`` bodies and passive-reply text.

Platform docs (see docs/protocols.md):

* A.8.2 – ``message/send`` (https://developer.work.weixin.qq.com/document/path/90236): ``text`` and ``markdown``
  content ≤ 2048 bytes; ``template_card`` of type ``button_interaction`` with ``main_title.title`` ≤ ~36 chars,
  ``horizontal_content_list`` ≤ 6, ``button_list`` ≤ 6 with ``text`` ≤ ~10 chars and ``key`` ≤ 1024 bytes (unique),
  ``task_id`` ≤ 128 bytes of ``[0-9A-Za-z_-@]`` and unique per app (error 42014 on reuse).
* A.6 – passive replies (https://developer.work.weixin.qq.com/document/path/90241): text ``Content`` ≤ 2048 bytes.

The bodies returned here lack ``touser``/``toparty``: the outbox adds the recipient when it sends. Limits are
enforced here rather than trusted to the builders, because WeCom rejects an over-long message outright and the
outbox would then drop a card the user is waiting for. What does not fit a template card is not lost: extra
fields and lines go into ``sub_title_text``, and extra buttons are listed there as typed commands (each button is
a typed command, cards/model.py).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from cards.model import Button, Card
from cards.text import (
    escape_markdown,
    escape_wecom_text,
    fit_with_tail,
    plain_text,
    reply_hint,
    safe_task_id,
    truncate_chars,
    utf8_len,
)

TEXT_MAX_BYTES = 2048  # text.content, markdown.content and the passive reply Content (A.6, A.8.2)
TITLE_MAX_CHARS = 36  # main_title.title (A.8.2)
BUTTON_TEXT_MAX_CHARS = 10  # button_list[].text (A.8.2)
BUTTON_KEY_MAX_BYTES = 1024  # button_list[].key (A.8.2)
MAX_BUTTONS = 6  # button_list (A.8.2)
MAX_FIELDS = 6  # horizontal_content_list (A.8.2)
# The next three are WeCom's *recommended* display lengths (WC-90236: "建议不超过…"), not hard API limits; docs/protocols.md
# does not list them, so they are our reading [I]. Longer text is cut by the client, so we move or cut it ourselves.
DESC_MAX_CHARS = 44  # main_title.desc
SUB_TITLE_MAX_CHARS = 112  # sub_title_text
FIELD_KEYNAME_MAX_CHARS = 10  # horizontal_content_list[].keyname (WeCom recommends ~5; fields with longer names move)
FIELD_VALUE_MAX_CHARS = 26  # horizontal_content_list[].value

# Our neutral styles → WeCom button ``style`` (1–4; WeCom treats a missing or invalid style as 1). WeCom documents
# the values only as pictures: 1 is the blue, emphasised button; 2 a plain one; 3 a red one [I]. Unknown → 1.
BUTTON_STYLES: dict[str, int] = {"primary": 1, "default": 2, "danger": 3}


def render(card: Card, agent_id: int) -> dict[str, Any]:
    """The ``message/send`` body for ``card``: a template card when it has buttons, plain text otherwise."""
    return render_template_card(card, agent_id) if card.buttons else render_text(card, agent_id)


def render_template_card(card: Card, agent_id: int) -> dict[str, Any]:
    """A ``button_interaction`` template card (A.8.2); clicks come back with ``EventKey`` = the button's command.

    Raises ``ValueError`` for a card without buttons, a command over 1024 bytes or two buttons with the same
    command: those are builder bugs, and cutting a command would make the click run a different command.
    """
    if not card.buttons:
        raise ValueError("a template card needs at least one button; use render_text")
    shown_buttons = card.buttons[:MAX_BUTTONS]
    _check_keys(card.buttons)

    fields, moved_fields = _split_fields(card.fields)
    body_lines = [*card.lines, *(f"{k}: {v}" for k, v in moved_fields)]
    extra_commands = [b.command for b in card.buttons[MAX_BUTTONS:]]
    sub_title = _fit_chars("\n".join(body_lines), reply_hint(extra_commands), SUB_TITLE_MAX_CHARS)

    main_title: dict[str, str] = {"title": truncate_chars(card.title, TITLE_MAX_CHARS)}
    if card.footer:
        main_title["desc"] = truncate_chars(card.footer, DESC_MAX_CHARS)

    template_card: dict[str, Any] = {"card_type": "button_interaction", "main_title": main_title}
    if sub_title:
        template_card["sub_title_text"] = sub_title
    if fields:
        template_card["horizontal_content_list"] = [{"keyname": k, "value": v} for k, v in fields]
    template_card["task_id"] = _task_id(card)
    template_card["button_list"] = [_button(b) for b in shown_buttons]
    return {"msgtype": "template_card", "agentid": agent_id, "template_card": template_card}


def render_text(card: Card, agent_id: int) -> dict[str, Any]:
    """A ``text`` message (A.8.2), content ≤ 2048 bytes; buttons appear as typed commands."""
    return {"msgtype": "text", "agentid": agent_id, "text": {"content": passive_text(card)}}


def render_markdown(card: Card, agent_id: int) -> dict[str, Any]:
    """A ``markdown`` message (A.8.2), content ≤ 2048 bytes. Shown only in the WeCom client, not in WeChat.

    Card text is escaped because names and reasons come from users; our own layout is the only markup.
    """
    parts = [f"**{escape_markdown(card.title)}**", *(escape_markdown(line) for line in card.lines)]
    parts += [f"**{escape_markdown(k)}**：{escape_markdown(v)}" for k, v in card.fields]
    footer = f'<font color="comment">{escape_markdown(card.footer)}</font>' if card.footer else ""
    tail = "\n".join(p for p in (footer, reply_hint(b.command for b in card.buttons)) if p)
    content = fit_with_tail("\n".join(p for p in parts if p), tail, TEXT_MAX_BYTES)
    return {"msgtype": "markdown", "agentid": agent_id, "markdown": {"content": content}}


def passive_text(card: Card) -> str:
    """Plain text for a passive reply (A.6) or a ``text`` message: ≤ 2048 bytes, typed commands kept whole.

    Passive replies cannot carry a template card for a new message, so the buttons are listed as the commands the
    user can type instead. When the card is too long the body is cut, never the command list. XML/CDATA escaping
    is the reply builder's job.
    """
    return plain_text(card, TEXT_MAX_BYTES, escape_wecom_text)


def _button(button: Button) -> dict[str, Any]:
    return {
        "text": truncate_chars(button.label, BUTTON_TEXT_MAX_CHARS),
        "style": BUTTON_STYLES.get(button.style, 1),
        "key": button.command,
    }


def _check_keys(buttons: tuple[Button, ...]) -> None:
    seen: set[str] = set()
    for b in buttons:
        if not b.command:
            raise ValueError(f"button {b.label!r} has no command")
        if utf8_len(b.command) > BUTTON_KEY_MAX_BYTES:
            raise ValueError(f"button command over {BUTTON_KEY_MAX_BYTES} bytes: {b.command[:40]!r}…")
        if b.command in seen:
            raise ValueError(f"two buttons share the command {b.command!r}; WeCom keys must be unique")
        seen.add(b.command)


def _split_fields(
    fields: tuple[tuple[str, str], ...],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Fields that fit the horizontal list (≤ 6, short enough) and those that move to ``sub_title_text``."""
    shown: list[tuple[str, str]] = []
    moved: list[tuple[str, str]] = []
    for key, value in fields:
        fits = 0 < len(key) <= FIELD_KEYNAME_MAX_CHARS and 0 < len(value) <= FIELD_VALUE_MAX_CHARS
        (shown if fits and len(shown) < MAX_FIELDS else moved).append((key, value))
    return shown, moved


def _fit_chars(body: str, tail: str, max_chars: int) -> str:
    """Like :func:`cards.text.fit_with_tail`, counted in characters (WeCom's display limits are in characters)."""
    if not tail:
        return truncate_chars(body, max_chars)
    if not body:
        return truncate_chars(tail, max_chars)
    room = max_chars - len(tail) - 1
    if room <= 0:
        return truncate_chars(tail, max_chars)
    return truncate_chars(body, room) + "\n" + tail


def _task_id(card: Card) -> str:
    """The card's own ``task_id`` made valid, or, if the builder set none, one derived from the card's content.

    The fallback is deterministic (renderers are pure), so sending an identical card twice will be refused by
    WeCom with 42014; builders of cards with buttons should set a per-instance ``task_id``.
    """
    if card.task_id:
        return safe_task_id(card.task_id)
    canonical = json.dumps(card.to_dict(), ensure_ascii=False, sort_keys=True)
    return "card-" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:24]
