"""Orders (``R<n>``): redeeming catalog items for points.

States (docs/commands.md, Order states): awaiting confirmation (no points moved) → awaiting fulfilment (points
held, stock taken) → fulfilled (final) | rejected or cancelled (points released to the same lots,
stock restored). An order left unconfirmed for 24 hours lapses: by ``lapse_due`` and lazily
whenever the order is looked at, so a stale confirmation card cannot be used after a day.

Every transition is claimed with a conditional ``UPDATE orders … WHERE status = :from`` and its
rowcount checked *before* any points move, so two HR members fulfilling at once, or a double
click, give one effect. The ledger's idempotency keys (``order:{id}:hold|settle|release``) are the
second line of defence. Each transition runs in a savepoint, so a domain error (not enough
points, sold out) undoes the claim too and leaves the caller's transaction usable.

Lock order is always order row → wallet (ledger) → item row, the same in every transition.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage import catalog, gift_codes
from storage.errors import InsufficientPoints, InvalidAmount, InvalidState, NotPermitted, OutOfStock, UnknownItem, \
    UnknownOrder
from storage.kinds import AccountKind, ItemKind, OrderStatus
from storage.ledger import Ledger
from storage.members import audit
from storage.models import Account, Employee, Item, Order
from storage import memos

AWAITING_CONFIRMATION, AWAITING_FULFILMENT = OrderStatus.AWAITING_CONFIRMATION, OrderStatus.AWAITING_FULFILMENT
FULFILLED, REJECTED = OrderStatus.FULFILLED, OrderStatus.REJECTED
CANCELLED, LAPSED, REFUNDED = OrderStatus.CANCELLED, OrderStatus.LAPSED, OrderStatus.REFUNDED
OPEN_STATES = (AWAITING_CONFIRMATION, AWAITING_FULFILMENT)
LAPSE_AFTER = timedelta(hours=24)
MAX_QUANTITY = 99
FULFILLERS = ("hr", "admin")
_REF = re.compile(r"R(\d{1,12})", re.IGNORECASE)


# ---- references and items ---------------------------------------------------------------------
def parse_ref(token: str) -> int | None:
    """``R12`` / ``r12`` → 12; anything else (``R``, ``Rabc``, ``12``) → None."""
    m = _REF.fullmatch((token or "").strip())
    return int(m.group(1)) if m else None


def _order_id(order_ref: int | str) -> int:
    if isinstance(order_ref, int) and not isinstance(order_ref, bool):
        return order_ref
    found = parse_ref(str(order_ref))
    if found is None:
        raise UnknownOrder(f"not an order reference: {order_ref!r}")
    return found


def check_quantity(qty: Any) -> int:
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QUANTITY:
        raise InvalidAmount(f"quantity must be 1 to {MAX_QUANTITY}, got {qty!r}")
    return qty


def available_points(s: Session, employee_id: int) -> int:
    bal = s.scalar(select(Account.balance).where(Account.kind == AccountKind.WALLET, Account.employee_id == employee_id))
    return int(bal or 0)


# ---- reading (with lazy lapse) ------------------------------------------------------------------
def _lapse_if_due(s: Session, order: Order, now: datetime) -> None:
    if order.status == AWAITING_CONFIRMATION and order.created_at + LAPSE_AFTER <= now:
        s.execute(update(Order).where(Order.id == order.id, Order.status == AWAITING_CONFIRMATION)
                  .values(status=LAPSED, decided_at=now).execution_options(synchronize_session=False))
        s.refresh(order)


def get(s: Session, order_ref: int | str, now: datetime) -> Order:
    order = s.get(Order, _order_id(order_ref))
    if order is None:
        raise UnknownOrder(f"no order {order_ref}")
    _lapse_if_due(s, order, now)
    return order


def lapse_due(s: Session, now: datetime) -> int:
    """Every order unconfirmed for 24 h becomes ``lapsed`` (no points or stock ever moved)."""
    res = s.execute(update(Order).where(Order.status == AWAITING_CONFIRMATION, Order.created_at <= now - LAPSE_AFTER)
                    .values(status=LAPSED, decided_at=now).execution_options(synchronize_session=False))
    return int(res.rowcount or 0)


def list_for(s: Session, employee: Employee, now: datetime, limit: int = 10) -> list[Order]:
    """This employee's latest orders, newest first (their due ones lapsed first)."""
    s.execute(update(Order).where(Order.employee_id == employee.id, Order.status == AWAITING_CONFIRMATION,
                                  Order.created_at <= now - LAPSE_AFTER)
              .values(status=LAPSED, decided_at=now).execution_options(synchronize_session=False))
    return list(s.scalars(select(Order).where(Order.employee_id == employee.id).order_by(Order.id.desc())
                          .limit(limit).execution_options(populate_existing=True)))


