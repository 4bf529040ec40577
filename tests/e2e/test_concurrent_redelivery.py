"""T3: every duplicate callback has one effect, with concurrent senders, on every engine."""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from storage.models import Outbox, ProcessedEvent
from tests.e2e import signing
from tests.e2e.conftest import WECOM

EVENTS = 150


def test_each_event_delivered_four_times_by_eight_senders_acts_once(app) -> None:
    now = int(time.time())
    requests = []
    for i in range(EVENTS):  # a click's card is queued once per delivery; a command is recorded once
        if i % 2:
            xml = signing.wecom_click_xml(f"user{i % 7}", WECOM["corp_id"], "帮助", now + i, task_id=f"t{i}")
        else:
            xml = signing.wecom_text_xml(f"user{i % 7}", WECOM["corp_id"], "绑定 NOSUCHCODE", 50_000 + i, now)
        requests.append(signing.wecom_post(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"], xml, now))
    deliveries = [r for r in requests for _ in range(4)]
    random.Random(7).shuffle(deliveries)

    def send(req):  # type: ignore[no-untyped-def]
        params, body = req
        return app.test_client().post("/callback/wecom", query_string=params, data=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, deliveries))
    assert statuses == [200] * len(deliveries)
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.scalar(select(func.count(ProcessedEvent.id))) == EVENTS // 2
        assert s.scalar(select(func.count(Outbox.id))) == EVENTS // 2
