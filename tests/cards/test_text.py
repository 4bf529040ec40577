"""cards/text.py: byte/char truncation never breaks characters, markdown escaping, WeCom task ids."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cards.text import (
    ELLIPSIS,
    escape_markdown,
    escape_wecom_text,
    fit_with_tail,
    reply_hint,
    safe_task_id,
    truncate_bytes,
    truncate_chars,
    utf8_len,
)

# Arbitrary unicode (no lone surrogates: they cannot be sent at all) with emoji, ZWJ sequences, flags and marks
# mixed in, so cuts land inside multi-code-point clusters often.
_SPECIALS = ["👨‍👩‍👧", "🇨🇳", "❤️", "👍🏽", "é", "积分", "\u200d", "\u0301", "\r\n"]
unicode_text = st.lists(
    st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), st.sampled_from(_SPECIALS)),
    max_size=20,
).map("".join)
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")


@settings(max_examples=400)
@given(s=unicode_text, max_bytes=st.integers(min_value=0, max_value=80))
def test_truncate_bytes_is_valid_utf8_prefix_plus_ellipsis(s: str, max_bytes: int) -> None:
    out = truncate_bytes(s, max_bytes)
    raw = out.encode("utf-8")
    assert len(raw) <= max_bytes
    assert raw.decode("utf-8") == out  # valid UTF-8 round trip
    if utf8_len(s) <= max_bytes:
        assert out == s
    else:
        prefix = out[: -len(ELLIPSIS)] if out.endswith(ELLIPSIS) and max_bytes >= 3 else out
        assert s.startswith(prefix)
        assert out == prefix + (ELLIPSIS if max_bytes >= 3 else "")


@settings(max_examples=300)
@given(s=unicode_text, n=st.integers(min_value=0, max_value=30))
def test_truncate_chars_prefix_and_length(s: str, n: int) -> None:
    out = truncate_chars(s, n)
    assert len(out) <= n
    if len(s) <= n:
        assert out == s
    else:
        prefix = out[:-1] if n >= 1 else out
        assert s.startswith(prefix)
        assert out == prefix + (ELLIPSIS if n >= 1 else "")


@pytest.mark.parametrize("cluster", ["👨‍👩‍👧", "🇨🇳", "❤️", "👍🏽", "e\u0301"])
def test_clusters_are_kept_or_dropped_whole(cluster: str) -> None:
    s = "积分" + cluster + "到账"
    for max_bytes in range(0, utf8_len(s)):
        out = truncate_bytes(s, max_bytes, ellipsis="")
        assert out in ("", "积", "积分", "积分" + cluster, "积分" + cluster + "到")


def test_chinese_never_cut_mid_character() -> None:
    s = "兑换咖啡券一张"  # 7 characters × 3 bytes
    assert truncate_bytes(s, 10) == "兑换" + ELLIPSIS  # 6 + 3 bytes; a third character would need 12
    assert truncate_bytes(s, 11) == "兑换" + ELLIPSIS
    assert truncate_bytes(s, 12) == "兑换咖" + ELLIPSIS
    assert truncate_bytes(s, 21) == s
    assert truncate_bytes(s, 2) == ""  # not even the ellipsis fits, and no character does


def test_truncate_rejects_negative_limits() -> None:
    with pytest.raises(ValueError):
        truncate_bytes("x", -1)
    with pytest.raises(ValueError):
        truncate_chars("x", -1)


def test_escape_markdown_neutralises_metacharacters() -> None:
    evil = "[点我](dtmd://dingtalkclient/sendMessage?content=%E5%8F%91%E6%94%BE) **粗** #标题 `code` _x_ <b>"
    out = escape_markdown(evil)
    for syntax in ("[", "](", "**", "`", "_x_", "<b>", "://"):
        assert syntax not in out
    assert "点我" in out and "dtmd" in out  # the text stays readable, only the syntax is gone


@pytest.mark.parametrize(
    "line, expected",
    [
        ("# 标题", "＃ 标题"),
        ("> 引用", "＞ 引用"),
        ("    缩进代码", "缩进代码"),
        ("[链接](http://x)", "［链接］（http：//x）"),
        ("看 https://evil.example/a", "看 https：//evil.example/a"),
        ("<a href='x'>点</a> 和 <font color=red>", "＜a href='x'＞点＜/a＞ 和 ＜font color=red＞"),
        ("**粗** 和 __斜__ 和 ~~删~~", "＊＊粗＊＊ 和 ＿＿斜＿＿ 和 ～～删～～"),
        ("`代码` 与 a\\b", "｀代码｀ 与 a＼b"),
        # ordinary punctuation stays as typed where nothing could form syntax
        ("兑换 <编号> [数量]", "兑换 <编号> [数量]"),
        ("1. 第一", "1. 第一"),
        ("- 项目", "- 项目"),
        ("张三 (市场部)", "张三 (市场部)"),
        ("普通文本 a-b 1.5 3*4 snake_case 1 < 2 > 0 #3", "普通文本 a-b 1.5 3*4 snake_case 1 < 2 > 0 #3"),
    ],
)
def test_escape_markdown_vectors(line: str, expected: str) -> None:
    assert escape_markdown(line) == expected


def test_escape_markdown_keeps_line_breaks_and_applies_per_line() -> None:
    assert escape_markdown("第一行\r\n# 第二行\n> 第三行") == "第一行\n＃ 第二行\n＞ 第三行"


@pytest.mark.parametrize(
    "text, expected",
    [
        ('<a href="https://evil.example/login">点此领取双倍积分</a>', '＜a href="https://evil.example/login"＞点此领取双倍积分＜/a＞'),
        ("<b>粗</b> <!-- x -->", "＜b＞粗＜/b＞ ＜!-- x --＞"),
        ("a<b", "a＜b"),
        ("1 < 2 > 0, <3, <编号>, [数量] **x**", "1 < 2 > 0, <3, <编号>, [数量] **x**"),
    ],
)
def test_escape_wecom_text_vectors(text: str, expected: str) -> None:
    assert escape_wecom_text(text) == expected


def test_safe_task_id_keeps_valid_ids() -> None:
    assert safe_task_id("order-R12@2026_01") == "order-R12@2026_01"


@settings(max_examples=300)
@given(raw=st.text(max_size=300))
def test_safe_task_id_is_valid_and_deterministic(raw: str) -> None:
    out = safe_task_id(raw)
    assert TASK_ID.fullmatch(out)
    assert len(out.encode("utf-8")) <= 128
    assert safe_task_id(raw) == out


def test_safe_task_id_disambiguates_ids_that_sanitise_alike() -> None:
    a, b = safe_task_id("兑换 R12"), safe_task_id("兑换/R12")
    assert a != b
    assert a.startswith("R12-")
    long = safe_task_id("x" * 500 + "!")
    assert len(long) <= 128 and long != safe_task_id("x" * 501 + "!")


def test_reply_hint_and_fit_with_tail_keep_commands_whole() -> None:
    tail = reply_hint(["确认兑换 R12", "取消兑换 R12"])
    assert tail == "可回复: 确认兑换 R12 / 取消兑换 R12"
    assert reply_hint([]) == ""
    out = fit_with_tail("很长的内容" * 500, tail, 200)
    assert utf8_len(out) <= 200
    assert out.endswith("\n" + tail)


def test_a_long_page_keeps_its_footer_on_every_text_format() -> None:
    """2,000-character reasons once cut the WeCom history page, next-page hint included."""
    from cards import render_dingtalk, render_wecom
    from cards.builders import history_card
    from cards.text import utf8_len

    rows = [f"E{i} 03-10 10:00 奖励 +5 " + "很长的理由" * 80 for i in range(10)]
    card = history_card(rows=rows, page=1, pages=3, total=30)
    for text, limit in ((render_wecom.passive_text(card), 2048),
                        (render_wecom.render_markdown(card, 1)["markdown"]["content"], 2048),
                        (render_dingtalk.render_text(card, 2000)["text"]["content"], 2000)):
        assert utf8_len(text) <= limit and "明细 2" in text and "共 30 条" in text


def test_every_text_format_is_the_one_plain_text_rendering() -> None:
    """Card-to-text once existed three times and drifted (the footer and the commands swapped places)."""
    from cards import render_dingtalk, render_wecom
    from cards.model import Button, Card
    from cards.text import escape_wecom_text, plain_text

    card = Card(title="确认兑换：<b>咖啡券</b>", lines=("兑换后余额 80 分",), fields=(("商品", "咖啡券"),),
                buttons=(Button("确认", "确认兑换 R7"), Button("取消", "取消兑换 R7")), footer="30 分钟内有效")
    whole = plain_text(card)
    assert whole.splitlines() == ["确认兑换：<b>咖啡券</b>", "兑换后余额 80 分", "商品: 咖啡券", "30 分钟内有效",
                                  "可回复: 确认兑换 R7 / 取消兑换 R7"]
    assert render_dingtalk.render_text(card)["text"]["content"] == whole
    assert render_wecom.passive_text(card) == plain_text(card, 2048, escape_wecom_text) != whole
    assert "＜b＞" in render_wecom.passive_text(card)
