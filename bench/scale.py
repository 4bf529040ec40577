"""Chat replies and jobs at company scale: 100,000 employees and 10,000,000 ledger entries.

    .venv/bin/python -m bench.scale [--employees 100000] [--txns 5000000] [--url URL] [--seconds 20] [--skip-jobs]

Seeds the database in bulk (Core inserts, not the ledger API one by one: 5,000,000 awards over the last 400 days,
two entries and one lot each, the per-period earned totals beside them), then sends signed WeCom callbacks through
gunicorn on 127.0.0.1 at 100 callbacks/s and prints p50/p99 of 积分, 明细, 排行榜 for each period and
排行榜 <department>; then runs each scheduled job and prints its time and longest transaction. Floors (Scale):
every reply p99 < 50 ms, every job < 60 s with no transaction over 500 ms. Exit status 1 when a floor is missed.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, text, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.callbacks import CONF, free_port, gunicorn, pct, run_load, write_config  # noqa: E402
from bench.jobs import bulk  # noqa: E402
from storage.db import Database, utcnow  # noqa: E402
from storage.kinds import AccountKind, TxnKind  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Account, Base, Binding, EarnedTotal, Employee, Entry, Lot, Txn  # noqa: E402
from storage.periods import keys_of  # noqa: E402
from tests.e2e import signing  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
DEPTS = 40
CHUNK = 50_000
REPLY_FLOOR_MS, JOB_FLOOR_S, TXN_FLOOR_MS = 50.0, 60.0, 500.0
COMMANDS = ("积分", "明细", "排行榜 周", "排行榜 月", "排行榜 季度", "排行榜 年", "排行榜 部门07")


def _chunks(rows: list[dict[str, Any]], db: Database, model: Any) -> None:
    for i in range(0, len(rows), CHUNK):
        with db.session_scope() as s:
            bulk(s, model, rows[i:i + CHUNK])


def seed(db: Database, employees: int, txns: int, now: datetime) -> None:
    """Employees (10% managers, 40 departments) bound on WeCom, their wallets, and ``txns`` awards with entries,
    lots and earned totals, in bulk."""
    rnd = random.Random(42)
    t0 = time.perf_counter()
    people = [{"id": i, "employee_no": f"E{i}", "name": f"员工{i}", "department": f"部门{i % DEPTS:02d}",
               "role": "manager" if i % 10 == 1 else "employee", "status": "active", "manager_id": None,
               "dingtalk_userid": f"user{i}", "wecom_userid": f"user{i}", "created_at": now - timedelta(days=800)}
              for i in range(1, employees + 1)]
    _chunks(people, db, Employee)
    _chunks([{"employee_id": i, "platform": "wecom", "platform_user_id": f"user{i}", "created_at": now,
              "last_used_at": now, "status": "active", "unbound_why": ""} for i in range(1, employees + 1)],
            db, Binding)
    issuance = employees + 1
    _chunks([{"id": i, "kind": AccountKind.WALLET, "employee_id": i, "name": f"wallet:{i}", "balance": 0, "version": 0,
              "frozen": False} for i in range(1, employees + 1)]
            + [{"id": issuance, "kind": AccountKind.SYSTEM, "employee_id": None, "name": "system:issuance",
                "balance": 0, "version": 0, "frozen": False}], db, Account)
    balances: dict[int, int] = defaultdict(int)
    kept: dict[tuple[str, int], int] = defaultdict(int)
    for start in range(1, txns + 1, CHUNK * 2):
        batch_t, batch_e, batch_l = [], [], []
        for n in range(start, min(start + CHUNK * 2, txns + 1)):
            emp, pts = rnd.randrange(1, employees + 1), rnd.randrange(1, 100)
            at = now - timedelta(seconds=rnd.randrange(0, 400 * 86400))
            batch_t.append({"id": n, "idem_key": f"seed:{n}", "kind": TxnKind.AWARD, "employee_id": emp, "amount": pts,
                            "actor_id": None, "reason": "种子数据", "category": "manual", "created_at": at})
            batch_e += [{"txn_id": n, "account_id": issuance, "amount": -pts}, {"txn_id": n, "account_id": emp,
                                                                              "amount": pts}]
            batch_l.append({"account_id": emp, "txn_id": n, "amount": pts, "remaining": pts, "earned_at": at,
                            "expires_at": at + timedelta(days=365)})  # the oldest are due: the expiry job's work
            balances[emp] += pts
            for k in keys_of(at, TZ):
                kept[(k, emp)] += pts
        with db.session_scope() as s:
            for model, rows in ((Txn, batch_t), (Entry, batch_e), (Lot, batch_l)):
                bulk(s, model, rows)
        print(f"  seeded {min(start + CHUNK * 2, txns + 1) - 1:,} awards ({time.perf_counter() - t0:.0f} s)", flush=True)
    with db.session_scope() as s:
        s.execute(update(Account.__table__).where(Account.__table__.c.id == bindparam("aid"))
                  .values(balance=bindparam("bal")), [{"aid": e, "bal": b} for e, b in balances.items()])
    _chunks([{"period": k, "employee_id": e, "points": p} for (k, e), p in kept.items()], db, EarnedTotal)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if db.dialect == "postgresql":  # explicit ids above: move the sequences past them
            for table in ("employees", "accounts", "ledger_txns"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
        conn.execute(text("ANALYZE"))  # the statistics a grown database has (bench/jobs.py)
    print(f"seeded {employees:,} employees, {txns:,} awards, {2 * txns:,} entries, {len(kept):,} earned totals "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)


def requests_for(text: str, n: int, start_id: int, employees: int) -> list[tuple[str, str, bytes, dict[str, str]]]:
    rnd = random.Random(start_id)
    out = []
    for i in range(n):
        ts = int(time.time())
        user = f"user{rnd.randrange(1, employees + 1)}"
        xml = signing.wecom_text_xml(user, CONF["wecom"]["corp"], text, start_id + i, ts)
        q, b = signing.wecom_post(CONF["wecom"]["token"], CONF["wecom"]["key"], CONF["wecom"]["corp"], xml, ts)
        out.append(("POST", "/callback/wecom?" + urlencode(q), b, {}))
    return out


def chat(db_url: str, employees: int, seconds: float, workers: int) -> bool:
    """Each command through gunicorn at 100 callbacks/s; True when every p99 is under the floor."""
    tmp = Path(tempfile.mkdtemp(prefix="pb-scale-"))
    port = free_port()
    conf = tmp / "config.toml"
    write_config(conf, db_url, port)
    env = {**os.environ, "POINTSBOT_CONFIG": str(conf), "PYTHONPATH": str(ROOT)}
    ok = True
    with gunicorn(env, port, workers):
        print(f"{'command @100/s':<16}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")
        next_id = 1
        for command in COMMANDS:
            reqs = requests_for(command, int(100 * seconds), next_id, employees)
            next_id += len(reqs)
            run_load(port, reqs[:50], 4, None)  # warm the workers (first connections, the 60 s rank cache)
            _, lat, err = run_load(port, reqs[50:], 8, 100.0)
            ok &= pct(lat, .99) < REPLY_FLOOR_MS and not err
            print(f"{command:<16}{statistics.median(lat):>9.1f}{pct(lat, .99):>9.1f}{max(lat):>9.1f}{err:>8}", flush=True)
    return ok


def run_jobs(db_url: str, now: datetime) -> bool:
    """Each job once, as the scheduler claims it (bench/jobs.py does the same at 10,000 employees); True when every
    job is under 60 s and no transaction over 500 ms."""
    import app as app_module
    from bench.jobs import JOB_ORDER, TxnTimer
    from scheduler import jobs
    from settings import build_settings
    from storage.claims import period_key

    db = Database(db_url, clock=lambda: now)
    settings = build_settings({"database": {"url": db_url}, "leaderboard": {"groups": [
        {"platform": "dingtalk", "chat_id": "cid-all"}, {"platform": "wecom", "chat_id": "wrk-all"}]}})
    bot = app_module.PointsBot(settings=settings, db=db, router=None, pipeline=None)
    timer, ok = TxnTimer(db.engine), True
    print(f"{'job':<18}{'seconds':>9}{'longest txn ms':>16}  outcome")
    for name in JOB_ORDER:
        timer.longest = 0.0
        t0 = time.perf_counter()
        outcome = jobs.run_claimed(bot, name, period_key(name, now, settings.tz), now, "bench")
        took = time.perf_counter() - t0
        met = took < JOB_FLOOR_S and timer.longest < TXN_FLOOR_MS and "failed" not in outcome
        ok &= met
        print(f"{name:<18}{took:>9.1f}{timer.longest:>16.0f}  {'OK ' if met else 'MISS'} {outcome[:70]}", flush=True)
    db.dispose()
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--employees", type=int, default=100_000)
    ap.add_argument("--txns", type=int, default=5_000_000, help="awards; each has two entries")
    ap.add_argument("--url", default="")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-jobs", action="store_true")
    ap.add_argument("--seed-only", action="store_true", help="seed --url and stop (measure later with --no-seed)")
    ap.add_argument("--no-seed", action="store_true", help="measure a database an earlier --seed-only seeded")
    args = ap.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='pb-scale-')) / 'scale.db'}"
    now = utcnow()
    if not args.no_seed:
        db = Database(url)
        Base.metadata.drop_all(db.engine)  # a fresh schema from the migrations, as db upgrade makes it
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(db)
        print(f"engine: {db.dialect}; {args.employees:,} employees, {args.txns:,} awards", flush=True)
        seed(db, args.employees, args.txns, now)
        db.dispose()
        if args.seed_only:
            return 0
    ok = chat(url, args.employees, args.seconds, args.workers)
    if not args.skip_jobs:
        ok &= run_jobs(url, now)
    print("floors met" if ok else "a floor was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