def pending_fulfilment(s: Session, limit: int | None = None) -> list[Order]:
    """Orders HR still has to hand out, oldest first (the first ``limit`` of them)."""
    q = select(Order).where(Order.status == AWAITING_FULFILMENT).order_by(Order.id)
    return list(s.scalars(q if limit is None else q.limit(limit)))


def pending_fulfilment_count(s: Session) -> int:
    return int(s.scalar(select(func.count(Order.id)).where(Order.status == AWAITING_FULFILMENT)) or 0)


def fulfillers(s: Session) -> list[Employee]:
    """Who is asked to hand out an order: every active HR member and admin."""
    return list(s.scalars(select(Employee).where(Employee.status == "active", Employee.role.in_(FULFILLERS))
                          .order_by(Employee.id)))


# ---- transitions ------------------------------------------------------------------------------
def _claim(s: Session, order: Order, frm: str, to: str, **values: Any) -> bool:
    """Move ``order`` from ``frm`` to ``to`` if nobody else did first; refreshes it either way."""
    res = s.execute(update(Order).where(Order.id == order.id, Order.status == frm).values(status=to, **values)
                    .execution_options(synchronize_session=False))
    s.refresh(order)
    return res.rowcount == 1


def _gone(order: Order) -> InvalidState:
    """Why an action cannot apply to the order any more: its state, worded by cards/messages.py."""
    return InvalidState(f"order {order.status}", reason=f"order_{order.status}", order=order.id)


def _own(order: Order, employee: Employee) -> None:
    if order.employee_id != employee.id:
        raise NotPermitted("not the owner", reason="order_not_yours", order=order.id)


def start(s: Session, employee: Employee, item_token: str, qty: int, now: datetime, tz: tzinfo) -> Order:
    """Create an order awaiting confirmation. Stock, limit and balance are checked now, moved on confirm."""
    item = catalog.resolve(s, item_token)
    check_quantity(qty)
    if item.stock is not None and item.stock < qty:
        raise OutOfStock(f"sku {item.sku}: {item.stock} left, {qty} wanted")
    catalog.check_limit(s, employee.id, item, qty, catalog.limit_key(item, now, tz))
    cost = item.cost * qty
    available = available_points(s, employee.id)
    if available < cost:
        raise InsufficientPoints(available, cost)
    order = Order(employee_id=employee.id, sku=item.sku, item_name=item.name, quantity=qty, cost=cost,
                  status=AWAITING_CONFIRMATION, created_at=now, note="")
    s.add(order)
    s.flush()
    return order


def confirm(s: Session, ledger: Ledger, employee: Employee, order_ref: int | str, now: datetime, tz: tzinfo) -> Order:
    """Hold the points, take the stock and count the item against its limit, once; a repeated confirm
    returns the order unchanged. An item HR took off the shelf since cannot be confirmed any more."""
    order = get(s, order_ref, now)
    _own(order, employee)
    if order.status in (AWAITING_FULFILMENT, FULFILLED):
        return order
    if order.status != AWAITING_CONFIRMATION:
        raise _gone(order)
    with s.begin_nested():
        if not _claim(s, order, AWAITING_CONFIRMATION, AWAITING_FULFILMENT, confirmed_at=now):
            if order.status in (AWAITING_FULFILMENT, FULFILLED):
                return order  # a concurrent twin confirmed it
            raise _gone(order)
        hold = ledger.hold(employee.id, order.cost, idem_key=f"order:{order.id}:hold",
                           reason=memos.REDEMPTION.format(order=order.id, item=order.item_name, quantity=order.quantity))
        item = catalog.get(s, order.sku)
        if item is None or not item.active:
            raise UnknownItem(f"item {order.sku} is no longer offered")
        catalog.take_stock(s, order.sku, order.quantity)
        order.limit_key = catalog.limit_key(item, now, tz)
        catalog.count_redemption(s, employee.id, item, order.quantity, order.limit_key)
        order.hold_txn_id = hold.id
        s.flush()
        if (item.kind == ItemKind.DONATION and item.charity) or \
                (item.kind == ItemKind.GIFT_CARD and gift_codes.pooled(s, item.sku)):
            _fulfil_at_once(s, ledger, order, item, now)
    return order


def _fulfil_at_once(s: Session, ledger: Ledger, order: Order, item: Item, now: datetime) -> None:
    """A donation or a gift card with a code pool needs no HR: settle now (to the charity's pool, or with the
    codes taken for the order), in the confirmation's transaction."""
    if item.kind == ItemKind.GIFT_CARD:
        gift_codes.take(s, item.sku, order.id, order.quantity, now)
    assert order.hold_txn_id is not None
    ledger.settle(order.hold_txn_id, idem_key=f"order:{order.id}:settle", actor_id=order.employee_id,
                  charity=item.charity if item.kind == ItemKind.DONATION else "")
    if not _claim(s, order, AWAITING_FULFILMENT, FULFILLED, decided_at=now):
        raise _gone(order)
    audit(s, "order_fulfil", now=now, actor_id=None, target_id=order.employee_id, detail=f"R{order.id} at once")


