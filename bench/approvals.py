"""Approval events per second through the HTTP callback endpoints, and the check that nothing is awarded twice.

Usage: .venv/bin/python bench/approvals.py [--events 10000] [--duplicates 0.3] [--seed 1] [--db PATH]

Builds ``--events`` signed and encrypted callbacks (WeCom ``sys_approval_change`` and DingTalk
``bpms_instance_change``, every status, out of order), of which ``--duplicates`` are redeliveries of
earlier ones (re-encrypted, as the platforms resend them), posts them to ``/callback/wecom`` and
``/callback/dingtalk`` of ``create_app`` on a SQLite file (Flask's test client, in process, no
network), then prints events/s and checks awards = approved unique instances.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import ApprovalInstance, Employee, Txn  # noqa: E402
from tests.e2e import signing  # noqa: E402
from tests.e2e.conftest import DINGTALK, WECOM  # noqa: E402

PEOPLE = 200
RULES = [{"name": "全勤", "platform": "dingtalk", "template": "PROC-FULLATT", "points": 100, "category": "attendance"},
         {"name": "培训", "platform": "wecom", "template": "TPL-TRAIN", "points": 50, "category": "training"}]
# (WeCom SpStatus, StatuChangeEvent) and DingTalk (type, result) per neutral status
WECOM_STATUS = {"running": (1, 1), "approved": (2, 2), "rejected": (3, 3), "withdrawn": (4, 6)}
DINGTALK_STATUS = {"running": ("start", None), "approved": ("finish", "agree"), "rejected": ("finish", "refuse"),
                   "withdrawn": ("terminate", None)}
ENDINGS = ("approved", "approved", "approved", "rejected", "withdrawn")  # how instances end


def wecom_request(sp_no: str, status: str, user: str, ts: int, seq: int) -> tuple[str, dict[str, str], bytes, dict]:
    sp, change = WECOM_STATUS[status]
    corp = WECOM["corp_id"]
    xml = (f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
           f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
           f"<Event><![CDATA[sys_approval_change]]></Event><AgentID>1000002</AgentID><ApprovalInfo>"
           f"<SpNoStr><![CDATA[{sp_no}]]></SpNoStr><SpNo>{sp_no}</SpNo><SpName><![CDATA[培训 {seq}]]></SpName>"
           f"<SpStatus>{sp}</SpStatus><TemplateId><![CDATA[TPL-TRAIN]]></TemplateId><ApplyTime>{ts}</ApplyTime>"
           f"<Applyer><UserId><![CDATA[{user}]]></UserId><Party><![CDATA[1]]></Party></Applyer>"
           f"<StatuChangeEvent>{change}</StatuChangeEvent></ApprovalInfo></xml>")
    q, b = signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], corp, xml, ts, nonce=str(seq))
    return "/callback/wecom", q, b, {}


def dingtalk_request(pid: str, status: str, user: str, ts: int, seq: int) -> tuple[str, dict[str, str], bytes, dict]:
    type_, result = DINGTALK_STATUS[status]
    payload: dict[str, Any] = {"EventType": "bpms_instance_change", "eventId": f"ev-{pid}-{status}",
                               "processInstanceId": pid, "processCode": "PROC-FULLATT", "title": f"全勤 {seq}",
                               "type": type_, "staffId": user, "CorpId": DINGTALK["corp_id"]}
    if result:
        payload["result"] = result
    q, b = signing.dingtalk_event(DINGTALK["token"], DINGTALK["aes_key"], DINGTALK["app_key"], payload, ts * 1000,
                                  nonce=f"n{seq}")
    return "/callback/dingtalk", q, b, {"Content-Type": "application/json"}


def plan(n: int, dup_share: float, rng: random.Random) -> tuple[list[tuple[str, str, str, str]], set[str]]:
    """Unique (platform, instance, status, user) events, shuffled, plus duplicates; and the approved instances."""
    unique: list[tuple[str, str, str, str]] = []
    approved: set[str] = set()
    i = 0
    target = n - int(n * dup_share)
    while len(unique) < target:
        platform = "wecom" if i % 2 else "dingtalk"
        iid, user = f"{platform[0].upper()}{i:06d}", f"{'wc' if platform == 'wecom' else 'dt'}_{i % PEOPLE}"
        end = rng.choice(ENDINGS)
        steps = ["running", end] if rng.random() < 0.7 else [end]
        for status in steps[: target - len(unique)]:
            unique.append((platform, iid, status, user))
            if status == "approved":
                approved.add(f"approval:{platform}:{iid}")
        i += 1
    rng.shuffle(unique)  # finish before start happens often
    events = unique + [rng.choice(unique) for _ in range(n - len(unique))]
    rng.shuffle(events)
    return events, approved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--duplicates", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", default="")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    path = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="pointsbot-bench-")) / "bench.db"
    url = f"sqlite:///{path}"
    db = Database(url, sqlite_synchronous="NORMAL")
    db.create_all()
    config = {"server": {"log_level": "WARNING"}, "database": {"url": url, "sqlite_synchronous": "NORMAL"},
              "wecom": WECOM, "dingtalk": DINGTALK, "rules": RULES}
    app = create_app(config, db=db)
    with db.session_scope() as s:
        for k in range(PEOPLE):
            s.add(Employee(employee_no=f"B{k:04d}", name=f"员工{k}", department="", role="employee", status="active",
                           dingtalk_userid=f"dt_{k}", wecom_userid=f"wc_{k}", created_at=db.clock()))
    events, approved = plan(args.events, args.duplicates, rng)
    ts = int(time.time())
    built = time.perf_counter()
    requests = [(wecom_request if p == "wecom" else dingtalk_request)(iid, st, user, ts, n)
                for n, (p, iid, st, user) in enumerate(events)]
    print(f"built {len(requests)} signed, encrypted callbacks in {time.perf_counter() - built:.1f}s "
          f"({len(set(events))} unique events, {len(events) - len(set(events))} redeliveries)")
    client = app.test_client()
    failures = 0
    start = time.perf_counter()
    for route, query, body, headers in requests:
        resp = client.post(route, query_string=query, data=body, headers=headers)
        failures += resp.status_code != 200
    elapsed = time.perf_counter() - start
    with db.session_scope() as s:
        awards = s.scalar(select(func.count(Txn.id)).where(Txn.kind == "award")) or 0
        keys = set(s.scalars(select(Txn.idem_key).where(Txn.kind == "award")))
        rows = s.scalar(select(func.count(ApprovalInstance.id)).where(ApprovalInstance.status == "approved")) or 0
    print(f"{len(requests)} approval callbacks in {elapsed:.1f}s: {len(requests) / elapsed:.0f} events/s "
          f"(SQLite file, one process, Flask test client; {failures} non-200 answers)")
    ok = awards == len(approved) == rows and keys == approved and failures == 0
    print(f"check: awards {awards} = approved unique instances {len(approved)} "
          f"(instances recorded approved {rows}): {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
