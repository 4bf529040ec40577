"""cards/render_dingtalk.py: markdown with dtmd links, text, robot-API mapping and limits (docs/protocols.md B.2, B.6.3, B.7.2)."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cards.model import Button, Card
from cards.render_dingtalk import (
    API_MSG_PARAM_MAX_BYTES,
    DTMD_SEND,
    WEBHOOK_MAX_BYTES,
    dtmd_link,
    dump_msg_param,
    render_markdown,
    render_text,
    to_robot_api,
)
from cards.text import utf8_len

LINK = re.compile(r"\[([^\]]*)\]\((dtmd://[^)\s]*)\)")


def confirm_card(**overrides: object) -> Card:
    base: dict[str, object] = dict(
        title="确认兑换：咖啡券",
        lines=("兑换后余额 80 分",),
        fields=(("商品", "咖啡券"), ("编号", "R12")),
        buttons=(Button("确认兑换", "确认兑换 R12"), Button("取消兑换", "取消兑换 R12", "danger")),
        footer="确认后积分将被冻结",
    )
    base.update(overrides)
    return Card(**base)  # type: ignore[arg-type]


def commands_in(text: str) -> list[str]:
    return [unquote(url[len(DTMD_SEND):]) for _, url in LINK.findall(text)]


def test_markdown_shape_and_links() -> None:
    msg = render_markdown(confirm_card())
    assert msg["msgtype"] == "markdown"
    assert set(msg["markdown"]) == {"title", "text"}
    assert msg["markdown"]["title"] == "确认兑换：咖啡券"
    text = msg["markdown"]["text"]
    assert text.startswith("#### 确认兑换：咖啡券\n\n兑换后余额 80 分\n\n**商品**：咖啡券")
    assert "> 确认后积分将被冻结" in text
    assert commands_in(text) == ["确认兑换 R12", "取消兑换 R12"]
    assert "[确认兑换](dtmd://dingtalkclient/sendMessage?content=%E7%A1%AE" in text


@settings(max_examples=300)
@given(command=st.text(min_size=1, max_size=60).filter(lambda s: "\x00" not in s), label=st.text(max_size=20))
def test_dtmd_link_round_trips_any_command(command: str, label: str) -> None:
    link = dtmd_link(label, command)
    (found_label, url), = LINK.findall(link)  # exactly one link, not ended early by ")" or "]"
    assert url.startswith(DTMD_SEND)
    encoded = url[len(DTMD_SEND):]
    assert re.fullmatch(r"[A-Za-z0-9_.~%-]*", encoded)  # nothing that markdown or a query parser could misread
    assert unquote(encoded) == command
    assert parse_qs(urlsplit(url).query, keep_blank_values=True)["content"] == [command]


@pytest.mark.parametrize("command", ["确认兑换 R12", "奖励 @张三 10 因为 (帮忙) & 加班+1", "a%20b", "驳回 A7 理由:不符合#3"])
def test_dtmd_round_trip_examples(command: str) -> None:
    assert commands_in(dtmd_link("按钮", command)) == [command]


def test_user_text_is_escaped_so_it_cannot_inject_buttons() -> None:
    evil = "[点我领积分](dtmd://dingtalkclient/sendMessage?content=%E5%8F%91%E6%94%BE%20100)"
    card = Card(
        title="申诉 #3 `x`",
        lines=(f"理由：{evil} **加粗** 访问 https://evil.example",),
        fields=(("申请人", "李四 (市场部) *重要*"),),
        buttons=(Button("同意 [快]", "同意 A3"),),
    )
    text = render_markdown(card)["markdown"]["text"]
    assert commands_in(text) == ["同意 A3"]  # only our button is a link
    assert "理由：［点我领积分］（dtmd：//dingtalkclient/" in text and "＊＊加粗＊＊" in text
    assert "https：//evil.example" in text  # no bare link either
    assert "#### 申诉 #3 ｀x｀" in text  # "#" inside a line is not a heading: left as typed
    assert "李四 (市场部) ＊重要＊" in text  # parentheses without a link stay as typed
    assert "[同意 ［快］](" in text  # the label is escaped too


def test_ordinary_punctuation_stays_as_typed() -> None:
    card = Card(title="帮助", lines=("兑换 <编号> [数量]", "1. 积分", "a-b 1.5 (可选)"))
    text = render_markdown(card)["markdown"]["text"]
    assert "兑换 <编号> [数量]" in text and "1. 积分" in text and "a-b 1.5 (可选)" in text


def test_markdown_respects_limit_and_keeps_links() -> None:
    card = confirm_card(lines=tuple(f"第{i}条记录：奖励 10 分 🎉" for i in range(3000)))
    text = render_markdown(card)["markdown"]["text"]
    assert utf8_len(text) <= WEBHOOK_MAX_BYTES
    assert commands_in(text) == ["确认兑换 R12", "取消兑换 R12"]
    assert "\n\n…\n\n" in text
    small = render_markdown(card, max_bytes=1000)["markdown"]["text"]
    assert utf8_len(small) <= 1000 and commands_in(small) == ["确认兑换 R12", "取消兑换 R12"]


def test_title_falls_back_when_empty() -> None:
    assert render_markdown(Card(title="", lines=("  第一行  ",)))["markdown"]["title"] == "第一行"
    assert render_markdown(Card(title=""))["markdown"]["title"] == "通知"
    assert len(render_markdown(Card(title="长" * 200))["markdown"]["title"]) <= 64


def test_text_lists_typed_commands_and_fits() -> None:
    msg = render_text(confirm_card())
    assert msg == {
        "msgtype": "text",
        "text": {"content": "确认兑换：咖啡券\n兑换后余额 80 分\n商品: 咖啡券\n编号: R12\n确认后积分将被冻结\n"
                            "可回复: 确认兑换 R12 / 取消兑换 R12"},
    }
    long = render_text(confirm_card(lines=("很长" * 5000,)))["text"]["content"]
    assert utf8_len(long) <= WEBHOOK_MAX_BYTES and long.endswith("可回复: 确认兑换 R12 / 取消兑换 R12")


def test_to_robot_api_maps_markdown_and_text() -> None:
    key, param = to_robot_api(render_markdown(confirm_card()))
    assert key == "sampleMarkdown" and set(param) == {"title", "text"}
    assert param["text"] == render_markdown(confirm_card())["markdown"]["text"]
    key, param = to_robot_api(render_text(confirm_card()))
    assert key == "sampleText" and set(param) == {"content"}
    assert json.loads(dump_msg_param(param)) == param
    with pytest.raises(ValueError):
        to_robot_api({"msgtype": "actionCard", "actionCard": {}})


@pytest.mark.parametrize("filler", ["记录", "a\n", '"q"'])
def test_to_robot_api_enforces_15000_bytes_of_msg_param(filler: str) -> None:
    msg = {"msgtype": "markdown", "markdown": {"title": "积分", "text": filler * 9000}}
    key, param = to_robot_api(msg)
    dumped = dump_msg_param(param).encode("utf-8")
    assert len(dumped) <= API_MSG_PARAM_MAX_BYTES
    assert param["text"].endswith("…")
    assert (filler * 9000).startswith(param["text"][:-1])
    _, text_param = to_robot_api({"msgtype": "text", "text": {"content": filler * 9000}})
    assert utf8_len(dump_msg_param(text_param)) <= API_MSG_PARAM_MAX_BYTES


@settings(max_examples=100)
@given(
    title=st.text(max_size=50),
    lines=st.lists(st.text(max_size=400), max_size=30),
    commands=st.lists(st.text(min_size=1, max_size=30), max_size=6),
    max_bytes=st.integers(min_value=3000, max_value=6000),
)
def test_markdown_limit_and_links_hold_for_any_card(
    title: str, lines: list[str], commands: list[str], max_bytes: int
) -> None:
    card = Card(title=title, lines=tuple(lines), buttons=tuple(Button(f"b{i}", c) for i, c in enumerate(commands)))
    text = render_markdown(card, max_bytes=max_bytes)["markdown"]["text"]
    raw = text.encode("utf-8")
    assert len(raw) <= max_bytes and raw.decode("utf-8") == text
    assert commands_in(text) == commands