def _give_back(s: Session, ledger: Ledger, order: Order, actor_id: int, reason: str) -> None:
    """Release the hold to the very lots it came from and put the stock back."""
    if order.hold_txn_id is not None:
        ledger.release(order.hold_txn_id, idem_key=f"order:{order.id}:release", actor_id=actor_id, reason=reason)
    catalog.restore_stock(s, order.sku, order.quantity)
    catalog.uncount_redemption(s, order.employee_id, order.sku, order.quantity, order.limit_key)


def cancel(s: Session, ledger: Ledger, employee: Employee, order_ref: int | str, now: datetime) -> Order:
    """The owner withdraws, any time before HR fulfils; a repeated cancel returns it unchanged."""
    order = get(s, order_ref, now)
    _own(order, employee)
    if order.status == CANCELLED:
        return order
    if order.status not in OPEN_STATES:
        raise _gone(order)
    with s.begin_nested():
        seen = order.status
        if not _claim(s, order, seen, CANCELLED, decided_at=now, decided_by=employee.id):
            if order.status == CANCELLED:
                return order
            raise _gone(order)
        if seen == AWAITING_FULFILMENT:
            _give_back(s, ledger, order, employee.id, memos.CANCELLED_REDEMPTION.format(order=order.id))
    audit(s, "order_cancel", now=now, actor_id=employee.id, target_id=order.employee_id, detail=f"R{order.id}")
    return order


def _decider(s: Session, order_ref: int | str, actor: Employee, now: datetime) -> Order:
    if actor.role not in FULFILLERS:
        raise NotPermitted("not a fulfiller", reason="orders_hr_only")
    order = get(s, order_ref, now)
    if order.status != AWAITING_FULFILMENT:
        raise _gone(order)
    return order


def fulfil(s: Session, ledger: Ledger, actor: Employee, order_ref: int | str, now: datetime, note: str = "") -> Order:
    """HR hands the item out: the hold becomes final. Nobody fulfils their own order."""
    order = _decider(s, order_ref, actor, now)
    if order.employee_id == actor.id:
        raise NotPermitted("own order", reason="order_own", order=order.id)
    with s.begin_nested():
        if not _claim(s, order, AWAITING_FULFILMENT, FULFILLED, decided_at=now, decided_by=actor.id,
                      note=(note or "")[:500]):
            raise _gone(order)
        if order.hold_txn_id is None:
            raise InvalidState("order without hold", reason="order_no_hold", order=order.id)
        ledger.settle(order.hold_txn_id, idem_key=f"order:{order.id}:settle", actor_id=actor.id)
    audit(s, "order_fulfil", now=now, actor_id=actor.id, target_id=order.employee_id, detail=f"R{order.id}")
    return order


def reject(s: Session, ledger: Ledger, actor: Employee, order_ref: int | str, now: datetime, note: str = "") -> Order:
    """HR refuses: the points go back to the same lots and the stock is restored."""
    order = _decider(s, order_ref, actor, now)
    with s.begin_nested():
        if not _claim(s, order, AWAITING_FULFILMENT, REJECTED, decided_at=now, decided_by=actor.id,
                      note=(note or "")[:500]):
            raise _gone(order)
        _give_back(s, ledger, order, actor.id, memos.with_note(memos.REJECTED_ORDER.format(order=order.id), note))
    audit(s, "order_reject", now=now, actor_id=actor.id, target_id=order.employee_id, detail=f"R{order.id}")
    return order


def refund(s: Session, ledger: Ledger, actor: Employee, order_ref: int | str, now: datetime, note: str) -> Order:
    """HR undoes a fulfilled order (``撤销 R<n>``): the points come back from where the settlement put them
    and the limit count is given back; stock is not (a handed-out code or item is not back on the shelf)."""
    if actor.role not in FULFILLERS:
        raise NotPermitted("not a fulfiller", reason="orders_hr_only")
    order = get(s, order_ref, now)
    if order.status == AWAITING_FULFILMENT:
        raise InvalidState("order not fulfilled", reason="order_not_fulfilled", order=order.id)
    if order.status != FULFILLED:
        raise _gone(order)
    with s.begin_nested():
        if not _claim(s, order, FULFILLED, REFUNDED, decided_at=now, decided_by=actor.id,
                      note=(note or "")[:500]):
            raise _gone(order)
        if order.hold_txn_id is None:
            raise InvalidState("order without hold", reason="order_no_hold", order=order.id)
        ledger.refund(order.hold_txn_id, idem_key=f"order:{order.id}:refund", actor_id=actor.id,
                      reason=memos.with_note(memos.REFUNDED_ORDER.format(order=order.id), note))
        catalog.uncount_redemption(s, order.employee_id, order.sku, order.quantity, order.limit_key)
    audit(s, "order_refund", now=now, actor_id=actor.id, target_id=order.employee_id, detail=f"R{order.id}")
    return order
