"""HR's bulk awards from a CSV (``flask --app app award-csv FILE``): one transaction and one key per row.

Why per-row transactions: a bad row (unknown employee, a leaver) must not undo the good ones, and a
crash half-way leaves the file safe to run again. Why the key comes from the file: running the same
file twice (or a corrected copy of it) must award nothing twice, so the row's own ``key`` is the
ledger's idempotency key (``csv:{key}``). A key already used for a *different* award is rejected
rather than silently reported as done.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Any, Callable

from sqlalchemy import select

from settings import Settings
from storage import outbox
from storage.db import Database
from storage.errors import DomainError
from storage.kinds import TxnKind
from storage.ledger import MAX_POINTS, Ledger
from storage.models import Employee

_INT = re.compile(r"^\+?\d+$")
MAX_KEY = 191 - len("csv:")


def _check(row: dict[str, Any]) -> tuple[str, int, str, str] | str:
    """(employee_no, points, reason, key), or the reason the row is rejected."""
    no = (row.get("employee_no") or "").strip()
    raw = (row.get("points") or "").strip()
    reason = (row.get("reason") or "").strip()
    key = (row.get("key") or "").strip()
    if not no:
        return "employee_no is empty"
    if not _INT.match(raw):
        return f"points {raw!r} is not a positive whole number"
    points = int(raw)
    if points <= 0 or points > MAX_POINTS:
        return f"points {points} must be between 1 and {MAX_POINTS}"
    if not reason:
        return "reason is empty"
    if not key:
        return "key is empty"
    if len(key) > MAX_KEY:
        return f"key is longer than {MAX_KEY} characters"
    return no, points, reason[:500], key


NoticeCard = Callable[[int, str, int, int], dict[str, Any]]
"""(points, reason, balance, txn id) → the card the receiver is sent, as the outbox stores it; the caller
passes it (cli.py: cards/builders_people.py ``award_notice``), since storage/ words no card."""


COLUMNS = ("employee_no", "points", "reason", "key")


def read_rows(text: str) -> tuple[list[tuple[int, dict[str, Any]]], str]:
    """(line, row) pairs of a bulk-award CSV, or the missing columns named."""
    reader = csv.DictReader(io.StringIO(text))
    missing = set(COLUMNS) - set(reader.fieldnames or [])
    if missing:
        return [], f"missing column(s) {', '.join(sorted(missing))}"
    return [(reader.line_num, r) for r in reader], ""


def _judge(s: Any, ledger: Ledger, no: str, points: int, key: str) -> tuple[str, str, Employee | None]:
    """What a checked row comes to before anything is written: ("award"|"already"|"rejected", detail, employee).
    One judgement for the preview and the real run, so the preview says what the run will do."""
    emp = s.scalar(select(Employee).where(Employee.employee_no == no))
    if emp is None:
        return "rejected", f"unknown employee {no}", None
    done = ledger.find(f"csv:{key}")
    if done is None:
        return "award", "", emp
    if done.employee_id == emp.id and done.amount == points and done.kind == TxnKind.AWARD:
        return "already", f"E{done.id} {no} {points}", emp
    return "rejected", f"key {key!r} was already used for E{done.id}", emp


def check_rows(db: Database, rows: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str, str]]:
    """What ``award_rows`` would do with each row, writing nothing: (line, "award"|"already"|"rejected", detail)."""
    out: list[tuple[int, str, str]] = []
    with db.read_scope() as s:
        for line, row in rows:
            checked = _check(row)
            if isinstance(checked, str):
                out.append((line, "rejected", checked))
                continue
            no, points, reason, key = checked
            status, detail, emp = _judge(s, Ledger(s, db.clock), no, points, key)
            if status == "award" and emp is not None and emp.status != "active":
                status, detail = "rejected", f"{no} has left"  # the run's ledger would refuse the frozen wallet
            elif status == "award" and emp is not None:
                detail = f"{no} {emp.name} +{points} {reason}"
            out.append((line, status, detail))
    return out


def award_rows(db: Database, settings: Settings, rows: list[tuple[int, dict[str, Any]]], *,
               notice: NoticeCard, actor_id: int | None = None) -> list[tuple[int, str, str]]:
    """Award each row; returns (line, "awarded"|"already"|"rejected", detail) in file order. ``actor_id``: who
    gave them (the console's HR member; the CLI's operator is no employee)."""
    results: list[tuple[int, str, str]] = []
    for line, row in rows:
        checked = _check(row)
        if isinstance(checked, str):
            results.append((line, "rejected", checked))
            continue
        no, points, reason, key = checked
        try:
            with db.session_scope() as s:
                ledger = Ledger(s, db.clock, settings.points["validity_days"], settings.tz)
                status, detail, emp = _judge(s, ledger, no, points, key)
                if status != "award" or emp is None:
                    results.append((line, status, detail))
                    continue
                txn = ledger.award(emp.id, points, idem_key=f"csv:{key}", reason=reason, category="bulk",
                                   actor_id=actor_id)
                balance = ledger.balance(ledger.wallet(emp.id).id)
                outbox.enqueue(s, "notice", {"employee_id": emp.id, "card": notice(points, reason, balance, txn.id)},
                               now=db.clock(), idem_key=f"csv-notice:{key}")
                results.append((line, "awarded", f"E{txn.id} {no} {points}"))
        except DomainError as exc:
            results.append((line, "rejected", f"{no}: {type(exc).__name__} {exc}"[:300]))
    return results
