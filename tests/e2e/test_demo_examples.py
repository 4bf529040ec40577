"""Every command's example (shown by 帮助) works in the demo company, typed by someone allowed to use it."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from playground.demo import FEATURED, load_demo
from settings import build_settings
from storage import gift_codes
from storage.db import Database
from storage.invariants import check_invariants
from storage.models import Item, Order, Txn
from tests.e2e.test_conversations import Chat, _latest_card_text


def _routes():  # type: ignore[no-untyped-def]
    from app import build_router

    return [r for r in build_router().routes if r.example]


@pytest.fixture
def demo(app):  # type: ignore[no-untyped-def]
    bot = app.extensions["pointsbot"]
    load_demo(bot.db, bot.settings)
    return bot


def test_each_example_is_understood_in_the_demo(client, demo) -> None:
    failures = []
    for route in _routes():
        role = "employee" if route.roles is None else next(r for r in ("employee", "manager", "hr", "admin")
                                                           if r in route.roles)
        shown = _latest_card_text(demo, "dingtalk", Chat(client, "dingtalk").say(FEATURED[role], route.example))
        misread = "用法:" in shown and "找不到这条" not in shown  # a reference missing in the demo is fine
        if not shown.strip() or misread or "找不到这位员工" in shown or "系统暂时出了点问题" in shown:
            failures.append(f"{route.example!r} → {shown[:120]!r}")
    assert failures == []


def test_the_demos_past_redemptions_went_through_the_order_service(tmp_path: Path, clock: Any) -> None:
    """Stock, holds and settlements of the demo's history are the order service's own (limits counted too)."""
    data = tomllib.loads((Path(__file__).resolve().parents[2] / "config.example.toml").read_text(encoding="utf-8"))
    db = Database(f"sqlite:///{tmp_path / 'demo.db'}", clock=clock)
    db.create_all()
    settings = build_settings({k: data[k] for k in ("catalog", "points", "gift_cards", "playground")})
    load_demo(db, settings)
    at_once = {"charity", "ecard50"}  # a donation, and a gift card with a pool of demo codes: no HR step
    with db.session_scope() as s:
        fulfilled = list(s.scalars(select(Order).where(Order.status == "fulfilled")))
        assert {o.sku for o in fulfilled} >= at_once | {"course"}
        assert all(o.hold_txn_id is not None and (o.decided_by is None) == (o.sku in at_once) for o in fulfilled)
        settled = set(s.scalars(select(Txn.related_txn_id).where(Txn.kind == "settle")))
        assert {o.hold_txn_id for o in fulfilled} <= settled
        vault = gift_codes.Vault(settings.gift_cards["codes_key"])
        assert all(gift_codes.reveal(s, vault, o.id)[0].startswith("DEMO-") for o in fulfilled if o.sku == "ecard50")
        configured = {c["sku"]: c.get("stock") for c in data["catalog"]}
        for sku in {o.sku for o in fulfilled if configured[o.sku] is not None and o.sku not in at_once}:
            taken = sum(o.quantity for o in fulfilled if o.sku == sku)
            assert s.get(Item, sku).stock == configured[sku] - taken
        assert check_invariants(s) == []
    db.dispose()
