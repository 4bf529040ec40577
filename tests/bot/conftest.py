"""Fixtures shared by the outbound-client tests: a fake HTTP layer, a call counter, and a leak check."""
from __future__ import annotations

import logging
from typing import Iterator

import pytest
import responses


class EpochClock:
    """A settable clock in epoch seconds, as the API clients and token cache take it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def no_secrets_in_logs(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose log records contain any value its module lists in ``SENSITIVE``."""
    sensitive = getattr(request.module, "SENSITIVE", ())
    if sensitive:
        caplog.set_level(logging.DEBUG)
    yield
    # In teardown caplog.records only holds teardown records: read the earlier phases explicitly.
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        text = record.getMessage() + (record.exc_text or "")
        for value in sensitive:
            assert value not in text, f"log record leaks a credential: {text!r}"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def calls() -> list[str]:
    return []
