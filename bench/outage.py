"""A database outage under load: callbacks are spooled, answered, replayed, and none is lost.

    .venv/bin/python -m bench.outage [--url URL] [--rate 50] [--seconds 40] [--outage 20]

Sends ``--rate`` signed and encrypted callbacks a second for ``--seconds`` seconds to an app built by
``create_app`` (Flask's test client, two sender threads): WeCom text commands ``奖励 E1 <n> …`` from a
bound admin, alternating with DingTalk approval events of a 100-point rule. The database (PostgreSQL or
MariaDB: the first of ``--url`` / ``TEST_DATABASE_URLS``) sits behind a TCP relay that is cut for
``--outage`` seconds in the middle. Prints the callbacks sent, how many were answered 200 and 503, the most
events spooled at once, the seconds the replay took after the database came back, the events lost
(sent but never applied: must be 0) and ``check-ledger``. Exit status 1 if anything was lost.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app import create_app
from bench.ledger import Scratch
from storage import members
from storage.db import Database
from storage.invariants import check_invariants
from storage.migrate import upgrade
from storage.models import Employee, Txn
from tests.e2e import signing
from tests.e2e.conftest import BASE_CONFIG, WECOM, load_roster, post_approval
from tests.e2e.relay import Relay

ROSTER = ("employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid\n"
          "A1,管理员,人力资源部,,admin,adm,adm\nE1,张三,研发部,,employee,zhang,zhang\n")


def send_wecom(client, n: int) -> int:  # type: ignore[no-untyped-def]
    ts = int(time.time())
    xml = signing.wecom_text_xml("adm", WECOM["corp_id"], f"奖励 E1 {n + 1} 压测", 7_000_000 + n, ts)
    params, body = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, ts)
    return client.post("/callback/wecom", query_string=params, data=body).status_code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    servers = os.environ.get("TEST_DATABASE_URLS", "").split()
    ap.add_argument("--url", default=servers[0] if servers else "")
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--outage", type=float, default=20)
    args = ap.parse_args()
    if not args.url:
        print("bench.outage needs a PostgreSQL or MariaDB URL (--url or TEST_DATABASE_URLS)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp())
    scratch = Scratch(args.url, tmp)
    direct = make_url(scratch.url)
    relay = Relay(direct.port or 5432)
    db = Database(direct.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
    try:
        upgrade(db)
        config = copy.deepcopy(BASE_CONFIG) | {"database": {"url": db.url}, "server": {"log_level": "ERROR"},
                                               "spool": {"dir": str(tmp / "spool")}}
        app = create_app(config, db=db)
        bot = app.extensions["pointsbot"]
        ids = load_roster(bot, ROSTER)
        with db.session_scope() as s:
            members.bind(s, s.get(Employee, ids["A1"]), "wecom", "adm", now=db.clock(), actor_id=None, how="bench")
        return run(app, relay, args)
    finally:
        relay.restore()
        db.dispose()
        relay.cut()
        scratch.drop()


def run(app, relay: Relay, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    bot = app.extensions["pointsbot"]
    counts = {"sent": 0, "200": 0, "503": 0, "other": 0, "wecom": 0, "approvals": 0}
    lock, peak = threading.Lock(), [0]
    start = time.monotonic()
    cut_at, back_at = start + (args.seconds - args.outage) / 2, start + (args.seconds + args.outage) / 2

    def sender(me: int) -> None:
        client, n, period = app.test_client(), me, 2 / args.rate
        while (at := time.monotonic()) < start + args.seconds:
            kind = "wecom" if n % 4 < 2 else "approvals"
            status = send_wecom(client, n) if kind == "wecom" else post_approval(client, f"bench-{n}", "zhang")
            with lock:
                counts["sent"] += 1
                counts[kind] += status == 200
                counts[str(status) if status in (200, 503) else "other"] += 1
            n += 2
            time.sleep(max(0.0, period - (time.monotonic() - at)))

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, cut_at - time.monotonic()))
    relay.cut()
    while time.monotonic() < back_at:
        peak[0] = max(peak[0], bot.spool.usage()[1])
        time.sleep(0.2)
    relay.restore()
    restored = time.monotonic()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 120
    while bot.spool.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    drained = time.monotonic() - restored
    with bot.db.session_scope() as s:
        e1 = s.scalar(select(Employee.id).where(Employee.employee_no == "E1"))
        applied = int(s.scalar(select(func.count(Txn.id)).where(Txn.kind == "award", Txn.employee_id == e1)) or 0)
        problems = check_invariants(s)
    answered = counts["wecom"] + counts["approvals"]
    lost = answered - applied
    print(f"{counts['sent']} callbacks in {args.seconds:.0f} s ({args.rate:.0f}/s), database cut for {args.outage:.0f} s: "
          f"{counts['200']} answered 200, {counts['503']} answered 503, {counts['other']} other; "
          f"at most {peak[0]} events spooled; replay finished {drained:.1f} s after the database came back; "
          f"applied {applied} of {answered} answered; lost {lost}; check-ledger "
          f"{'clean' if not problems else len(problems)}; {'OK' if lost == 0 and not problems else 'FAIL'}")
    return 0 if lost == 0 and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
