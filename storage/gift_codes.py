"""Gift-card code pools: HR uploads codes for a ``gift_card`` item and a confirmation hands them out at once.

A code is money, so it is kept and shown as little as possible (docs/catalog.md, "Gift-card codes"):
stored only as a Fernet token (``cryptography``: AES-128-CBC plus HMAC-SHA256, so a tampered row fails
to open instead of opening to garbage) under ``[gift_cards] codes_key``, and opened only at the last
moment, when the outbox sends it to its owner and when its owner looks at ``我的订单`` one-to-one. No
log line, export, outbox payload or stored answer holds one: they carry the order's reference.

An item with a pool has as much stock as it has free codes: ``items.stock`` is recounted from the pool
whenever the pool changes, in the same transaction (``recount``). Codes are taken with a conditional
``UPDATE … WHERE order_id IS NULL`` whose row count is checked, so a code goes to one order only even
when two confirmations race past the stock gate.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Collection

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from storage.errors import CodesKeyMissing, CodesUnreadable, InvalidState, OutOfStock, UnknownItem
from storage.kinds import ItemKind
from storage.members import audit
from storage.models import GiftCode, Item

CODE_MAX = 200
_CHUNK = 500


class Vault:
    """Seals and opens codes with the configured key; fingerprints them to refuse a code uploaded twice."""

    def __init__(self, key: str) -> None:
        if not key:
            raise CodesKeyMissing("gift_cards.codes_key is not set", reason="codes_key_missing")
        self._fernet = Fernet(key)
        self._mac_key = hashlib.sha256(b"pointsbot gift-code fingerprint\0" + key.encode()).digest()

    def seal(self, code: str) -> str:
        return self._fernet.encrypt(code.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CodesUnreadable("a gift-card code does not open with gift_cards.codes_key (the key changed?)") from None

    def fingerprint(self, code: str) -> str:
        return hmac.new(self._mac_key, code.encode(), hashlib.sha256).hexdigest()


@dataclass
class Upload:
    """What an upload did: codes added, and the lines skipped with why (``duplicate``, ``too_long``)."""
    batch: int = 0
    added: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    free: int = 0


def read_codes(text: str, headers: Collection[str] = ()) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(line, code) of each code in a text file (one per line, or a CSV's first column; a first row that is one
    of ``headers``, in any case, is a header), and (line, problem) of lines that cannot be a code."""
    codes, problems = [], []
    for n, row in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))), start=1):
        cell = (row[0] if row else "").strip()
        if not cell or (n == 1 and cell.casefold() in {h.casefold() for h in headers}):
            continue
        if len(cell) > CODE_MAX or any(ch.isspace() for ch in cell):
            problems.append((n, "code_format"))
            continue
        codes.append((n, cell))
    return codes, problems


def _pooled_item(s: Session, sku: str) -> Item:
    item = s.get(Item, sku)
    if item is None or not item.name:
        raise UnknownItem(f"no item {sku}")
    if item.kind != ItemKind.GIFT_CARD:
        raise InvalidState(f"{sku} is a {item.kind}, not a gift card", reason="codes_not_gift_card", item=item.name)
    return item


def add(s: Session, vault: Vault, sku: str, codes: list[tuple[int, str]], *, now: datetime,
        actor_id: int | None) -> Upload:
    """Add the codes to ``sku``'s pool as one batch; a code already in the pool (or twice in the file) is skipped."""
    _pooled_item(s, sku)
    up = Upload(batch=int(s.scalar(select(func.max(GiftCode.batch)).where(GiftCode.sku == sku)) or 0) + 1)
    prints = [(line, code, vault.fingerprint(code)) for line, code in codes]
    have: set[str] = set()
    for start in range(0, len(prints), _CHUNK):
        chunk = [fp for _, _, fp in prints[start:start + _CHUNK]]
        have |= set(s.scalars(select(GiftCode.fingerprint).where(GiftCode.sku == sku, GiftCode.fingerprint.in_(chunk))))
    rows = []
    for line, code, fp in prints:
        if fp in have:
            up.skipped.append((line, "duplicate"))
            continue
        have.add(fp)
        rows.append({"sku": sku, "secret": vault.seal(code), "fingerprint": fp, "batch": up.batch, "added_at": now,
                     "added_by": actor_id})
    for start in range(0, len(rows), _CHUNK):
        s.execute(insert(GiftCode), rows[start:start + _CHUNK])
    up.added = len(rows)
    up.free = recount(s, sku)
    audit(s, "gift_codes_add", now=now, actor_id=actor_id,
          detail=f"{sku}: batch {up.batch}, {up.added} added, {len(up.skipped)} skipped")
    return up


def recount(s: Session, sku: str) -> int:
    """The item's stock is its free codes: set it from the pool (in the caller's transaction)."""
    free = select(func.count(GiftCode.id)).where(GiftCode.sku == sku, GiftCode.order_id.is_(None)).scalar_subquery()
    s.execute(update(Item).where(Item.sku == sku).values(stock=free).execution_options(synchronize_session=False))
    return int(s.scalar(select(Item.stock).where(Item.sku == sku)) or 0)


def pooled(s: Session, sku: str) -> bool:
    """Whether the item hands out codes from a pool (it ever had one uploaded)."""
    return s.scalar(select(GiftCode.id).where(GiftCode.sku == sku).limit(1)) is not None


def take(s: Session, sku: str, order_id: int, qty: int, now: datetime) -> int:
    """Give ``qty`` free codes to the order, or raise OutOfStock; the free codes left.

    Called after the stock gate took the item row's lock; the conditional UPDATE is what guarantees a
    code is never given twice (a locking read keeps MariaDB's snapshot from offering a taken one).
    """
    ids = list(s.scalars(select(GiftCode.id).where(GiftCode.sku == sku, GiftCode.order_id.is_(None))
                         .order_by(GiftCode.id).limit(qty).with_for_update()))
    res = s.execute(update(GiftCode).where(GiftCode.id.in_(ids or [-1]), GiftCode.order_id.is_(None))
                    .values(order_id=order_id, issued_at=now).execution_options(synchronize_session=False))
    if len(ids) < qty or res.rowcount != qty:
        raise OutOfStock(f"sku {sku}: fewer than {qty} codes left")
    return recount(s, sku)


def reveal(s: Session, vault: Vault, order_id: int) -> list[str]:
    """The codes an order got, opened (only for sending them to their owner)."""
    return [vault.open(t) for t in s.scalars(select(GiftCode.secret).where(GiftCode.order_id == order_id)
                                             .order_by(GiftCode.id))]


def batch_of(s: Session, sku: str) -> int:
    """The latest upload's number: notices about a low or empty pool are sent once per refill."""
    return int(s.scalar(select(func.max(GiftCode.batch)).where(GiftCode.sku == sku)) or 0)


def pools(s: Session) -> dict[str, tuple[int, int]]:
    """(free, handed out) codes per sku that has a pool."""
    return {sku: (int(total) - int(out), int(out)) for sku, total, out in s.execute(
        select(GiftCode.sku, func.count(GiftCode.id), func.count(GiftCode.order_id)).group_by(GiftCode.sku))}


def exist(s: Session) -> int:
    """How many codes are stored: once there are any, ``gift_cards.codes_key`` is required to start."""
    return int(s.scalar(select(func.count(GiftCode.id))) or 0)


def order_has_codes(s: Session, order_ids: list[int]) -> set[int]:
    """Which of these orders got codes (so ``我的订单`` shows them one-to-one)."""
    if not order_ids:
        return set()
    return set(s.scalars(select(GiftCode.order_id).where(GiftCode.order_id.in_(order_ids)).distinct()))
