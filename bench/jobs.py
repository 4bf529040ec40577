"""Scheduled jobs at company scale: time per job and the longest single database transaction.

    .venv/bin/python -m bench.jobs [--employees 10000] [--lots 1000000] [--quick] [--url URL] [--seed-only | --no-seed]

``--seed-only`` fills the database at ``--url`` and stops; ``--no-seed`` runs the jobs on a database seeded so
before (the jobs change it: seed once, copy it, and run each time on a fresh copy).

Why measure transactions: on SQLite every transaction holds the write lock, so a job's longest
transaction is how long a webhook may wait behind it. Floors (Speed): every job < 60 s, no transaction
> 250 ms (issue 6 asked < 30 s for each digest job, and they stay well under). Exit status 1 when a floor is missed.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, event, func, insert, select, text

import app as app_module
from scheduler import jobs
from storage.claims import period_key
from settings import build_settings
from storage.db import Database, utcnow
from storage.ledger import EXPIRED, ISSUANCE, Ledger
from storage.models import Account, Appeal, Employee, Entry, Lot, Order, Outbox, Txn

JOB_ORDER = ("budget-grant", "expire-points", "expiry-notices", "leaderboard", "manager-digest", "hr-digest")
FLOORS = {"expire-points": 60.0, "manager-digest": 30.0, "hr-digest": 30.0, "expiry-notices": 30.0,
          "leaderboard": 30.0, "budget-grant": 60.0}
TXN_FLOOR_MS = 250.0
CHUNK = 20_000


class TxnTimer:
    """Times every transaction on the engine (begin → commit/rollback)."""

    def __init__(self, engine: Any) -> None:
        self.longest = 0.0
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)

    def _begin(self, conn: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _end(self, conn: Any) -> None:
        t0 = conn.info.pop("bench_t0", None)
        if t0 is not None:
            self.longest = max(self.longest, (time.perf_counter() - t0) * 1000)


def bulk(s: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: PostgreSQL through COPY (an executemany seeded 10,000,000 lots in about an hour)."""
    if not rows:
        return
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        for k in range(0, len(rows), CHUNK):
            s.execute(insert(model), rows[k:k + CHUNK])
        return
    table = model.__table__
    columns = [c.name for c in table.columns if c.name in rows[0] or c.default is not None]
    defaults = {c.name: c.default.arg for c in table.columns if c.default is not None and not callable(c.default.arg)}
    with conn.connection.dbapi_connection.cursor() as cur:
        with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([str(v) if isinstance(v, str) else v for v in (r.get(c, defaults.get(c)) for c in columns)])


