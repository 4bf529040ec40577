"""Capped approval rules under concurrency: awards must equal the cap, on every engine.

    .venv/bin/python -m bench.caps [--urls URL ...] [--employees 200] [--racers 6] [--cap 1]

For each of ``--employees`` bound employees, ``--racers`` distinct approved instances of a rule
capped at ``--cap`` per month are posted at once, signed and encrypted, to ``/callback/dingtalk``,
from ``--racers`` processes that each run their own app and connections (like gunicorn workers);
they move from employee to employee in lockstep. Prints, per engine, approvals sent, awards made
and the cap's total (employees × cap), plus ``check-ledger``. Exit status 1 unless awards == cap
total and the ledger is clean everywhere.

SQLite (a temporary file) always runs; PostgreSQL/MariaDB when ``--urls`` or ``TEST_DATABASE_URLS``
names them (a scratch database is created and dropped on that server).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from sqlalchemy import func, select

from bench.ledger import Scratch, each_engine
from storage import members
from storage.db import Database, utcnow
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Employee, Txn
from tests.e2e.conftest import BASE_CONFIG, post_approval
from tests.e2e.racing import race


def config(url: str, cap: int) -> dict[str, Any]:
    rule = {"name": "全勤", "platform": "dingtalk", "template": "PROC-FULLATT", "points": 100,
            "category": "attendance", "max_per": {"count": cap, "period": "month"}}
    return {**BASE_CONFIG, "rules": [rule], "database": {"url": url}, "server": {"log_level": "WARNING"}}


def seed(db: Database, employees: int) -> None:
    """Bound employees with wallets, as after a roster import and a recent first message (a wallet
    created or a binding touched by the racers would serialise them on that row and hide the race)."""
    now = utcnow()
    with db.session_scope() as s:
        ledger = Ledger(s, db.clock)
        for i in range(employees):
            emp = Employee(employee_no=f"B{i:05d}", name=f"员工{i}", department="研发部", role="employee",
                           status="active", dingtalk_userid=f"b{i}", wecom_userid="", created_at=db.clock())
            s.add(emp)
            s.flush()
            members.bind(s, emp, "dingtalk", f"b{i}", now=now, actor_id=None, how="bench")
            ledger.wallet(emp.id)


def run(scratch: Scratch, employees: int, racers: int, cap: int) -> bool:
    db = scratch.fresh("FULL")
    seed(db, employees)
    started = time.perf_counter()
    results = race(config(scratch.url, cap), employees, racers, lambda c, i, me: post_approval(c, f"bench-{i}-{me}", f"b{i}"))
    seconds = time.perf_counter() - started
    with db.session_scope() as s:
        awards = int(s.scalar(select(func.count(Txn.id)).where(Txn.kind == "award")) or 0)
        problems = check_invariants(s)
    db.dispose()
    expected = employees * min(cap, racers)
    bad = sum(status != 200 for row in results for status in row)
    ok = awards == expected and not problems and bad == 0
    print(f"{scratch.name:10s} approvals {employees * racers:6d}  awards {awards:6d}  cap total {expected:6d}  "
          f"non-200 {bad:3d}  check-ledger {'clean' if not problems else len(problems)}  {seconds:6.1f} s  "
          f"{'OK' if ok else 'FAIL'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urls", nargs="*", default=os.environ.get("TEST_DATABASE_URLS", "").split())
    ap.add_argument("--employees", type=int, default=200)
    ap.add_argument("--racers", type=int, default=6)
    ap.add_argument("--cap", type=int, default=1)
    args = ap.parse_args()
    return each_engine(args.urls, lambda scratch: run(scratch, args.employees, args.racers, args.cap))


if __name__ == "__main__":
    sys.exit(main())
