"""Render a neutral :class:`~cards.model.Card` as DingTalk robot messages.

Platform docs (see docs/protocols.md):

* B.2 – webhook-style message JSON, used as the synchronous HTTP reply to a robot message and for ``sessionWebhook``
  posts (https://open.dingtalk.com/document/development/robot-message-type): ``{"msgtype":"markdown",
  "markdown":{"title","text"}}`` and ``{"msgtype":"text","text":{"content"}}``.
* B.6.3 – buttons without a card template: a markdown link to
  ``dtmd://dingtalkclient/sendMessage?content=<URL-encoded text>`` makes the client send that text as the clicking
  user, so a click arrives as the typed command, with the clicker's own role checks. Reported not to work in plain
  ``text`` messages, so text renderings list the commands to type instead.
* B.7.2 – robot API sends (``oToMessages/batchSend``, ``groupMessages/send``): ``msgKey`` ``sampleMarkdown`` with
  ``msgParam`` ``{title, text}`` or ``sampleText`` with ``{content}``; ``msgParam`` is a JSON *string* of at most
  15000 bytes (https://open.dingtalk.com/document/development/the-robot-sends-a-group-message).

Size limits used here:

* ``API_MSG_PARAM_MAX_BYTES`` = 15000 – documented (B.7.2) for the serialised ``msgParam``; we enforce it on the
  whole JSON string, which also bounds the text inside it.
* ``WEBHOOK_MAX_BYTES`` = 20000 – for ``markdown.text`` / ``text.content`` in a webhook-style reply. docs/protocols.md
  records no limit for this path; 20000 bytes is the project's chosen ceiling, not a documented DingTalk number [I].
  Real cards are a few hundred bytes; the limit only guards against a runaway list.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from cards.model import Card
from cards.text import (
    ELLIPSIS,
    escape_link_label,
    escape_markdown,
    plain_text,
    truncate_bytes,
    truncate_chars,
    utf8_len,
)

WEBHOOK_MAX_BYTES = 20000
API_MSG_PARAM_MAX_BYTES = 15000
# The markdown ``title`` is plain text shown in the conversation list and notifications; DingTalk gives no limit,
# a long one is cut by the client anyway [I].
TITLE_MAX_CHARS = 64
DEFAULT_TITLE = "通知"
DTMD_SEND = "dtmd://dingtalkclient/sendMessage?content="


def dtmd_link(label: str, command: str) -> str:
    """A markdown link that, when tapped, makes DingTalk send ``command`` as the tapping user (B.6.3).

    ``quote(..., safe="")`` encodes everything outside the unreserved set, including ``)``, ``&``, ``+``, ``#``
    and spaces, so the URL can neither end the markdown link early nor be misread by the client's query parser.
    """
    return f"[{escape_link_label(label)}]({DTMD_SEND}{quote(command, safe='')})"


def render_markdown(card: Card, max_bytes: int = WEBHOOK_MAX_BYTES) -> dict[str, Any]:
    """A webhook-style ``markdown`` message (B.2) with each button as a ``dtmd`` link (B.6.3).

    All card text is escaped: builders put user-provided names and reasons into lines and fields, and an unescaped
    ``[..](dtmd://..)`` in a reason would be a button sending a command of the author's choice. When the text
    exceeds ``max_bytes`` whole blocks are dropped from the end of the body, never a link.
    """
    blocks = [escape_markdown(line) for line in card.lines if line]
    blocks += [f"**{escape_markdown(k)}**：{escape_markdown(v)}" for k, v in card.fields]
    links = [dtmd_link(b.label, b.command) for b in card.buttons]
    footer = [f"> {escape_markdown(card.footer)}"] if card.footer else []
    head = f"#### {escape_markdown(card.title)}" if card.title else ""
    text = _fit_blocks(head, blocks, [*footer, *links], max_bytes)
    return {"msgtype": "markdown", "markdown": {"title": _title(card), "text": text}}


def render_text(card: Card, max_bytes: int = WEBHOOK_MAX_BYTES) -> dict[str, Any]:
    """A webhook-style ``text`` message (B.2). ``dtmd`` links do not work in text, so buttons are typed commands."""
    return {"msgtype": "text", "text": {"content": plain_text(card, max_bytes)}}


def to_robot_api(message: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Map a webhook-style message to the robot API's ``(msgKey, msgParam)`` (B.7.2).

    ``markdown`` → ``("sampleMarkdown", {"title", "text"})``, ``text`` → ``("sampleText", {"content"})``. The
    text is shortened, at a line break where possible, until :func:`dump_msg_param` of the result is ≤ 15000
    bytes; serialise ``msgParam`` with that function, since the size was measured with it. The cut falls at the
    end, where the ``dtmd`` links are: a card meant for the API should be rendered with a ``max_bytes`` that leaves
    room for JSON escaping (each newline or quote costs one more byte) so that this safety net never fires.
    """
    msgtype = message.get("msgtype")
    if msgtype == "markdown":
        md = message["markdown"]
        param = {"title": md["title"], "text": md["text"]}
        return "sampleMarkdown", _shrink(param, "text")
    if msgtype == "text":
        return "sampleText", _shrink({"content": message["text"]["content"]}, "content")
    raise ValueError(f"no robot API mapping for msgtype {msgtype!r}")


def dump_msg_param(param: dict[str, str]) -> str:
    """``msgParam`` as the JSON string the API wants; UTF-8 kept literal so Chinese costs 3 bytes, not 6."""
    return json.dumps(param, ensure_ascii=False, separators=(",", ":"))


def _title(card: Card) -> str:
    plain = card.title.strip() or next((line for line in card.lines if line.strip()), "") or DEFAULT_TITLE
    return truncate_chars(" ".join(plain.split()), TITLE_MAX_CHARS)


def _fit_blocks(head: str, body: list[str], tail: list[str], max_bytes: int) -> str:
    """Join head, body and tail with blank lines (paragraphs; DingTalk may fold single newlines) within max_bytes.

    Drops body blocks from the end, then the head, marking a cut with an ellipsis block; a lone block that is
    still too big is cut on a character boundary.
    """
    sep = "\n\n"

    def join(blocks: list[str]) -> str:
        return sep.join(b for b in blocks if b)

    kept = list(body)
    text = join([head, *kept, *tail])
    while utf8_len(text) > max_bytes and kept:
        kept.pop()
        text = join([head, *kept, ELLIPSIS, *tail])
    if utf8_len(text) > max_bytes and head:
        text = join([ELLIPSIS, *tail])
    return truncate_bytes(text, max_bytes)


def _shrink(param: dict[str, str], key: str) -> dict[str, str]:
    """Shorten ``param[key]`` until the serialised ``msgParam`` fits ``API_MSG_PARAM_MAX_BYTES``."""
    param = dict(param)
    for other in param:
        if other != key:
            param[other] = truncate_chars(param[other], TITLE_MAX_CHARS)
    excess = utf8_len(dump_msg_param(param)) - API_MSG_PARAM_MAX_BYTES
    while excess > 0:
        value = param[key]
        if value in ("", ELLIPSIS):
            raise ValueError("msgParam exceeds the API limit even without its text")
        budget = max(0, utf8_len(value) - excess - utf8_len(ELLIPSIS))
        cut = truncate_bytes(value, budget, ellipsis="")
        newline = cut.rfind("\n")
        if newline > len(cut) // 2:  # prefer a line break when one is reasonably close to the cut
            cut = cut[:newline]
        param[key] = cut + ELLIPSIS
        excess = utf8_len(dump_msg_param(param)) - API_MSG_PARAM_MAX_BYTES
    return param

