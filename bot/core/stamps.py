"""Bindings' last-use stamps, written in batches off the request path.

A read-only command writes nothing durable (bot/core/pipeline.py), but HR still wants to know which
chat accounts are in use (the binding audit reads ``Binding.last_used_at``). The stamp is coarse
anyway (at most once an hour per binding, storage/members.py), so each process keeps the due stamps
in memory and one daemon thread writes them every ``FLUSH_SECONDS`` in one short transaction. A stamp
lost with a killed process is only a last-use time, and the next message of that person sets it again.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime

from storage import members
from storage.db import Database

log = logging.getLogger(__name__)
FLUSH_SECONDS = 10.0


class UseStamps:
    def __init__(self, db: Database, every: float = FLUSH_SECONDS) -> None:
        self.db, self.every = db, every
        self._pending: dict[int, datetime] = {}
        self._lock = threading.Lock()
        self._owner_pid: int | None = None  # the process whose thread writes; a forked worker starts its own

    def add(self, binding_id: int, at: datetime) -> None:
        with self._lock:
            self._pending[binding_id] = max(at, self._pending.get(binding_id, at))
            if self._owner_pid != os.getpid():
                self._owner_pid = os.getpid()
                threading.Thread(target=self._run, name="use-stamps", daemon=True).start()
                atexit.register(self.flush)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write the stamps waiting now; on a database error they wait for the next turn."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            with self.db.session_scope() as s:
                members.stamp_uses(s, batch)
        except Exception as exc:  # the database is away: keep them (a later stamp of the same binding wins)
            log.warning("binding last-use stamps not written (%s); %d kept for the next turn",
                        type(exc).__name__, len(batch))
            with self._lock:
                for binding_id, at in batch.items():
                    self._pending[binding_id] = max(at, self._pending.get(binding_id, at))
            return 0
        return len(batch)

    def _run(self) -> None:
        while True:  # a daemon thread: it ends with its process (atexit writes what is left)
            time.sleep(self.every)
            self.flush()