def seed(db: Database, employees: int, lots: int, now: datetime) -> None:
    """A company: 10% managers (9 reports each), 5 HR, lots half already due, the rest over a year."""
    rnd = random.Random(7)
    depts = [f"部门{i:02d}" for i in range(40)]
    with db.session_scope() as s:
        ledger = Ledger(s, lambda: now)
        for name in (ISSUANCE, EXPIRED):
            ledger.account(name)
        issuance = ledger.account(ISSUANCE).id
    emp_rows = []
    for i in range(1, employees + 1):
        role = "manager" if i % 10 == 1 else ("hr" if i <= 50 and i % 10 == 2 else "employee")
        manager = None if role == "manager" else ((i - 1) // 10) * 10 + 1
        emp_rows.append({"id": i, "employee_no": f"E{i:06d}", "name": f"员工{i}", "department": depts[i % 40],
                         "manager_id": manager if manager != i else None, "role": role,
                         "status": "left" if i % 97 == 0 else "active", "dingtalk_userid": "", "wecom_userid": "",
                         "created_at": now - timedelta(days=400)})
    per = max(1, lots // employees)
    total = per * employees
    with db.session_scope() as s:
        s.execute(insert(Employee), [dict(r, manager_id=None) for r in emp_rows])  # managers exist before reports
        s.connection().execute(Employee.__table__.update().where(Employee.__table__.c.id == bindparam("eid"))
                               .values(manager_id=bindparam("mid")),
                               [{"eid": r["id"], "mid": r["manager_id"]} for r in emp_rows if r["manager_id"]])
        s.execute(insert(Account), [{"id": 10 + i, "kind": "wallet", "employee_id": i, "name": f"wallet:{i}",
                                     "balance": 0, "version": 0, "frozen": False} for i in range(1, employees + 1)])
    balances: dict[int, int] = {}
    for start in range(1, employees + 1, 500):
        batch = range(start, min(start + 500, employees + 1))
        txns, entries, lot_rows = [], [], []
        for i in batch:
            amounts = [rnd.randint(1, 20) for _ in range(per)]
            created = now - timedelta(days=rnd.randint(0, 60), seconds=rnd.randint(0, 86400))
            actor = emp_rows[i - 1]["manager_id"]
            txns.append({"id": i, "idem_key": f"seed:{i}", "kind": "award", "employee_id": i, "amount": sum(amounts),
                         "actor_id": actor, "reason": "seed", "category": "seed", "created_at": created})
            entries += [{"txn_id": i, "account_id": issuance, "amount": -sum(amounts)},
                        {"txn_id": i, "account_id": 10 + i, "amount": sum(amounts)}]
            for k, a in enumerate(amounts):
                lot_id = k * employees + i  # each employee earns throughout the year
                # ids grow with the time a lot was earned, so expiry order follows id order (as in real data):
                # the first half of the ids is due (spread over the last 10 hours), the rest over a year
                frac = lot_id / total
                expires = now - timedelta(minutes=600 * (1 - 2 * frac)) if frac <= 0.5 else \
                    now + timedelta(minutes=10 + (frac - 0.5) * 2 * 365 * 1440)
                lot_rows.append({"id": lot_id, "account_id": 10 + i, "txn_id": i, "amount": a, "remaining": a,
                                 "earned_at": expires - timedelta(days=365), "expires_at": expires})
            balances[10 + i] = sum(amounts)
        with db.session_scope() as s:
            for table, rows in ((Txn, txns), (Entry, entries), (Lot, lot_rows)):
                bulk(s, table, rows)
    with db.session_scope() as s:
        s.connection().execute(Account.__table__.update().where(Account.__table__.c.id == bindparam("aid"))
                               .values(balance=bindparam("bal")),
                               [{"aid": a, "bal": b} for a, b in balances.items()])
        for i in range(1, 301):
            s.add(Order(employee_id=i * 3 % employees + 1, sku=f"sku{i % 7}", item_name=f"礼品{i % 7}", quantity=1,
                        cost=100, status="awaiting_fulfilment" if i % 3 else "fulfilled",
                        created_at=now - timedelta(days=i % 28)))
        for i in range(1, 101):
            s.add(Appeal(employee_id=i * 7 % employees + 1, reason="bench", status="open", created_at=now))
        if db.dialect == "postgresql":  # explicit ids above: move the sequences past them
            for table in ("employees", "accounts", "ledger_txns", "ledger_entries", "lots"):
                s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # the statistics a database that grew by itself would have (autovacuum); without them PostgreSQL planned the
        # jobs' statements for a table of a few thousand rows (and compiled them with JIT)
        conn.execute(text("ANALYZE"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--employees", type=int, default=10_000)
    p.add_argument("--lots", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="1,000 employees and 100,000 lots")
    p.add_argument("--url", default="", help="database URL (default: a fresh SQLite file)")
    p.add_argument("--seed-only", action="store_true", help="seed the database and stop")
    p.add_argument("--no-seed", action="store_true", help="run the jobs on a database seeded before")
    args = p.parse_args(argv)
    if args.quick:
        args.employees, args.lots = 1_000, 100_000
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench_jobs.db'}"
    db = Database(url)
    now = utcnow()  # the seed's lots due now stay the due ones for ten minutes (seed())
    if not args.no_seed:
        from storage.models import Base
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        t0 = time.perf_counter()
        seed(db, args.employees, args.lots, now)
        with db.session_scope() as s:
            n_lots = s.scalar(select(func.count(Lot.id)))
        print(f"seeded {args.employees} employees, {n_lots} lots on {db.dialect} in {time.perf_counter() - t0:.1f} s")
    if args.seed_only:
        return 0
    settings = build_settings({"database": {"url": url}, "leaderboard": {"groups": [
        {"platform": "dingtalk", "chat_id": "cid-all"}, {"platform": "wecom", "chat_id": "wrk-all"}]}})
    bot = app_module.PointsBot(settings=settings, db=db, router=None, pipeline=None)
    timer, failed = TxnTimer(db.engine), False
    print(f"{'job':<16} {'seconds':>8} {'longest txn ms':>15}  outcome")
    for name in JOB_ORDER:
        timer.longest = 0.0
        started = time.perf_counter()
        outcome = jobs.run_claimed(bot, name, period_key(name, now, settings.tz), now, "bench")
        took = time.perf_counter() - started
        ok = took < FLOORS[name] and timer.longest < TXN_FLOOR_MS and "failed" not in outcome
        failed |= not ok
        print(f"{name:<16} {took:>8.2f} {timer.longest:>15.0f}  {'OK ' if ok else 'MISS'} {outcome}")
    with db.session_scope() as s:
        print(f"outbox rows queued: {s.scalar(select(func.count(Outbox.id)))}")
    db.dispose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
