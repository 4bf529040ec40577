"""bot/spool.py: durable, bounded, shared by processes, replayed in order, resumed after a crash."""
from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from bot.core.events import Actor, TextCommand
from bot.core.pipeline import Answer
from bot.spool import (EVENTS, FAILED, FAILED_EVENTS, UNAVAILABLE, Replayed, Spool, Spooled, Spooler,
                       replay_through)

AT = datetime(2026, 3, 10, 2, 0)
CTX = mp.get_context("fork")


def item(i: int) -> Spooled:
    return Spooled("wecom", f"<xml><MsgId>{i}</MsgId><Content>积分 {i}</Content></xml>", AT)


def test_append_is_private_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, max_events=10)
    assert not spool.pending()
    assert spool.append(item(1)) and spool.append(item(2))
    path = tmp_path / "spool" / EVENTS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [Spooled.parse(line) for line in path.read_bytes().splitlines()] == [item(1), item(2)]
    assert spool.pending() and spool.usage() == (path.stat().st_size, 2)


def test_full_by_events_or_bytes(tmp_path: Path) -> None:
    by_count = Spool(tmp_path / "a", max_bytes=1 << 20, max_events=2)
    assert by_count.append(item(1)) and by_count.append(item(2))
    assert by_count.full() and not by_count.append(item(3))
    one = len(item(1).line())
    by_size = Spool(tmp_path / "b", max_bytes=one * 2 + 1, max_events=100)
    assert by_size.append(item(1)) and by_size.append(item(2)) and not by_size.append(item(3))


def test_replay_in_order_stops_when_the_database_is_away_and_resumes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, max_events=100)
    for i in range(5):
        spool.append(item(i))
    seen: list[int] = []

    def flaky(x: Spooled) -> bool:  # the database goes away after two events
        if len(seen) == 2:
            return False
        seen.append(int(x.plaintext.split("<MsgId>")[1].split("<")[0]))
        return True

    assert spool.replay(flaky) == (2, False) and seen == [0, 1]
    spool.append(item(5))  # arrives while the first file waits: it is replayed after it
    again = Spool(tmp_path, max_bytes=1 << 20, max_events=100)  # a new process, after a crash
    assert again.usage()[1] == 4
    assert again.replay(lambda x: seen.append(int(x.plaintext.split("<MsgId>")[1].split("<")[0])) or True) == (4, True)
    assert seen == [0, 1, 2, 3, 4, 5] and not again.pending() and list(tmp_path.glob("*.jsonl")) == []


def test_one_replayer_at_a_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, max_events=100)
    spool.append(item(1))
    fd = os.open(tmp_path / "replay.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process is replaying
    try:
        assert spool.replay(lambda x: True) == (0, False) and spool.pending()
    finally:
        os.close(fd)
    assert spool.replay(lambda x: True) == (1, True)


def _append_many(directory: str, start: int) -> None:
    spool = Spool(directory, max_bytes=1 << 24, max_events=10_000)
    for i in range(start, start + 200):
        assert spool.append(item(i))


def test_workers_share_the_spool_without_tearing_lines(tmp_path: Path) -> None:
    procs = [CTX.Process(target=_append_many, args=(str(tmp_path), k * 1000)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    lines = (tmp_path / EVENTS).read_bytes().splitlines()
    assert sorted(Spooled.parse(line).plaintext for line in lines) == sorted(
        item(k * 1000 + i).plaintext for k in range(4) for i in range(200))


def test_files_moved_by_another_replayer_meanwhile_are_not_an_error(tmp_path: Path) -> None:
    """Another process may take or remove a file between listing and reading it (was a 500 under load)."""
    spool = Spool(tmp_path, max_bytes=1 << 20, max_events=100)
    spool.append(item(1))
    gone = tmp_path / "replay-00000000000000000001.jsonl"
    real_glob = Path.glob
    with pytest.MonkeyPatch.context() as mp_:
        mp_.setattr(Path, "glob", lambda self, pattern: [*real_glob(self, pattern), gone])
        assert spool.pending() and spool.usage()[1] == 1


class _Adapter:
    """Replays as told: the outcome for each MsgId in turn (APPLIED once a list runs out)."""

    def __init__(self, plan: dict[int, list[Replayed]]) -> None:
        self.plan, self.seen = plan, []

    def replay(self, x: Spooled) -> Replayed:
        msg_id = int(x.plaintext.split("<MsgId>")[1].split("<")[0])
        self.seen.append(msg_id)
        return self.plan[msg_id].pop(0) if self.plan.get(msg_id) else Replayed.APPLIED


def test_an_event_a_bug_stops_is_held_not_dropped_and_replayed_after_the_fix(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, max_events=100)
    for i in range(3):
        spool.append(item(i))
    adapter = _Adapter({1: [Replayed.FAILED]})
    spooler = Spooler(spool, {"wecom": adapter})
    assert spool.replay(spooler.apply) == (3, True)  # the others are not held back
    assert adapter.seen == [0, 1, 2] and spool.held() == 1 and not spool.pending()
    assert [Spooled.parse(line) for line in (tmp_path / FAILED_EVENTS).read_bytes().splitlines()] == [item(1)]
    spool.append(item(3))
    assert spool.retry_failed() == 1 and spool.held() == 0 and spool.pending()
    assert spool.replay(spooler.apply) == (2, True)
    assert adapter.seen == [0, 1, 2, 3, 1]  # what waited first, then the held event


def test_replay_through_tells_later_from_failed() -> None:
    class Pipeline:
        def __init__(self, answer: Answer) -> None:
            self.answer = answer

        def handle(self, event, render):  # type: ignore[no-untyped-def]
            return self.answer

    def parse(text: str, at: datetime) -> TextCommand:
        return TextCommand(platform="wecom", event_id="1", actor=Actor("u"), text=text, received_at=at)

    cases = [(Answer(200, "", outcome="applied"), Replayed.APPLIED),
             (Answer(200, "", outcome="redelivery"), Replayed.APPLIED), (Answer(UNAVAILABLE, ""), Replayed.LATER),
             (Answer(200, "", outcome="failed"), Replayed.FAILED),
             (Answer(FAILED, "", outcome="failed"), Replayed.FAILED)]
    for answer, outcome in cases:
        assert replay_through(Pipeline(answer), item(1), parse, None) is outcome, answer

    def broken(text: str, at: datetime) -> TextCommand:
        raise ValueError("no longer parses")

    assert replay_through(Pipeline(Answer(200, "")), item(1), broken, None) is Replayed.FAILED


def test_spool_retry_requeues_and_says_what_is_held_again(tmp_path: Path) -> None:
    from app import create_app

    app = create_app({"database": {"url": f"sqlite:///{tmp_path / 'db.sqlite'}"}, "spool": {"dir": str(tmp_path / "s")}})
    bot = app.extensions["pointsbot"]
    bot.spool.hold_failed(item(7))  # held from a platform this process no longer serves: stays held
    result = app.test_cli_runner().invoke(args=["spool-retry"])
    assert result.exit_code == 1 and "queued 1 held event(s); replayed 1; held again 1" in result.output
    assert bot.spool.held() == 1 and not bot.spool.pending()
