"""The local spool: verified callbacks kept on disk while the database cannot take them.

Why: WeCom resends a callback only when it got no answer at all (a 5xx counts as an answer), and
DingTalk gives up after two retries, so an outage longer than a few seconds would lose approvals,
leavers and commands. While the database is unreachable each verified WeCom callback and DingTalk
event is appended here as one JSON line (the decrypted payload, fsync'd, mode 0600, under an
``flock`` so every gunicorn worker on the host can share the file) and answered as received. When
the database answers again, one process at a time replays the lines in order through the normal
pipeline, whose inbox makes a replay of an already applied event a no-op (docs/reliability.md).

An event that a bug stops on replay (the pipeline answers "failed") was already answered as received,
so the platform will not send it again: it is never dropped. It goes to ``failed.held`` (the same JSON
lines, outside the replay), /ready counts it, and ``flask --app app spool-retry`` puts it back in the
queue once the bug is fixed (docs/reliability.md).

Files in ``dir``: ``events.jsonl`` (appended), ``replay-<n>.jsonl`` (taken for replay, with
``<name>.done``: how many of its lines are applied), ``failed.held``, ``append.lock`` and ``replay.lock``.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator

from bot.core.events import Event, Unknown
from bot.core.pipeline import Answer

log = logging.getLogger(__name__)
EVENTS = "events.jsonl"
UNAVAILABLE = 503  # what a render answers for ``Unavailable``: the adapter then spools the callback
FAILED = 500  # a bug stopped a platform event: not acknowledged, so the platform sends it again
FAILED_EVENTS = "failed.held"  # replayed events a bug stopped, kept for spool-retry


class Replayed(Enum):
    APPLIED = "applied"  # or answered from the inbox: nothing more to do
    LATER = "later"  # the database still cannot take it: stop, keep it in the queue
    FAILED = "failed"  # a bug stopped it: hold it aside, go on with the next


@dataclass(frozen=True)
class Spooled:
    source: str  # the adapter that verified it: "wecom", "wecom_contacts", "dingtalk"
    plaintext: str
    received_at: datetime

    def line(self) -> bytes:
        return (json.dumps({"source": self.source, "plaintext": self.plaintext,
                            "received_at": self.received_at.isoformat()}, ensure_ascii=False) + "\n").encode()

    @classmethod
    def parse(cls, line: bytes) -> "Spooled":
        data = json.loads(line)
        return cls(data["source"], data["plaintext"], datetime.fromisoformat(data["received_at"]))


Apply = Callable[[Spooled], bool]  # True: applied (or unreadable for good); False: the database is still away


class Spool:
    def __init__(self, directory: str | Path, *, max_bytes: int, max_events: int) -> None:
        self.dir = Path(directory)
        self.max_bytes, self.max_events = max_bytes, max_events
        self._counted = (0, 0, 0)  # (inode of events.jsonl, bytes counted, lines in them)
        self._taken_counts: dict[str, int] = {}
        self._replayer: threading.Thread | None = None
        self._guard = threading.Lock()

    @contextmanager
    def _locked(self, name: str, blocking: bool = True) -> Iterator[bool]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    def _lines(self, path: Path) -> int:
        """Lines of ``events.jsonl``, reading only what was appended since the last count (the file is
        the same one while its inode is: a replay moves it aside and a new one starts)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return 0
        same = self._counted[0] == st.st_ino and st.st_size >= self._counted[1]  # an inode may be reused
        inode, done, lines = self._counted if same else (st.st_ino, 0, 0)
        if st.st_size > done:
            with open(path, "rb") as f:
                f.seek(done)
                lines += f.read(st.st_size - done).count(b"\n")
        self._counted = (inode, st.st_size, lines)
        return lines

    def usage(self) -> tuple[int, int]:
        """(bytes, events) waiting, over every spool file; cheap enough for every append."""
        taken = sorted(self.dir.glob("replay-*.jsonl")) if self.dir.exists() else []
        size = sum(_size(p) for p in taken) + _size(self.dir / EVENTS)
        return size, self._lines(self.dir / EVENTS) + sum(max(0, self._taken_lines(p) - _done(p)) for p in taken)

    def _taken_lines(self, path: Path) -> int:
        """A file taken for replay never changes again: count its lines once."""
        if path.name not in self._taken_counts:
            try:
                self._taken_counts[path.name] = path.read_bytes().count(b"\n")
            except FileNotFoundError:  # replayed and removed by another process just now
                return 0
        return self._taken_counts[path.name]

    def full(self) -> bool:
        size, events = self.usage()
        return size >= self.max_bytes or events >= self.max_events

    def pending(self) -> bool:
        return self.dir.exists() and any(_size(p) for p in self.dir.glob("*.jsonl"))

    def append(self, item: Spooled) -> bool:
        """Keep one verified event durably; False when the spool is full (then the caller answers 503)."""
        line = item.line()
        with self._locked("append.lock"):
            size, events = self.usage()
            if size + len(line) > self.max_bytes or events + 1 > self.max_events:
                return False
            fd = os.open(self.dir / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return True

    def hold_failed(self, item: Spooled) -> None:
        """Keep an event a bug stopped, durably, out of the replay queue (``retry_failed`` puts it back)."""
        with self._locked("append.lock"):
            fd = os.open(self.dir / FAILED_EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, item.line())
                os.fsync(fd)
            finally:
                os.close(fd)

    def held(self) -> int:
        """How many events wait in ``failed.held``."""
        try:
            return (self.dir / FAILED_EVENTS).read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def retry_failed(self) -> int:
        """Queue the held events for replay again, after every event already waiting; how many."""
        with self._locked("append.lock"):
            count = self.held()
            if count:
                current = self.dir / EVENTS
                if _size(current):  # what arrived meanwhile goes first, in its order
                    current.rename(self.dir / f"replay-{time.time_ns():020d}.jsonl")
                (self.dir / FAILED_EVENTS).rename(self.dir / f"replay-{time.time_ns() + 1:020d}.jsonl")
        return count

    def _take(self) -> list[Path]:
        """The files to replay, oldest first: those taken earlier, else ``events.jsonl`` moved aside
        (new events then go to a fresh file), so an outage leaves at most two files."""
        taken = sorted(self.dir.glob("replay-*.jsonl"))
        if taken:
            return taken
        with self._locked("append.lock"):
            current = self.dir / EVENTS
            if current.exists() and current.stat().st_size:
                current.rename(self.dir / f"replay-{time.time_ns():020d}.jsonl")
        return sorted(self.dir.glob("replay-*.jsonl"))

    def replay(self, apply: Apply) -> tuple[int, bool]:
        """Apply the spooled events in order; (events applied, whether the spool is now empty).

        Only one process replays at a time (``replay.lock``); another one returns (0, False) at once.
        Progress is written after each event, so a crash mid-replay resumes where it stopped (and an
        event applied but not yet marked is answered from the inbox, changing nothing).
        """
        applied = 0
        with self._locked("replay.lock", blocking=False) as mine:
            if not mine:
                return 0, False
            while files := self._take():
                for path in files:
                    lines = path.read_bytes().splitlines()
                    for i in range(_done(path), len(lines)):
                        if not apply(Spooled.parse(lines[i])):
                            return applied, False
                        applied += 1
                        (path.parent / (path.name + ".done")).write_text(str(i + 1))
                    path.unlink()
                    (path.parent / (path.name + ".done")).unlink(missing_ok=True)
                    self._taken_counts.pop(path.name, None)
        return applied, not self.pending()

    def replay_soon(self, apply: Apply, every: float = 1.0) -> None:
        """Start (once per process) a thread that replays until the spool is empty."""
        with self._guard:
            if self._replayer is not None and self._replayer.is_alive():
                return
            self._replayer = threading.Thread(target=self._replay_loop, args=(apply, every), daemon=True,
                                              name="spool-replay")
            self._replayer.start()

    def _replay_loop(self, apply: Apply, every: float) -> None:
        while self.pending():
            try:
                applied, empty = self.replay(apply)
                if applied:
                    log.info("spool: replayed %d event(s)", applied)
                if empty:
                    return
            except Exception:  # keep trying: the lines stay on disk
                log.exception("spool: replay failed")
            time.sleep(every)


def _size(path: Path) -> int:
    """0 for a file that is not there (a replayer in another process may move or remove it any time)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _done(path: Path) -> int:
    marker = path.parent / (path.name + ".done")
    try:
        return int(marker.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def replay_through(pipeline: Any, item: Spooled, parse: Callable[[str, datetime], Event], render: Any,
                   skip: tuple[type, ...] = (Unknown,)) -> Replayed:
    """One spooled event through the pipeline again."""
    try:
        event = parse(item.plaintext, item.received_at)
    except Exception:  # it parsed when it arrived: a bug since, so it is held like one
        log.exception("spool: a spooled %s event no longer parses", item.source)
        return Replayed.FAILED
    if isinstance(event, skip):
        return Replayed.APPLIED
    answer = pipeline.handle(event, render)
    if answer.status == UNAVAILABLE:
        return Replayed.LATER
    return Replayed.FAILED if answer.outcome == "failed" else Replayed.APPLIED


class Spooler:
    """The edges' side of the spool: keep a callback the database could not take, and replay what
    waits through the adapter that verified it (``adapters``: source name → adapter with ``replay``)."""

    def __init__(self, spool: Spool, adapters: dict[str, object]) -> None:
        self.spool, self.adapters = spool, adapters

    def keep(self, source: str, plaintext: str, event: Event, received: Answer) -> Answer:
        """``received`` when the event is safely on disk; 503 once the spool is full."""
        kind = type(event).__name__
        if self.spool.append(Spooled(source, plaintext, event.received_at)):
            log.warning("database unavailable: spooled platform=%s event=%s", event.platform, event.event_id)
            self.kick()
            return replace(received, kind=kind, outcome="spooled")
        log.error("database unavailable and spool full: refused platform=%s event=%s", event.platform, event.event_id)
        return Answer(UNAVAILABLE, "", kind=kind, outcome="refused")

    def kick(self) -> None:
        if self.spool.pending():
            self.spool.replay_soon(self.apply)

    def apply(self, item: Spooled) -> bool:
        """Replay one event; False to stop the replay (the database is still away)."""
        adapter = self.adapters.get(item.source)
        outcome = adapter.replay(item) if adapter is not None else Replayed.FAILED  # type: ignore[attr-defined]
        if outcome is Replayed.FAILED:
            self.spool.hold_failed(item)
            log.error("spool: a replayed %s event could not be applied; held in %s (after the fix: flask --app app "
                      "spool-retry)", item.source, FAILED_EVENTS)
        return outcome is not Replayed.LATER
