"""A scheduler killed mid-expiry: how long until the period is complete, and that nothing is lost.

    .venv/bin/python -m bench.jobkill [--due 200000] [--lease 30] [--url URL]

Seeds 10,000 employees whose lots are half due (``--due`` due lots in all, bench/jobs.py's company),
starts ``flask run-job expire-points`` and kills it with SIGKILL once it has expired some wallets.
Then starts ``flask scheduler`` (``[scheduler] lease_seconds = --lease``) and prints the seconds from
the kill until the period's run is ``done``, the due lots left (0), the expiry notices queued (one per
active employee whose points expired) and ``check-ledger``; then stops the scheduler with SIGTERM and
prints its exit status (0). A run left ``running`` is taken over once its lease has lapsed, so the
time is the lease plus the rest of the work.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bench.jobs import seed
from storage.db import Database, utcnow
from storage.invariants import check_invariants
from storage.models import Employee, JobRun, Lot, Outbox, Txn

ROOT = Path(__file__).resolve().parent.parent
EMPLOYEES = 10_000


def wait_for(check, timeout: float, every: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return False


def count(db: Database, stmt) -> int:  # type: ignore[no-untyped-def]
    with db.session_scope() as s:
        return int(s.scalar(stmt) or 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--due", type=int, default=200_000)
    ap.add_argument("--lease", type=int, default=30)
    ap.add_argument("--url", default="")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = args.url or f"sqlite:///{tmp / 'jobkill.db'}"
    config = tmp / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[server]\nlog_level = "WARNING"\n'
                      f'[scheduler]\nlease_seconds = {args.lease}\n', encoding="utf-8")
    env = {**os.environ, "POINTSBOT_CONFIG": str(config)}
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    db = Database(url)
    seed(db, EMPLOYEES, args.due * 2, utcnow())
    due = count(db, select(func.count(Lot.id)).where(Lot.expires_at <= utcnow(), Lot.remaining > 0))
    print(f"seeded {EMPLOYEES} employees, {due} due lots")

    job = subprocess.Popen([*flask, "run-job", "expire-points"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    wait_for(lambda: count(db, select(func.count(Txn.id)).where(Txn.kind == "expire")) >= 200, 120, 0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    killed_at = time.monotonic()
    left = count(db, select(func.count(Lot.id)).where(Lot.expires_at <= utcnow(), Lot.remaining > 0))
    print(f"killed run-job after it expired {due - left} of {due} due lots; the run is left running")

    sched = subprocess.Popen([*flask, "scheduler"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    done = wait_for(lambda: count(db, select(func.count(JobRun.id)).where(JobRun.job == "expire-points",
                                                                           JobRun.status == "done")) == 1,
                    args.lease + 600, 0.5)
    seconds = time.monotonic() - killed_at
    left = count(db, select(func.count(Lot.id)).where(Lot.expires_at <= utcnow(), Lot.remaining > 0))
    notices = count(db, select(func.count(Outbox.id)).where(Outbox.idem_key.like("expired:%")))
    expired_employees = count(db, select(func.count(func.distinct(Txn.employee_id))).join(
        Employee, Employee.id == Txn.employee_id).where(Txn.kind == "expire", Employee.status == "active"))
    sched.send_signal(signal.SIGTERM)
    status = sched.wait(timeout=60)
    with db.session_scope() as s:
        problems = check_invariants(s)
    db.dispose()
    ok = done and left == 0 and notices == expired_employees and not problems and status == 0
    print(f"period complete {seconds:.1f} s after the kill (lease {args.lease} s); due lots left {left}; "
          f"notices {notices} for {expired_employees} employees; check-ledger "
          f"{'clean' if not problems else len(problems)}; scheduler exit on SIGTERM {status}; {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
