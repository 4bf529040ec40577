"""Concurrent credits to one wallet, each delivered twice: applied must equal sent, on every engine.

    .venv/bin/python -m bench.credits [--urls URL ...] [--racers 12] [--rounds 50]

``--racers`` processes (each its own app and connections, like gunicorn workers) send signed
DingTalk robot messages ``奖励 E1 <n> …`` from one admin to one employee at the same moment,
``--rounds`` times; then every message is delivered again, concurrently, as a platform retry would.
Prints, per engine: messages sent, awards applied, answers that were not a success on the first
delivery, events permanently failed (sent but not applied after the redelivery, must be 0), the
transient database errors retried inside requests (0 once the lock order is right) and
``check-ledger``. Exit status 1 unless applied == sent everywhere.

SQLite (a temporary file) always runs; PostgreSQL/MariaDB when ``--urls`` or ``TEST_DATABASE_URLS``
names them (a scratch database is created and dropped on that server).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from sqlalchemy import func, select

from bench.ledger import Scratch, each_engine
from storage import members
from storage.db import utcnow
from storage.employees import import_roster, read_roster
from storage.invariants import check_invariants
from storage.ledger import Ledger
from storage.models import Employee, Txn
from tests.e2e import signing
from tests.e2e.conftest import BASE_CONFIG, DINGTALK
from tests.e2e.racing import race

ROSTER = "employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid\n" \
         "A1,管理员,人力资源部,,admin,adm,adm\nE1,张三,研发部,,employee,zhang,zhang\n"


class Retries(logging.Handler):
    """Counts, in one racing process, the pipeline's retries of transient database errors."""

    count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("transient database error"):
            Retries.count += 1


def send(client: Any, r: int, i: int, racers: int) -> tuple[int, bool, int]:
    """(HTTP status, whether the award was confirmed, retries so far in this process)."""
    events = logging.getLogger("pointsbot.events")
    if not any(isinstance(h, Retries) for h in events.handlers):  # first call in this process
        events.addHandler(Retries())
        events.setLevel(logging.INFO)  # the retries are logged at INFO; count them, print nothing
        events.propagate = False
    points = 1 + r * racers + i
    resp = client.post("/callback/dingtalk/robot", data=signing.robot_body("adm", f"奖励 E1 {points} 压测", f"c-{r}-{i}"),
                       headers=signing.robot_headers(DINGTALK["app_secret"], int(time.time() * 1000)))
    text = json.loads(resp.data).get("text", {}).get("content", "") if resp.status_code == 200 else ""
    return resp.status_code, "已奖励" in text, Retries.count


def run(scratch: Scratch, racers: int, rounds: int) -> bool:
    db = scratch.fresh("FULL")
    with db.session_scope() as s:
        rows, _ = read_roster(ROSTER)
        import_roster(s, rows, Ledger(s, db.clock), now=db.clock(), budget=1000, rollover=False)
        members.bind(s, s.scalar(select(Employee).where(Employee.employee_no == "A1")), "dingtalk", "adm",
                     now=utcnow(), actor_id=None, how="bench")
    cfg = {**BASE_CONFIG, "database": {"url": scratch.url}, "server": {"log_level": "WARNING"}}
    started = time.perf_counter()
    first = race(cfg, rounds, racers, lambda c, r, i: send(c, r, i, racers))
    again = race(cfg, rounds, racers, lambda c, r, i: send(c, r, i, racers))
    seconds = time.perf_counter() - started
    with db.session_scope() as s:
        applied = int(s.scalar(select(func.count(Txn.id)).where(Txn.kind == "award")) or 0)
        problems = check_invariants(s)
    db.dispose()
    sent = racers * rounds
    not_ok = sum(1 for row in first for status, confirmed, _ in row if status != 200 or not confirmed)
    retries = sum(max(row[i][2] for row in first) + max(row[i][2] for row in again) for i in range(racers))
    ok = applied == sent and not problems
    print(f"{scratch.name:10s} sent {sent:5d}  applied {applied:5d}  not confirmed at first {not_ok:4d}  "
          f"permanently failed {sent - applied:4d}  retried {retries:4d}  check-ledger "
          f"{'clean' if not problems else len(problems)}  {seconds:5.1f} s  {'OK' if ok else 'FAIL'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--urls", nargs="*", default=os.environ.get("TEST_DATABASE_URLS", "").split())
    ap.add_argument("--racers", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    return each_engine(args.urls, lambda scratch: run(scratch, args.racers, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
