"""Jobs at company scale: steps batched into transactions bounded by time, reads in pages (Speed)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from scheduler import jobs
from storage import digests
from storage.ledger import Ledger
from storage.models import Account, Txn
from tests.scheduler.helpers import award, run
from tests.storage.factories import make_employee


@pytest.mark.parametrize("batch_seconds, transactions", [(0.0, 12), (60.0, 1)])
def test_budget_grants_go_in_batches_bounded_by_time(bot: Any, clock: Any, monkeypatch: Any, batch_seconds: float,
                                                     transactions: int) -> None:
    with bot.db.session_scope() as s:
        managers = [make_employee(s, f"M{i}", role="manager").id for i in range(12)]
    monkeypatch.setattr(jobs, "BATCH_SECONDS", batch_seconds)
    assert run(bot, "budget-grant", clock()).endswith(f"({transactions} transactions)")
    with bot.db.session_scope() as s:
        budgets_ = dict(s.execute(select(Account.employee_id, Account.balance).where(Account.kind == "budget")).all())
    assert budgets_ == {m: 1000 for m in managers}


def test_a_budget_grant_stopped_by_a_failure_keeps_the_batches_before_and_a_rerun_grants_the_rest_once(
        bot: Any, clock: Any, monkeypatch: Any) -> None:
    with bot.db.session_scope() as s:
        managers = [make_employee(s, f"M{i}", role="manager").id for i in range(6)]
    monkeypatch.setattr(jobs, "BATCH_SECONDS", 0.0)
    grant, calls = Ledger.grant_budget, []

    def failing(self, manager_id, *a, **kw):  # type: ignore[no-untyped-def]
        calls.append(manager_id)
        if len(calls) == 4:
            raise RuntimeError("disk full")
        return grant(self, manager_id, *a, **kw)

    monkeypatch.setattr(Ledger, "grant_budget", failing)
    assert "failed" in run(bot, "budget-grant", clock())
    with bot.db.session_scope() as s:
        assert sorted(s.scalars(select(Account.employee_id).where(Account.kind == "budget"))) == managers[:3]
    run(bot, "budget-grant", clock(), force=True)
    with bot.db.session_scope() as s:
        budgets_ = dict(s.execute(select(Account.employee_id, Account.balance).where(Account.kind == "budget")).all())
        grants = s.scalar(select(func.count(Txn.id)).where(Txn.kind == "budget_grant"))
    assert budgets_ == {m: 1000 for m in managers} and grants == 6


def test_the_quiet_ones_of_a_digest_are_read_in_pages_with_the_same_result(bot: Any, company: dict[str, int],
                                                                            clock: Any, monkeypatch: Any) -> None:
    award(bot, company["a"], 10, clock() - timedelta(days=3), "q-a")  # a was given points; b was not
    whole = digests.manager_digests(bot.db, clock(), clock() - timedelta(days=9))
    monkeypatch.setattr(digests, "QUIET_PAGE", 1)
    paged = digests.manager_digests(bot.db, clock(), clock() - timedelta(days=9))
    assert paged[company["mgr"]].quiet == whole[company["mgr"]].quiet == ["李四"]
