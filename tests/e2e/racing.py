"""Processes racing through the real endpoints, like gunicorn workers: each runs its own app and
connections, and all of them are released together at the start of every round.

Threads in one process hid these races (the GIL and one connection pool serialise too much), so
the concurrency tests of the e2e suite use this.
"""
from __future__ import annotations

import multiprocessing as mp
import traceback
from typing import Any, Callable

from app import create_app
from storage.db import Database

CTX = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
Send = Callable[[Any, int, int], Any]  # (Flask test client, round, racer) -> something picklable


def _racer(barrier: Any, out: Any, config: dict, rounds: int, me: int, send: Send) -> None:
    try:
        db = Database(config["database"]["url"])
        client = create_app(config, db=db).test_client()
        for r in range(rounds):
            barrier.wait(timeout=120)
            out.put((r, me, send(client, r, me)))
        db.dispose()
    except BaseException:  # noqa: BLE001 - reported to the parent
        out.put((-1, me, traceback.format_exc()))


def race(config: dict, rounds: int, racers: int, send: Send) -> list[list[Any]]:
    """``results[r][i]``: what ``send(client, r, i)`` returned in racer ``i`` during round ``r``."""
    barrier, out = CTX.Barrier(racers), CTX.Queue()
    procs = [CTX.Process(target=_racer, args=(barrier, out, config, rounds, i, send)) for i in range(racers)]
    for p in procs:
        p.start()
    results: list[list[Any]] = [[None] * racers for _ in range(rounds)]
    for _ in range(rounds * racers):
        r, me, value = out.get(timeout=300)
        assert r >= 0, value
        results[r][me] = value
    for p in procs:
        p.join(timeout=30)
    return results
