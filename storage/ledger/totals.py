"""Per-employee earned totals by local day, week, month, quarter and year (``earned_totals``; docs/reliability.md).

A period leaderboard summed the period's transactions: 3.8 s for ``排行榜 year`` on SQLite at 10,000,000 entries.
So every change that moves what a leaderboard counts as earned (an award, a reversal of an award: ``EARNED`` in
storage/queries.py) also adds to five rows, one per period it falls in, in its own transaction: a leaderboard reads
one row per employee (``ORDER BY points`` on the ``(period, points)`` index) and a rank counts an index range.

Writers of one employee are already serialised by the wallet row the ledger's gate and credits update before
this runs (storage/ledger/debit.py), so the read-then-insert below never races for the same row; a unique
collision still falls back to the update. The keys are local periods, so the ledger needs the company's time zone
(``Ledger.tz``); ``rebuild`` recomputes everything (after a time-zone change, or to fill the table the first time)
and ``differences`` is what ``check-ledger`` compares.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.kinds import TxnKind
from storage.models import EarnedTotal, Txn
from storage.periods import keys_of

if TYPE_CHECKING:
    from storage.ledger import Ledger

# what a leaderboard counts as earned: awards, and reversals of awards (storage/queries.py sums the same)
EARNED = (Txn.kind == TxnKind.AWARD) | ((Txn.kind == TxnKind.REVERSE) & (Txn.amount < 0))
_ET = EarnedTotal.__table__


def add(lg: Ledger, employee_id: int, at: datetime, points: int) -> None:
    """Count ``points`` (negative for a reversal) in the five periods ``at`` falls in."""
    for k in keys_of(at, lg.tz):
        where = and_(_ET.c.period == k, _ET.c.employee_id == employee_id)
        if lg.s.execute(update(_ET).where(where).values(points=_ET.c.points + points)).rowcount:
            continue
        try:
            with lg.s.begin_nested():
                lg.s.execute(insert(_ET).values(period=k, employee_id=employee_id, points=points))
        except IntegrityError:
            lg.s.execute(update(_ET).where(where).values(points=_ET.c.points + points))


def _sums(rows: Iterator[tuple[int, datetime, int]], tz: tzinfo) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = defaultdict(int)
    for employee_id, at, amount in rows:
        for k in keys_of(at, tz):
            out[(k, employee_id)] += int(amount)
    return out


def _earned(s: Session, lo: int, hi: int) -> Iterator[tuple[int, datetime, int]]:
    q = (select(Txn.employee_id, Txn.created_at, Txn.amount)
         .where(EARNED, Txn.employee_id >= lo, Txn.employee_id < hi).execution_options(yield_per=20_000))
    return iter(s.execute(q))  # type: ignore[arg-type]


def rebuild(db: "object", tz: tzinfo, *, batch: int = 2_000, start_after: int = 0,
            progress: "object" = None) -> int:
    """Recompute every employee's totals from the ledger, ``batch`` employees a transaction (delete their rows,
    insert the sums): safe to run twice, and resumable from any employee id. Returns the rows written."""
    from storage.models import Employee

    written = 0
    with db.read_scope() as s:  # type: ignore[attr-defined]
        ids = list(s.scalars(select(Employee.id).where(Employee.id > start_after).order_by(Employee.id)))
    for i in range(0, len(ids), batch):
        lo, hi = ids[i], ids[min(i + batch, len(ids)) - 1] + 1
        with db.session_scope() as s:  # type: ignore[attr-defined]
            s.execute(delete(_ET).where(_ET.c.employee_id >= lo, _ET.c.employee_id < hi))
            rows = [{"period": k, "employee_id": e, "points": p} for (k, e), p in _sums(_earned(s, lo, hi), tz).items()]
            for j in range(0, len(rows), 5_000):
                s.execute(insert(_ET), rows[j:j + 5_000])
            written += len(rows)
        if progress is not None:
            progress(hi - 1, written)  # type: ignore[operator]
    return written


def missing(s: Session) -> bool:
    """Earned points exist but no totals do: a database from before the table, to ``rebuild`` once."""
    return s.scalar(select(_ET.c.period).limit(1)) is None and s.scalar(select(Txn.id).where(EARNED).limit(1)) is not None


_ALL_EARNED = select(Txn.employee_id, Txn.created_at, Txn.amount).where(EARNED).execution_options(yield_per=20_000)
_ALL_KEPT = select(_ET.c.period, _ET.c.employee_id, _ET.c.points)


def differences(s: Session, tz: tzinfo, limit: int = 20) -> list[str]:
    """Totals that differ from the ledger's own sums (none when the table is right)."""
    conn = s.connection()
    want = _sums(iter(conn.execute(_ALL_EARNED)), tz)  # type: ignore[arg-type]
    have = {(k, e): int(p) for k, e, p in conn.execute(_ALL_KEPT)}
    problems = [f"earned total {k} of employee {e}: {have.get((k, e), 0)} != ledger {want.get((k, e), 0)}"
                for k, e in sorted(set(want) | set(have), key=str)
                if have.get((k, e), 0) != want.get((k, e), 0)]
    return problems[:limit]
