"""Ledger throughput and expiry at scale, on every available engine.

    .venv/bin/python -m bench.ledger [--urls URL ...] [--lots 1000000] [--holds 500] [--procs 8]
                                     [--sqlite-sync FULL|NORMAL] [--quick]

1. Holds per second on one hot wallet: ``--procs`` processes each call ``Ledger.hold`` for one
   point ``--holds`` times (the full path: idempotency key, the conditional UPDATE gate, FIFO lots,
   allocations, both legs). The wallet is pre-funded with many lots (one award each).
2. Expiry of ``--lots`` lots (10 per employee, half due): bulk-inserted with Core executemany as
   consistent data (one seed award per employee whose entries equal the sum of its lots), then
   ``expire_due`` with its default batch size; prints total seconds, the longest batch and checks
   that a second run changes nothing and that Σ wallet balances == Σ lot remainders.

SQLite (a temporary file) always runs; PostgreSQL/MariaDB when ``--urls`` or ``TEST_DATABASE_URLS``
names them (a scratch database ``<db>_bench<pid>`` is created and dropped on that server).
Floors: 300 holds/s on PostgreSQL, 600/s on SQLite; expiry < 60 s with no batch > 500 ms.
Exit status 1 when a floor is missed.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from storage.db import Database
from storage.errors import InsufficientPoints
from storage.ledger.expiry import expire_due
from storage.invariants import check_invariants
from storage.ledger import ISSUANCE, Ledger
from storage.models import Account, Base, Employee, Entry, Lot, Txn

T0 = datetime(2026, 3, 10, 2, 0, 0)
HOLD_FLOORS = {"sqlite": 600.0, "postgresql": 300.0}
EXPIRY_FLOOR_S, BATCH_FLOOR_MS = 60.0, 500.0
CHUNK = 50_000


def clock() -> datetime:
    return T0


# ---- scratch databases ---------------------------------------------------------------------------

class Scratch:
    """A fresh database per engine: a temp SQLite file, or a new database on a server."""

    def __init__(self, url: str | None, workdir: Path) -> None:
        self.admin_url = url
        if url is None:
            self.name, self.url = "sqlite", f"sqlite:///{workdir / 'bench.db'}"
            return
        u = make_url(url)
        self.name = u.get_backend_name()
        self.dbname = f"{u.database}_bench{os.getpid()}"
        self._admin("DROP DATABASE IF EXISTS {q}{n}{q}")
        self._admin("CREATE DATABASE {q}{n}{q}" + ("" if self.name == "postgresql" else
                                                   " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        self.url = u.set(database=self.dbname).render_as_string(hide_password=False)

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        q = '"' if self.name == "postgresql" else "`"
        with engine.connect() as conn:
            conn.execute(text(sql.format(q=q, n=self.dbname)))
        engine.dispose()

    def fresh(self, sqlite_sync: str) -> Database:
        db = Database(self.url, sqlite_synchronous=sqlite_sync, clock=clock)
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        return db

    def drop(self) -> None:
        if self.admin_url is None:
            return
        suffix = " WITH (FORCE)" if self.name == "postgresql" else ""
        self._admin("DROP DATABASE IF EXISTS {q}{n}{q}" + suffix)


def each_engine(urls: list[str], run: Callable[[Scratch], bool]) -> int:
    """Run ``run`` on SQLite and on a scratch database of each server; exit status 1 if any run failed."""
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for url in [None, *urls]:
            scratch = Scratch(url, Path(tmp))
            try:
                ok = run(scratch) and ok
            finally:
                scratch.drop()
    return 0 if ok else 1


# ---- 1. holds per second ---------------------------------------------------------------------------

def _hold_worker(url: str, sqlite_sync: str, emp: int, n: int, barrier: Any, out: Any) -> None:
    db = Database(url, sqlite_synchronous=sqlite_sync, clock=clock)
    ok = refused = 0
    try:
        with db.session_scope() as s:  # connect before the clock starts
            s.execute(select(1))
        barrier.wait()
        for i in range(n):
            try:
                with db.session_scope() as s:
                    Ledger(s, clock).hold(emp, 1, idem_key=f"bench-hold:{os.getpid()}:{i}")
                ok += 1
            except InsufficientPoints:
                refused += 1
        out.put((ok, refused, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put((ok, refused, repr(exc)))
    finally:
        db.dispose()


def bench_holds(scratch: Scratch, procs: int, per_proc: int, lots: int, sqlite_sync: str) -> dict[str, Any]:
    db = scratch.fresh(sqlite_sync)
    total = procs * per_proc
    with db.session_scope() as s:
        emp = Employee(employee_no="hot", name="hot", department="", role="employee", status="active",
                       created_at=T0)
        s.add(emp)
        s.flush()
        emp_id = emp.id
        lg = Ledger(s, clock)
        per_lot = -(-total // lots)  # enough points for every hold
        for i in range(lots):
            lg.award(emp_id, per_lot, idem_key=f"fund:{i}", reason="bench")
        lg.account("system:redemption_hold")
    db.dispose()
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    barrier, out = ctx.Barrier(procs + 1), ctx.Queue()
    workers = [ctx.Process(target=_hold_worker, args=(scratch.url, sqlite_sync, emp_id, per_proc, barrier, out))
               for _ in range(procs)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    results = [out.get(timeout=600) for _ in workers]
    elapsed = time.perf_counter() - started
    for w in workers:
        w.join()
    errors = [r[2] for r in results if r[2]]
    ok = sum(r[0] for r in results)
    with db.session_scope() as s:
        problems = check_invariants(s)
        balance = s.scalar(select(Account.balance).where(Account.kind == "wallet"))
    db.dispose()
    return {"holds": ok, "refused": sum(r[1] for r in results), "errors": errors, "seconds": elapsed,
            "per_s": ok / elapsed if elapsed else 0.0, "lots": lots, "balance": balance,
            "consistent": not problems and ok == total}


# ---- 2. expiry of a million lots -------------------------------------------------------------------

def _chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def seed_lots(db: Database, n_lots: int, per_emp: int = 10) -> tuple[datetime, int]:
    """``n_lots`` lots, ``per_emp`` per employee, exactly half due at the returned cutoff; consistent data."""
    rnd = random.Random(7)
    employees = -(-n_lots // per_emp)
    cutoff = T0 + timedelta(days=400)
    due = [True] * (n_lots // 2) + [False] * (n_lots - n_lots // 2)
    rnd.shuffle(due)
    amounts = [rnd.randint(1, 50) for _ in range(n_lots)]
    owner = [i // per_emp for i in range(n_lots)]
    per_wallet = [0] * employees
    for i, a in enumerate(amounts):
        per_wallet[owner[i]] += a
    issuance_id = employees + 1  # account ids: wallets 1..employees, then issuance
    with db.engine.begin() as conn:
        t = Employee.__table__
        for rows in _chunks({"id": e + 1, "employee_no": f"B{e:07d}", "name": f"员工{e}", "department": "",
                             "role": "employee", "status": "active", "dingtalk_userid": "", "wecom_userid": "",
                             "created_at": T0} for e in range(employees)):
            conn.execute(insert(t), rows)
        for rows in _chunks({"id": e + 1, "kind": "wallet", "employee_id": e + 1, "name": f"wallet:{e + 1}",
                             "balance": per_wallet[e], "version": 0, "frozen": False} for e in range(employees)):
            conn.execute(insert(Account.__table__), rows)
        conn.execute(insert(Account.__table__), [{"id": issuance_id, "kind": "system", "employee_id": None,
                                                  "name": ISSUANCE, "balance": 0, "version": 0, "frozen": False}])
        for rows in _chunks({"id": e + 1, "idem_key": f"bench-seed:{e + 1}", "kind": "award", "employee_id": e + 1,
                             "amount": per_wallet[e], "reason": "bench", "category": "bench", "created_at": T0}
                            for e in range(employees)):
            conn.execute(insert(Txn.__table__), rows)

        def entries() -> Iterator[dict[str, Any]]:
            for e in range(employees):
                yield {"id": 2 * e + 1, "txn_id": e + 1, "account_id": issuance_id, "amount": -per_wallet[e]}
                yield {"id": 2 * e + 2, "txn_id": e + 1, "account_id": e + 1, "amount": per_wallet[e]}
        for rows in _chunks(entries()):
            conn.execute(insert(Entry.__table__), rows)
        for rows in _chunks({"id": i + 1, "account_id": owner[i] + 1, "txn_id": owner[i] + 1, "amount": amounts[i],
                             "remaining": amounts[i], "earned_at": T0,
                             "expires_at": cutoff - timedelta(hours=1 + i % 1000) if due[i]
                             else cutoff + timedelta(hours=1 + i % 1000)} for i in range(n_lots)):
            conn.execute(insert(Lot.__table__), rows)
        if db.dialect == "postgresql":  # explicit ids: move the sequences past them
            for table in ("employees", "accounts", "ledger_txns", "ledger_entries", "lots"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    if db.dialect == "postgresql":  # fresh statistics for the planner
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE" if db.dialect == "sqlite" else "ANALYZE TABLE lots, accounts, ledger_txns")
    return cutoff, sum(a for a, d in zip(amounts, due) if d)


def totals(db: Database) -> tuple[int, int, int]:
    with db.session_scope() as s:
        bal = int(s.scalar(select(func.coalesce(func.sum(Account.balance), 0)).where(Account.kind == "wallet")))
        rem = int(s.scalar(select(func.coalesce(func.sum(Lot.remaining), 0))))
        txns = int(s.scalar(select(func.count(Txn.id))))
    return bal, rem, txns


def bench_expiry(scratch: Scratch, n_lots: int, sqlite_sync: str, full_check: bool,
                 batch: int | None = None) -> dict[str, Any]:
    db = scratch.fresh(sqlite_sync)
    t = time.perf_counter()
    cutoff, due_points = seed_lots(db, n_lots)
    seeded = time.perf_counter() - t
    t = time.perf_counter()
    res = expire_due(db, cutoff, **({"batch_size": batch} if batch else {}))
    elapsed = time.perf_counter() - t
    bal, rem, txns = totals(db)
    t = time.perf_counter()
    again = expire_due(db, cutoff)
    rerun = time.perf_counter() - t
    bal2, rem2, txns2 = totals(db)
    problems: list[str] | None = None
    if full_check:
        with db.session_scope() as s:
            problems = check_invariants(s)
    db.dispose()
    return {"lots": n_lots, "seed_s": seeded, "seconds": elapsed, "expired_lots": res.lots,
            "expired_points": res.points, "due_points": due_points, "batches": res.batches,
            "longest_batch_ms": res.longest_batch_ms, "rerun_s": rerun, "rerun_lots": again.lots,
            "rerun_points": again.points, "rerun_unchanged": (bal, rem, txns) == (bal2, rem2, txns2),
            "balanced": bal == rem, "invariants": problems}


# ---- main -------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--urls", nargs="*", default=None, help="server URLs (default: $TEST_DATABASE_URLS)")
    p.add_argument("--lots", type=int, default=1_000_000, help="lots for the expiry run")
    p.add_argument("--holds", type=int, default=500, help="holds per process")
    p.add_argument("--procs", type=int, default=8)
    p.add_argument("--fund-lots", type=int, default=1000, help="lots in the hot wallet")
    p.add_argument("--batch", type=int, default=None, help="expiry batch size (default: expire_due's)")
    p.add_argument("--sqlite-sync", default="FULL", choices=("FULL", "NORMAL"))
    p.add_argument("--quick", action="store_true", help="a smoke run: 20,000 lots, 50 holds per process")
    p.add_argument("--skip-holds", action="store_true")
    p.add_argument("--skip-expiry", action="store_true")
    p.add_argument("--skip-sqlite", action="store_true", help="only the servers named by --urls")
    a = p.parse_args(argv)
    if a.quick:
        a.lots, a.holds, a.fund_lots = min(a.lots, 20_000), min(a.holds, 50), min(a.fund_lots, 100)
    urls = a.urls if a.urls is not None else os.environ.get("TEST_DATABASE_URLS", "").split()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for url in ([] if a.skip_sqlite else [None]) + list(urls):
            scratch = Scratch(url, Path(tmp))
            try:
                label = f"{scratch.name}" + (f" (synchronous={a.sqlite_sync})" if url is None else "")
                if not a.skip_holds:
                    h = bench_holds(scratch, a.procs, a.holds, a.fund_lots, a.sqlite_sync)
                    floor = HOLD_FLOORS.get(scratch.name)
                    ok = h["consistent"] and not h["errors"] and (floor is None or h["per_s"] >= floor or a.quick)
                    failed |= not ok
                    print(f"[{label}] holds: {h['holds']} by {a.procs} processes on one wallet of {h['lots']} lots "
                          f"in {h['seconds']:.2f} s = {h['per_s']:.0f}/s (floor {floor or '-'}), "
                          f"balance left {h['balance']}, invariants {'ok' if h['consistent'] else 'BROKEN'}"
                          + (f", errors: {h['errors'][:2]}" if h["errors"] else "") + ("" if ok else "  << MISSED"),
                          flush=True)
                if not a.skip_expiry:
                    e = bench_expiry(scratch, a.lots, a.sqlite_sync, full_check=a.lots <= 200_000, batch=a.batch)
                    ok = (e["balanced"] and e["rerun_unchanged"] and e["rerun_lots"] == 0
                          and e["expired_points"] == e["due_points"] and not e["invariants"]
                          and (a.quick or (e["seconds"] < EXPIRY_FLOOR_S and e["longest_batch_ms"] < BATCH_FLOOR_MS)))
                    failed |= not ok
                    print(f"[{label}] expiry: {e['expired_lots']:,} of {e['lots']:,} lots ({e['expired_points']:,} "
                          f"points) in {e['seconds']:.1f} s, {e['batches']} batches, longest batch "
                          f"{e['longest_batch_ms']:.0f} ms; second run {e['rerun_lots']} lots in {e['rerun_s']:.2f} s, "
                          f"{'changed nothing' if e['rerun_unchanged'] else 'CHANGED ROWS'}; "
                          f"Σbalance {'==' if e['balanced'] else '!='} Σremaining"
                          + (f"; check_invariants {'[]' if not e['invariants'] else e['invariants'][:3]}"
                             if e["invariants"] is not None else "")
                          + f" (seeded in {e['seed_s']:.1f} s)" + ("" if ok else "  << MISSED"), flush=True)
            finally:
                scratch.drop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
