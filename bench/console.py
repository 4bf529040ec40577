"""The console's exports at company scale: time and peak memory of the whole ledger as CSV and .xlsx.

Usage: .venv/bin/python bench/console.py [--employees 10000] [--txns 1000000] [--urls postgresql+psycopg://…]
Seeds 10,000 employees and 1,000,000 awards (2,000,000 ledger entries) on SQLite (a temporary file) and on each
server URL, then downloads /console/export/ledger.csv and .xlsx as HR through the real app, each in a fresh
process so its peak RSS is the export's alone. Prints rows, seconds, MB and peak RSS (targets: CSV < 30 s and
< 150 MB of memory).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-console-secret-key-0123456789abcdef"


def seed(url: str, employees: int, txns: int) -> None:
    from sqlalchemy import insert

    from storage.db import Database
    from storage.models import Account, Employee, Entry, Txn
    from tests.conftest import reset_schema

    db = Database(url)
    reset_schema(db)
    t0, start = time.monotonic(), datetime(2026, 1, 1)
    with db.engine.begin() as conn:
        conn.execute(insert(Employee), [
            {"id": i, "employee_no": f"{i:05d}", "name": f"员工{i}", "department": f"部门{i % 20}",
             "role": "hr" if i == 1 else "employee", "status": "active", "dingtalk_userid": "", "wecom_userid": "",
             "created_at": start} for i in range(1, employees + 1)])
        conn.execute(insert(Account), [{"id": i, "kind": "wallet", "employee_id": i, "name": f"wallet:{i}",
                                        "balance": 0, "version": 0, "frozen": False}
                                       for i in range(1, employees + 1)])
        conn.execute(insert(Account), [{"id": employees + 1, "kind": "system", "employee_id": None,
                                        "name": "issuance", "balance": 0, "version": 0, "frozen": False}])
    batch = 50_000
    for lo in range(1, txns + 1, batch):
        ids = range(lo, min(lo + batch, txns + 1))
        with db.engine.begin() as conn:
            conn.execute(insert(Txn), [{"id": t, "idem_key": f"seed:{t}", "kind": "award", "employee_id": t % employees + 1,
                                        "amount": 10, "actor_id": 1, "reason": "季度之星", "category": "manual",
                                        "created_at": start + timedelta(seconds=t)} for t in ids])
            conn.execute(insert(Entry), [{"txn_id": t, "account_id": a, "amount": amount} for t in ids
                                         for a, amount in ((t % employees + 1, 10), (employees + 1, -10))])
    print(f"  seeded {employees:,} employees, {txns:,} transactions ({2 * txns:,} entries) "
          f"in {time.monotonic() - t0:.0f} s", flush=True)
    db.dispose()


def export_once(url: str, fmt: str) -> dict[str, float]:
    """Runs in a child process: log in as HR through a link and download the ledger."""
    from app import create_app
    from storage.console import issue_link
    from storage.db import Database
    from storage.models import Employee

    db = Database(url)
    app = create_app({"database": {"url": url}, "console": {"enabled": True, "secret_key": SECRET}}, db=db)
    client = app.test_client()
    with db.session_scope() as s:
        token = issue_link(s, s.get(Employee, 1), db.clock(), 10, via="bench")
    page = client.get(f"/console/login/{token}").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    client.post(f"/console/login/{token}", data={"csrf_token": csrf})
    t0 = time.monotonic()
    resp = client.get(f"/console/export/ledger.{fmt}", buffered=False)
    size = sum(len(chunk) for chunk in resp.response)
    took = time.monotonic() - t0
    return {"seconds": took, "mb": size / 2**20, "peak_rss_mb": _high_water_mb()}


def _high_water_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over from the parent
    across fork and exec, so it would report the seeding process's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--employees", type=int, default=10_000)
    ap.add_argument("--txns", type=int, default=1_000_000, help="awards to seed (two ledger entries each)")
    ap.add_argument("--urls", nargs="*", default=None, help="server URLs (default: $TEST_DATABASE_URLS)")
    ap.add_argument("--child", nargs=2, metavar=("URL", "FMT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(export_once(*args.child)))
        return
    tmp = tempfile.mkdtemp(prefix="pointsbot-console-bench-")
    urls = [f"sqlite:///{tmp}/bench.db", *(args.urls if args.urls is not None
                                           else os.environ.get("TEST_DATABASE_URLS", "").split())]
    for url in urls:
        engine = url.split(":", 1)[0].split("+", 1)[0]
        print(f"[{engine}]", flush=True)
        seed(url, args.employees, args.txns)
        for fmt in ("csv", "xlsx"):
            out = subprocess.run([sys.executable, __file__, "--child", url, fmt], capture_output=True, text=True,
                                 cwd=ROOT, timeout=3600)
            if out.returncode != 0:
                print(f"  {fmt}: failed\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  ledger.{fmt}: {args.txns:,} rows in {r['seconds']:.1f} s, {r['mb']:.0f} MB file, "
                  f"peak process memory {r['peak_rss_mb']:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
