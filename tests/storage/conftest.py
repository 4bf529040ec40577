"""Fixtures for the storage tests."""
from __future__ import annotations

import pytest

from storage.db import Database
from tests.storage.ledger_helpers import people


@pytest.fixture
def emps(engine_db: Database) -> dict[str, int]:
    a, b, m, c = people(engine_db, ("E1", {}), ("E2", {"department": "市场部"}), ("M1", {"role": "manager"}),
                        ("E3", {}))
    return {"a": a, "b": b, "m": m, "c": c}
