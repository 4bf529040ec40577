"""storage/services.py: what a handler, a job or the console calls, bound to one transaction."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from settings import build_settings
from storage.catalog import seed_from_config
from storage.errors import InsufficientPoints
from storage.models import Outbox
from storage.services import Services
from tests.storage.factories import make_employee

SETTINGS = build_settings({"catalog": [{"sku": "mug", "name": "马克杯", "cost": 300, "stock": 2}]})


def test_an_order_through_the_services_moves_points_once_and_notices_are_keyed(engine_db, clock) -> None:
    with engine_db.session_scope() as s:
        sv = Services(s, SETTINGS, clock)
        seed_from_config(s, SETTINGS.catalog, now=clock())
        zhang, hr = make_employee(s, "E1"), make_employee(s, "H1", role="hr")
        sv.ledger.award(zhang.id, 500, idem_key="seed", reason="种子")
        order = sv.orders.start(zhang, "mug", 1)
        sv.orders.confirm(zhang, order.id)
        assert sv.orders.available_points(zhang.id) == 200 and [(i.sku, i.stock) for i in sv.catalog.shelf()] == [("mug", 1)]
        assert [e.employee_no for e in sv.orders.fulfillers()] == ["H1"]
        sv.orders.fulfil(hr, order.id, note="已寄出")
        with pytest.raises(InsufficientPoints):
            sv.orders.confirm(zhang, sv.orders.start(zhang, "mug", 1).id)
        sv.notify(zhang.id, {"title": "到账"}, key="k1")
        sv.notify(zhang.id, {"title": "到账"}, key="k1")  # the same event again: one row
        sv.task("approval_detail", {"platform": "wecom", "instance_id": "P1"}, key="d1", platform="wecom")
        assert sv.queries.statement(zhang.id, days=30).available == 200
        rows = [(r.kind, json.loads(r.payload)) for r in s.scalars(select(Outbox).order_by(Outbox.id))]
    assert rows == [("notice", {"employee_id": zhang.id, "card": {"title": "到账"}, "duplicate_check": True}),
                    ("task", {"task": "approval_detail", "platform": "wecom", "instance_id": "P1"})]
