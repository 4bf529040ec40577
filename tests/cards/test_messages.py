"""Every domain error a raiser can produce has its words in cards/messages.py."""
from __future__ import annotations

import ast
import pathlib
import re

import pytest

from cards import messages as msg
from settings_rules import LIMIT_PERIODS
from storage import appeals, orders
from storage.errors import BudgetExhausted, DomainError, InsufficientPoints, InvalidState, LimitReached, NotPermitted

ROOT = pathlib.Path(__file__).resolve().parents[2]


def raised_reasons() -> dict[str, set[str]]:
    """reason="…" literals at raise sites in storage/ and handlers/, with the params each passes."""
    found: dict[str, set[str]] = {}
    for path in [*ROOT.glob("storage/*.py"), *ROOT.glob("handlers/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "reason" and isinstance(kw.value, ast.Constant) and isinstance(node.func, ast.Name) \
                        and node.func.id[0].isupper():
                    found[kw.value.value] = {k.arg for k in node.keywords if k.arg not in (None, "reason")}
    return found


def test_the_scan_sees_the_raise_sites() -> None:
    assert {"self_award", "appeal_pending", "order_own", "code_locked"} <= set(raised_reasons())


@pytest.mark.parametrize("reason", sorted(raised_reasons()))
def test_every_raised_reason_has_a_chinese_text_that_formats(reason: str) -> None:
    params = raised_reasons()[reason]
    text = msg.domain_error(DomainError(reason=reason, **{p: 7 for p in params}))
    assert text == msg.REASONS[reason].format(**{p: 7 for p in params})
    assert "{" not in text


@pytest.mark.parametrize("period", LIMIT_PERIODS)
def test_every_limit_period_is_worded(period: str) -> None:
    text = msg.domain_error(LimitReached(reason=f"item_limit_{period}", item="年假", limit=1, used=1))
    assert text.startswith("「年假」每") and "限兑 1 个" in text and "{" not in text


@pytest.mark.parametrize("status", [orders.FULFILLED, orders.REJECTED, orders.CANCELLED, orders.LAPSED,
                                    orders.AWAITING_CONFIRMATION, orders.AWAITING_FULFILMENT])
def test_every_order_state_is_worded(status: str) -> None:
    text = msg.domain_error(InvalidState(reason=f"order_{status}", order=12))
    assert "R12" in text and text != msg.domain_error(InvalidState())
    assert msg.order_state(12, status) == text
    assert status in msg.ORDER_STATUS


@pytest.mark.parametrize("status", [appeals.APPROVED, appeals.DENIED])
def test_a_decided_appeal_is_worded(status: str) -> None:
    assert "A5" in msg.domain_error(InvalidState(reason=f"appeal_{status}", appeal=5))


def test_amounts_are_in_the_text() -> None:
    assert "可用 3 积分，需要 10 积分" in msg.domain_error(InsufficientPoints(3, 10))
    assert "剩余 0 积分，需要 50 积分" in msg.domain_error(BudgetExhausted(0, 50))


def test_an_unknown_reason_falls_back_to_its_code_and_missing_params_never_raise() -> None:
    assert msg.domain_error(NotPermitted(reason="no_such_reason")) == msg.DOMAIN_ERRORS["not_permitted"]
    assert msg.domain_error(NotPermitted(reason="order_own")) == msg.DOMAIN_ERRORS["not_permitted"]
    assert msg.domain_error(DomainError()) == "操作未完成，请检查输入后重试。"


def test_the_log_message_stays_english() -> None:
    exc = NotPermitted("own order", reason="order_own", order=3)
    assert str(exc) == "own order" and exc.params == {"order": 3}


@pytest.mark.parametrize("row", [
    {"employee_no": "", "points": "1", "reason": "r", "key": "k"},
    {"employee_no": "E1", "points": "abc", "reason": "r", "key": "k"},
    {"employee_no": "E1", "points": "99999999999", "reason": "r", "key": "k"},
    {"employee_no": "E1", "points": "5", "reason": "", "key": "k"},
    {"employee_no": "E1", "points": "5", "reason": "r", "key": ""},
    {"employee_no": "E1", "points": "5", "reason": "r", "key": "k" * 300},
])
def test_every_bulk_row_problem_is_worded_in_chinese(row: dict) -> None:
    from storage.bulk import _check

    detail = _check(row)
    assert isinstance(detail, str) and re.search(r"[\u4e00-\u9fff]", msg.bulk_row(detail)), detail


def test_the_bulk_lookups_are_worded_too() -> None:
    assert msg.bulk_row("unknown employee E9") == "找不到工号为 E9 的员工"
    assert msg.bulk_row("E3 has left") == "E3 已离职"
    assert msg.bulk_row("key 'a1' was already used for E12") == "key a1 已用于另一笔奖励 E12"
