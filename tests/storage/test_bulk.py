"""award-csv: each row its own transaction and key; bad rows rejected with a reason; a rerun awards nothing."""
from __future__ import annotations

import csv
import io
import json

from sqlalchemy import select

from cards.builders_people import award_notice
from settings import build_settings
from storage.bulk import award_rows
from storage.employees import mark_left
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Employee, Outbox, Txn
from tests.storage.factories import make_employee

CSV = """employee_no,points,reason,key
E1,50,年会表演,2026-annual-E1
E2,+30,志愿活动,2026-vol-E2
E9,10,不存在的人,k-e9
E1,abc,非数字,k-bad1
E1,0,零分,k-zero
E1,-5,负数,k-neg
E1,10,,k-noreason
E1,10,没有键,
E1,2.5,小数,k-frac
E3,10,已离职,k-left
E2,99,同键不同奖励,2026-annual-E1
"""


def notice(points: int, reason: str, balance: int, txn_id: int) -> dict:
    return award_notice(points=points, giver="HR", reason=reason, balance=balance, txn_id=txn_id).to_dict()


def rows(text: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return [(reader.line_num, r) for r in reader]


def setup(db, clock) -> None:
    with db.session_scope() as s:
        make_employee(s, "E1")
        make_employee(s, "E2")
        e3 = make_employee(s, "E3")
        mark_left(s, Ledger(s, db.clock), e3, now=clock(), actor_id=None, why="test")


def test_rows_are_awarded_rejected_and_idempotent(sqlite_db, clock) -> None:
    setup(sqlite_db, clock)
    settings = build_settings({})
    first = award_rows(sqlite_db, settings, rows(CSV), notice=notice)
    status = [(line, st) for line, st, _ in first]
    assert status == [(2, "awarded"), (3, "awarded"), (4, "rejected"), (5, "rejected"), (6, "rejected"),
                      (7, "rejected"), (8, "rejected"), (9, "rejected"), (10, "rejected"), (11, "rejected"),
                      (12, "rejected")]
    reasons = {line: detail for line, _, detail in first}
    assert "unknown employee E9" in reasons[4]
    assert "not a positive whole number" in reasons[5] and "must be between" in reasons[6]
    assert "not a positive whole number" in reasons[7] and "reason is empty" in reasons[8]
    assert "key is empty" in reasons[9] and "not a positive whole number" in reasons[10]
    assert "WalletFrozen" in reasons[11] and "already used" in reasons[12]
    with sqlite_db.session_scope() as s:
        txns = [(t.idem_key, t.amount, t.category) for t in s.scalars(select(Txn).where(Txn.kind == "award"))]
        assert txns == [("csv:2026-annual-E1", 50, "bulk"), ("csv:2026-vol-E2", 30, "bulk")]
        notices = [json.loads(r.payload) for r in s.scalars(select(Outbox).where(Outbox.kind == "notice"))]
        assert [n["card"]["title"] for n in notices] == ["你获得了 50 积分", "你获得了 30 积分"]
        assert check_invariants(s) == []

    second = award_rows(sqlite_db, settings, rows(CSV), notice=notice)
    again = [(line, st) for line, st, _ in second]
    assert again[:2] == [(2, "already"), (3, "already")]
    assert all(st == "rejected" for _, st in again[2:])
    with sqlite_db.session_scope() as s:
        assert len(list(s.scalars(select(Txn).where(Txn.kind == "award")))) == 2
        assert len(list(s.scalars(select(Outbox).where(Outbox.kind == "notice")))) == 2


def test_a_good_file_run_twice_is_all_already(sqlite_db, clock) -> None:
    setup(sqlite_db, clock)
    text = "employee_no,points,reason,key\nE1,5,a,k1\nE2,6,b,k2\nE1,7,c,k3\n"
    assert [st for _, st, _ in award_rows(sqlite_db, build_settings({}), rows(text), notice=notice)] == ["awarded"] * 3
    assert [st for _, st, _ in award_rows(sqlite_db, build_settings({}), rows(text), notice=notice)] == ["already"] * 3
    with sqlite_db.session_scope() as s:
        ledger = Ledger(s, sqlite_db.clock)
        e1 = s.scalar(select(Employee).where(Employee.employee_no == "E1"))
        assert ledger.balance(ledger.wallet(e1.id).id) == 12


def test_the_cli_command(sqlite_db, clock, tmp_path) -> None:
    from app import create_app

    setup(sqlite_db, clock)
    app = create_app({"database": {"url": sqlite_db.url}}, db=sqlite_db)
    path = tmp_path / "awards.csv"
    path.write_text("employee_no,points,reason,key\nE1,5,a,k1\nE9,6,b,k2\n", encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["award-csv", str(path)])
    assert result.exit_code == 1
    assert "line 2: awarded" in result.output and "line 3: rejected unknown employee E9" in result.output
    path.write_text("employee_no,points,reason,key\nE1,5,a,k1\n", encoding="utf-8")
    result = runner.invoke(args=["award-csv", str(path)])
    assert result.exit_code == 0 and "line 2: already" in result.output
