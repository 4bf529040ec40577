"""cards/render_wecom.py: template-card, text and passive-reply shapes and WeCom limits (docs/protocols.md A.6, A.8.2)."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cards.model import Button, Card
from cards.render_wecom import (
    BUTTON_TEXT_MAX_CHARS,
    TEXT_MAX_BYTES,
    TITLE_MAX_CHARS,
    passive_text,
    render,
    render_markdown,
    render_template_card,
    render_text,
)
from cards.text import utf8_len

AGENT = 1000002
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")


def confirm_card(**overrides: object) -> Card:
    base: dict[str, object] = dict(
        title="确认兑换：咖啡券",
        lines=("兑换后余额 80 分",),
        fields=(("商品", "咖啡券"), ("花费", "20 分"), ("编号", "R12")),
        buttons=(Button("确认兑换", "确认兑换 R12"), Button("取消兑换", "取消兑换 R12", "danger")),
        footer="确认后积分将被冻结",
        task_id="order-R12-confirm",
    )
    base.update(overrides)
    return Card(**base)  # type: ignore[arg-type]


def test_template_card_has_required_fields() -> None:
    body = render_template_card(confirm_card(), AGENT)
    assert body["msgtype"] == "template_card"
    assert body["agentid"] == AGENT
    assert "touser" not in body
    tc = body["template_card"]
    assert tc["card_type"] == "button_interaction"
    assert tc["main_title"] == {"title": "确认兑换：咖啡券", "desc": "确认后积分将被冻结"}
    assert tc["sub_title_text"] == "兑换后余额 80 分"
    assert tc["horizontal_content_list"] == [
        {"keyname": "商品", "value": "咖啡券"},
        {"keyname": "花费", "value": "20 分"},
        {"keyname": "编号", "value": "R12"},
    ]
    assert tc["task_id"] == "order-R12-confirm"
    assert tc["button_list"] == [
        {"text": "确认兑换", "style": 1, "key": "确认兑换 R12"},
        {"text": "取消兑换", "style": 3, "key": "取消兑换 R12"},
    ]


def test_button_styles_map_and_unknown_falls_back_to_1() -> None:
    card = confirm_card(
        buttons=(Button("a", "a", "primary"), Button("b", "b", "default"), Button("c", "c", "danger"),
                 Button("d", "d", "weird")),
    )
    styles = [b["style"] for b in render_template_card(card, AGENT)["template_card"]["button_list"]]
    assert styles == [1, 2, 3, 1]


def test_at_most_six_buttons_and_the_rest_are_typed_commands() -> None:
    buttons = tuple(Button(f"选项{i}", f"选择 {i}") for i in range(8))
    tc = render_template_card(confirm_card(buttons=buttons), AGENT)["template_card"]
    assert len(tc["button_list"]) == 6
    assert "选择 6" in tc["sub_title_text"] and "选择 7" in tc["sub_title_text"]


def test_at_most_six_fields_and_the_rest_move_to_sub_title() -> None:
    fields = tuple((f"项{i}", f"值{i}") for i in range(9))
    tc = render_template_card(confirm_card(fields=fields, lines=()), AGENT)["template_card"]
    assert len(tc["horizontal_content_list"]) == 6
    assert "项6: 值6" in tc["sub_title_text"]


def test_long_field_value_moves_to_sub_title_instead_of_being_cut() -> None:
    reason = "因为在季度项目中主动承担了额外的测试和文档工作，表现突出"
    tc = render_template_card(confirm_card(fields=(("理由", reason),), lines=()), AGENT)["template_card"]
    assert "horizontal_content_list" not in tc
    assert reason in tc["sub_title_text"]


def test_title_and_button_text_are_cut_to_limits() -> None:
    card = confirm_card(title="超" * 80, buttons=(Button("非常非常长的按钮文字超过十个字", "确认 R1"),))
    tc = render_template_card(card, AGENT)["template_card"]
    assert len(tc["main_title"]["title"]) <= TITLE_MAX_CHARS
    assert len(tc["button_list"][0]["text"]) <= BUTTON_TEXT_MAX_CHARS
    assert tc["button_list"][0]["key"] == "确认 R1"  # the command itself is never cut


def test_task_id_is_made_valid() -> None:
    tc = render_template_card(confirm_card(task_id="兑换 R12/确认 " + "x" * 300), AGENT)["template_card"]
    assert TASK_ID.fullmatch(tc["task_id"])
    assert len(tc["task_id"].encode()) <= 128


def test_missing_task_id_gets_a_deterministic_valid_one() -> None:
    a = render_template_card(confirm_card(task_id=""), AGENT)["template_card"]["task_id"]
    b = render_template_card(confirm_card(task_id=""), AGENT)["template_card"]["task_id"]
    c = render_template_card(confirm_card(task_id="", title="别的卡片"), AGENT)["template_card"]["task_id"]
    assert a == b != c
    assert TASK_ID.fullmatch(a)


@pytest.mark.parametrize(
    "buttons",
    [
        (Button("a", "x" * 1025),),
        (Button("a", "同一个命令"), Button("b", "同一个命令")),
        (Button("a", ""),),
        (),
    ],
)
def test_invalid_buttons_are_rejected(buttons: tuple[Button, ...]) -> None:
    with pytest.raises(ValueError):
        render_template_card(confirm_card(buttons=buttons), AGENT)


def test_key_of_exactly_1024_bytes_is_accepted() -> None:
    command = "兑" * 341 + "x"  # 1023 + 1 bytes
    assert utf8_len(command) == 1024
    body = render_template_card(confirm_card(buttons=(Button("ok", command),)), AGENT)
    assert body["template_card"]["button_list"][0]["key"] == command


def test_render_picks_text_for_cards_without_buttons() -> None:
    body = render(Card(title="余额", lines=("当前 100 分",)), AGENT)
    assert body == {"msgtype": "text", "agentid": AGENT, "text": {"content": "余额\n当前 100 分"}}
    assert render(confirm_card(), AGENT)["msgtype"] == "template_card"


def test_text_is_cut_to_2048_bytes_on_character_boundaries() -> None:
    card = Card(title="积分记录", lines=tuple(f"第{i}条：奖励 10 分，理由：帮助同事🎉" for i in range(300)))
    content = render_text(card, AGENT)["text"]["content"]
    raw = content.encode("utf-8")
    assert len(raw) <= TEXT_MAX_BYTES
    assert raw.decode("utf-8") == content
    assert content.startswith("积分记录\n第0条")


def test_passive_text_lists_commands_and_keeps_them_when_cut() -> None:
    card = confirm_card(lines=("很长的说明" * 600,))
    text = passive_text(card)
    assert utf8_len(text) <= TEXT_MAX_BYTES
    assert text.endswith("可回复: 确认兑换 R12 / 取消兑换 R12")
    assert passive_text(confirm_card()).startswith("确认兑换：咖啡券\n兑换后余额 80 分\n商品: 咖啡券")


def test_markdown_escapes_user_text_and_fits() -> None:
    card = Card(title="奖励通知", lines=("理由：[点我](http://evil) **粗体** #1",) * 200, footer="`注意`")
    body = render_markdown(card, AGENT)
    assert body["msgtype"] == "markdown" and body["agentid"] == AGENT
    content = body["markdown"]["content"]
    assert utf8_len(content) <= TEXT_MAX_BYTES
    assert "[点我]" not in content and "](" not in content and "`" not in content
    assert content.startswith("**奖励通知**\n理由：［点我］（http：//evil） ＊＊粗体＊＊ #1")


def test_text_and_passive_replies_neutralise_html_tags_only() -> None:
    """WeCom renders <a href> in text messages: a reason must not become a phishing link."""
    reason = '<a href="https://evil.example/login">点此领取双倍积分</a>'
    card = Card(title="你获得了 50 积分", fields=(("理由", reason),), footer="兑换 <编号> [数量] · 1 < 2")
    for text in (passive_text(card), render_text(card, AGENT)["text"]["content"]):
        assert '理由: ＜a href="https://evil.example/login"＞点此领取双倍积分＜/a＞' in text
        assert "兑换 <编号> [数量] · 1 < 2" in text  # nothing else changes


@settings(max_examples=150)
@given(
    title=st.text(max_size=100),
    lines=st.lists(st.text(max_size=300), max_size=12),
    fields=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=10),
    labels=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=9, unique=True),
)
def test_template_card_limits_hold_for_any_card(
    title: str, lines: list[str], fields: list[tuple[str, str]], labels: list[str]
) -> None:
    buttons = tuple(Button(label, f"命令 {i} {label}"[:300]) for i, label in enumerate(labels))
    card = Card(title=title, lines=tuple(lines), fields=tuple(fields), buttons=buttons, task_id=title)
    tc = render_template_card(card, AGENT)["template_card"]
    assert len(tc["main_title"]["title"]) <= TITLE_MAX_CHARS
    assert len(tc.get("horizontal_content_list", [])) <= 6
    assert 1 <= len(tc["button_list"]) <= 6
    assert all(len(b["text"]) <= BUTTON_TEXT_MAX_CHARS for b in tc["button_list"])
    assert all(utf8_len(b["key"]) <= 1024 for b in tc["button_list"])
    assert TASK_ID.fullmatch(tc["task_id"])
    assert utf8_len(passive_text(card)) <= TEXT_MAX_BYTES
