"""A plain-Python model of the ledger's lots for the stateful test: what the database must agree with."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

VALIDITY_DAYS = 10  # short, so that clock moves of a few days make lots expire


@dataclass
class MLot:
    emp: int
    amount: int
    remaining: int
    expires: datetime


@dataclass
class MTxn:
    kind: str  # award|deduct|hold|transfer|expire (a leaver's wallet emptied)
    emp: int
    amount: int
    lot: int | None = None  # award: the lot it created
    budget: bool = False
    slices: list[tuple[int, int]] = field(default_factory=list)  # (model lot index, points)
    closed: bool = False  # hold settled/released, award/deduct/expire reversed


class Model:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.lots: list[MLot] = []
        self.budget = 0
        self.held = self.expired = self.redeemed = 0
        self.frozen: set[int] = set()
        self.txns = 0  # how many ledger transactions the database must hold

    def balance(self, emp: int) -> int:
        return sum(l.remaining for l in self.lots if l.emp == emp)

    def new_lot(self, emp: int, points: int) -> int:
        self.lots.append(MLot(emp, points, points, self.now + timedelta(days=VALIDITY_DAYS)))
        return len(self.lots) - 1

    def consume(self, emp: int, points: int, prefer: int | None = None) -> list[tuple[int, int]]:
        order = sorted((i for i, l in enumerate(self.lots) if l.emp == emp and l.remaining > 0),
                       key=lambda i: (self.lots[i].expires, i))
        if prefer is not None:
            order.sort(key=lambda i: i != prefer)
        slices, left = [], points
        for i in order:
            if not left:
                break
            take = min(left, self.lots[i].remaining)
            self.lots[i].remaining -= take
            slices.append((i, take))
            left -= take
        assert left == 0, "model: consume beyond balance"
        return slices

    def restore(self, slices: list[tuple[int, int]]) -> int:
        """Give slices back; those of lots past expiry expire at once (one more txn). Returns the points expired."""
        gone = 0
        for i, pts in slices:
            lot = self.lots[i]
            lot.remaining += pts
            if lot.expires <= self.now:
                lot.remaining -= pts
                gone += pts
        self.expired += gone
        self.txns += 1 if gone else 0
        return gone

    def give_back(self, emp: int, slices: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], int | None]:
        """Undo a deduction or an expiry: slices of live lots go back to them, the rest into one new lot.

        Returns (the slices restored, the index of the new lot or None).
        """
        live = [(i, pts) for i, pts in slices if self.lots[i].expires > self.now]
        for i, pts in live:
            self.lots[i].remaining += pts
        past = sum(pts for i, pts in slices if self.lots[i].expires <= self.now)
        return live, (self.new_lot(emp, past) if past else None)

    def expire(self) -> int:
        """expire_due: one txn per wallet with due points, whatever the batch size."""
        due = [lot for lot in self.lots if lot.expires <= self.now and lot.remaining]
        self.txns += len({lot.emp for lot in due})
        gone = sum(lot.remaining for lot in due)
        for lot in due:
            lot.remaining = 0
        self.expired += gone
        return gone
