"""Pure text helpers shared by the platform renderers.

Both platforms state their limits in UTF-8 *bytes* (WeCom text/markdown ≤ 2048 bytes, button key ≤ 1024 bytes,
task_id ≤ 128 bytes: docs/protocols.md A.6 and A.8.2; DingTalk msgParam ≤ 15000 bytes: B.7.2), while most of our text is
Chinese (3 bytes a character) with the odd emoji (4 bytes, often several code points glued together). A naive
``s.encode()[:n]`` cuts a character in half and the platform rejects the whole message, so every cut here happens
on a character boundary and, where we can tell cheaply, on a user-perceived character (grapheme) boundary too.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cards.model import Card

ELLIPSIS = "…"

_ZWJ = "\u200d"
# Shown before the typed equivalents of a card's buttons.
REPLY_HINT = "可回复: "

_TASK_ID_OK = re.compile(r"[0-9A-Za-z_\-@]{1,128}")
_TASK_ID_BAD_RUN = re.compile(r"[^0-9A-Za-z_\-@]+")
TASK_ID_MAX_BYTES = 128
_TASK_ID_HASH_LEN = 10


def utf8_len(s: str) -> int:
    """Length of ``s`` in UTF-8 bytes. Lone surrogates (never valid in a message) count as 3, like U+FFFD."""
    return len(s.encode("utf-8", "surrogatepass"))


def _char_bytes(ch: str) -> int:
    cp = ord(ch)
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _extends_previous(ch: str) -> bool:
    """True when ``ch`` belongs to the same user-perceived character as the one before it.

    An approximation of UAX #29 that covers what chat users actually type: combining accents, spacing marks,
    ZWJ emoji sequences, variation selectors (e.g. the emoji-style ❤️), skin-tone modifiers and flag tags.
    """
    cp = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Mc", "Me")
        or ch == _ZWJ
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0xE0100 <= cp <= 0xE01EF  # variation selectors supplement
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # tag characters (subdivision flags)
    )


def _splits_cluster(s: str, cut: int) -> bool:
    """Would ``s[:cut]`` end in the middle of a grapheme cluster?"""
    if cut <= 0 or cut >= len(s):
        return False
    nxt, prev = s[cut], s[cut - 1]
    if _extends_previous(nxt) or prev == _ZWJ:
        return True
    if prev == "\r" and nxt == "\n":
        return True
    if _is_regional_indicator(nxt) and _is_regional_indicator(prev):
        # Flags are pairs of regional indicators: cutting is fine only after an even number of them.
        run = 0
        i = cut - 1
        while i >= 0 and _is_regional_indicator(s[i]):
            run += 1
            i -= 1
        return run % 2 == 1
    return False


def _back_off(s: str, cut: int) -> int:
    while _splits_cluster(s, cut):
        cut -= 1
    return cut


def truncate_bytes(s: str, max_bytes: int, ellipsis: str = ELLIPSIS) -> str:
    """Return ``s`` if it fits in ``max_bytes`` UTF-8 bytes, else a prefix of it plus ``ellipsis`` that fits.

    The prefix never ends inside a character nor (approximately) inside a grapheme cluster, so a flag, a ZWJ
    family emoji or an accented letter is either kept whole or dropped whole. If not even the ellipsis fits, the
    result is a bare prefix without it.
    """
    if max_bytes < 0:
        raise ValueError("max_bytes must be >= 0")
    if utf8_len(s) <= max_bytes:
        return s
    tail = ellipsis if utf8_len(ellipsis) <= max_bytes else ""
    budget = max_bytes - utf8_len(tail)
    used = cut = 0
    for ch in s:
        size = _char_bytes(ch)
        if used + size > budget:
            break
        used += size
        cut += 1
    return s[: _back_off(s, cut)] + tail


def truncate_chars(s: str, n: int, ellipsis: str = ELLIPSIS) -> str:
    """Return ``s`` if it has at most ``n`` code points, else a prefix plus ``ellipsis`` of at most ``n``.

    WeCom states display limits such as "title ≤ 36 characters" in characters, not bytes (docs/protocols.md A.8.2).
    Same boundary rules as :func:`truncate_bytes`.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if len(s) <= n:
        return s
    tail = ellipsis if len(ellipsis) <= n else ""
    return s[: _back_off(s, n - len(tail))] + tail


# Markdown is neutralised only where user text could form syntax, so ordinary punctuation stays as typed
# ("兑换 <编号> [数量]", "1. 第一"). Replacement is by full-width look-alikes rather than backslashes: DingTalk's
# markdown subset does not document backslash escapes (a literal "\" may show).
_LINK = re.compile(r"\]\s*\(")  # "](" is what makes [text](url) a link or an image
_LINK_CHARS = str.maketrans({"[": "［", "]": "］", "(": "（", ")": "）"})
_SCHEME = re.compile(r"(?i)\b(dtmd|https?)://")  # a bare URL becomes a link (dtmd:// a button) on both clients
_TAG = re.compile(r"<([A-Za-z/!][^<>]*)>")  # an HTML tag: WeCom renders <a>, <font> in text and markdown
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!])")
_PAIRED = (("*", "＊"), ("_", "＿"), ("~", "～"))  # emphasis and strike-through need two on a line
_ALWAYS = str.maketrans({"`": "｀", "\\": "＼"})  # code spans; a backslash would escape our own markup after it
_LINE_START = {"#": "＃", ">": "＞"}  # a heading or a quote


