"""One event, one transaction: dedupe → router (middleware, handler) → rendered answer, stored.

The inbox row, the handler's writes, the outbox rows and the stored answer commit together, so a
redelivery (the platform never got our first answer) is answered the same and acts once, and a
crash leaves nothing half-done.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from bot.context import Context
from bot.events import Event
from bot.replies import Reply, Text
from bot.router import Router
from handlers import messages as msg
from settings import Settings
from storage.db import Database
from storage.fastsql import Fast
from storage.models import ProcessedEvent
from storage.standings import Standings

log = logging.getLogger("pointsbot.events")
STANDINGS_TTL_SECONDS = 60  # how old the others' totals behind a 积分 rank may be (storage/standings.py)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


Render = Callable[[Event, Reply, Session], Answer]


_PE = ProcessedEvent.__table__
_EARLIER = Fast(select(_PE.c.response_status, _PE.c.response_body, _PE.c.response_type).where(
    _PE.c.platform == bindparam("platform"), _PE.c.event_id == bindparam("event_id")))


_RECORD = Fast(insert(_PE).values(platform=bindparam("platform"), event_id=bindparam("event_id"),
                                  created_at=bindparam("created_at"), response_status=bindparam("status"),
                                  response_body=bindparam("body"), response_type=bindparam("type")))


def _record(s: Session, event: Event, answer: Answer) -> None:
    """The inbox row with its answer; a twin already recorded raises IntegrityError here."""
    s.flush()  # the ORM's pending writes first, in the order they were made
    _RECORD.run(s.connection(), {"platform": event.platform, "event_id": event.event_id[:128],
                                 "created_at": event.received_at, "status": answer.status, "body": answer.body,
                                 "type": answer.content_type})


def _earlier(s: Session, event: Event) -> Answer | None:
    """The answer stored for this delivery, if an earlier one was handled."""
    rows = _EARLIER.run(s.connection(), {"platform": event.platform, "event_id": event.event_id[:128]}).rows
    return Answer(int(rows[0][0]), rows[0][1], rows[0][2]) if rows else None


class Pipeline:
    def __init__(self, db: Database, settings: Settings, router: Router) -> None:
        self.db, self.settings, self.router = db, settings, router
        self.standings = Standings(ttl_seconds=STANDINGS_TTL_SECONDS)

    def handle(self, event: Event, render: Render) -> Answer:
        try:
            return self._handle(event, render)
        except IntegrityError:
            # A concurrent delivery of the same event committed first: answer as it did.
            with self.db.session_scope() as s:
                earlier = _earlier(s, event)
            if earlier is None:  # not a twin: a handler's own constraint failure
                log.exception("handler failed platform=%s event=%s", event.platform, event.event_id)
                return self._record_failure(event, render)
            return earlier
        except Exception:  # a bug must never reach the user as a stack trace or a 500
            log.exception("handler failed platform=%s event=%s", event.platform, event.event_id)
            return self._record_failure(event, render)

    def _handle(self, event: Event, render: Render) -> Answer:
        if self.db.dialect == "sqlite" and self.router.reads_only(event):
            answer = self._read_then_record(event, render)
            if answer is not None:
                return answer
        with self.db.session_scope() as s:
            earlier = _earlier(s, event)
            if earlier is not None:
                log.info("redelivery platform=%s event=%s answered from inbox", event.platform, event.event_id)
                return earlier
            ctx = self._context(s, event)
            reply = self.router.dispatch(event, ctx)
            answer = render(event, reply, s)
            # Written last, with the answer, in the transaction of the effects: a concurrent twin of
            # this delivery fails on the unique (platform, event_id) at commit and all it did is
            # rolled back (one INSERT where claiming first took an INSERT and an UPDATE).
            _record(s, event, answer)
        self._log_handled(event, ctx, reply)
        return answer

    def _context(self, s: Session, event: Event) -> Context:
        return Context(session=s, settings=self.settings, clock=self.db.clock, platform=event.platform,
                       standings=self.standings)

    @staticmethod
    def _log_handled(event: Event, ctx: Context, reply: Reply) -> None:
        log.info("handled platform=%s event=%s kind=%s employee=%s command=%s reply=%s", event.platform,
                 event.event_id, type(event).__name__, ctx.member.employee_no if ctx.member else "-",
                 ctx.command or "-", type(reply).__name__)

    def _read_then_record(self, event: Event, render: Render) -> Answer | None:
        """SQLite: a query's reads run without the database write lock, then a short write
        transaction renders the reply (which may queue a card) and records the event.

        Every write serialises on SQLite, and a balance statement held the lock for all its
        reads. The read scope refuses writes (``query_only``), so a route declared read-only
        that writes after all (a member whose binding is touched, say) returns None here and
        runs again on the ordinary path.
        """
        try:
            with self.db.read_scope() as s:
                if (earlier := _earlier(s, event)) is not None:
                    log.info("redelivery platform=%s event=%s answered from inbox", event.platform, event.event_id)
                    return earlier
                ctx = self._context(s, event)
                reply = self.router.dispatch(event, ctx)
        except OperationalError as exc:
            if "readonly" not in str(exc.orig):
                raise
            return None
        with self.db.session_scope() as s:  # a twin recorded meanwhile fails the insert: see handle()
            answer = render(event, reply, s)
            _record(s, event, answer)
        self._log_handled(event, ctx, reply)
        return answer

    def _record_failure(self, event: Event, render: Render) -> Answer:
        """Everything the failed handler wrote is rolled back; the event is answered and recorded once."""
        try:
            with self.db.session_scope() as s:
                if (earlier := _earlier(s, event)) is not None:
                    return earlier
                answer = render(event, Text(msg.INTERNAL_ERROR), s)
                _record(s, event, answer)
                return answer
        except Exception:
            log.exception("could not record failed event platform=%s event=%s", event.platform, event.event_id)
            return Answer(200, "")