def escape_wecom_text(s: str) -> str:
    """WeCom ``text`` content (and passive replies) render ``<a href>`` and friends: ``<``/``>`` that could open
    or close a tag (``<`` before a letter, ``/`` or ``!``) become ``＜``/``＞``; nothing else changes."""
    return _TAG_OPEN.sub("＜", _TAG.sub(r"＜\1＞", s))


def escape_link_label(label: str) -> str:
    """The text inside ``[…](…)``: as ``escape_markdown``, and any bracket too (a ``]`` would end the label)."""
    return escape_markdown(label).translate(_LINK_CHARS)


def escape_markdown(s: str) -> str:
    """Neutralise markdown in user-provided text (names, reasons, item names) before it goes into a markdown body.

    Without this, a reason such as ``[点我](dtmd://dingtalkclient/sendMessage?content=...)`` would render as a
    button that makes the reader send a command of the author's choosing (docs/protocols.md B.6.3), and ``**``/``#``
    would restyle the card. Per line: link syntax (a line with ``](``: its brackets and parentheses), URL schemes
    (``dtmd://``, ``http(s)://``), HTML tags, paired emphasis, code spans, and a heading or quote marker at the start
    become full-width look-alikes; leading indentation (a code block) is dropped. Line breaks are kept.
    """
    out = []
    for line in s.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.lstrip(" \t").translate(_ALWAYS)
        if _LINK.search(line):
            line = line.translate(_LINK_CHARS)
        line = _SCHEME.sub(r"\1：//", escape_wecom_text(line))
        for ch, wide in _PAIRED:
            if line.count(ch) >= 2:
                line = line.replace(ch, wide)
        if line[:1] in _LINE_START:
            line = _LINE_START[line[0]] + line[1:]
        out.append(line)
    return "\n".join(out)


def safe_task_id(raw: str) -> str:
    """Turn ``raw`` into a valid WeCom ``task_id``: 1–128 bytes of ``[0-9A-Za-z_-@]`` (docs/protocols.md A.8.2).

    A valid id is returned unchanged so the ``TaskId`` of a click event equals the card's ``task_id``. Anything
    else is sanitised (runs of other characters become ``_``) and gets ``-`` plus a short SHA-256 prefix of the
    raw value, so two raw ids that sanitise alike still differ. Deterministic: the same raw id always maps to the
    same task id, which WeCom rejects on reuse (42014) – uniqueness per card instance is the caller's job.
    """
    if _TASK_ID_OK.fullmatch(raw):
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:_TASK_ID_HASH_LEN]
    stem = _TASK_ID_BAD_RUN.sub("_", raw).strip("_")
    stem = stem[: TASK_ID_MAX_BYTES - _TASK_ID_HASH_LEN - 1]  # ASCII only now, so chars == bytes
    return f"{stem}-{digest}" if stem else f"t-{digest}"


def reply_hint(commands: Iterable[str]) -> str:
    """The line listing typed equivalents of buttons, for places where buttons cannot be shown or clicked."""
    listed = " / ".join(commands)
    return REPLY_HINT + listed if listed else ""


def kept_tail(card: "Card") -> str:
    """What a cut never removes from a plain-text card: its footer (a page's next-page hint) and typed commands."""
    return "\n".join(p for p in (card.footer, reply_hint(b.command for b in card.buttons)) if p)


def plain_text(card: "Card", max_bytes: int | None = None, escape: Callable[[str], str] = str) -> str:
    """The one card-to-text rendering (WeCom passive replies and text messages, DingTalk text, logs, tests):
    title, lines and ``key: value`` fields, then the footer and the typed commands, which a cut never shortens.
    ``escape`` is the target format's (WeCom renders HTML tags in text)."""
    parts = [card.title, *card.lines, *(f"{k}: {v}" for k, v in card.fields)]
    body, tail = escape("\n".join(p for p in parts if p)), escape(kept_tail(card))
    if max_bytes is None:
        return "\n".join(p for p in (body, tail) if p)
    return fit_with_tail(body, tail, max_bytes)


def fit_with_tail(body: str, tail: str, max_bytes: int, sep: str = "\n") -> str:
    """Join ``body`` and ``tail`` within ``max_bytes``, shortening ``body`` first.

    Used to keep the typed commands (the tail) whole when a long card must be cut: a cut command is worse than
    no command, since typing it would fail.
    """
    if not tail:
        return truncate_bytes(body, max_bytes)
    if not body:
        return truncate_bytes(tail, max_bytes)
    room = max_bytes - utf8_len(tail) - utf8_len(sep)
    if room <= 0:
        return truncate_bytes(tail, max_bytes)
    return truncate_bytes(body, room) + sep + tail
