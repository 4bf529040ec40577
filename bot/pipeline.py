"""One event, one transaction: dedupe → router (middleware, handler) → rendered answer, stored.

The inbox row, the handler's writes, the outbox rows and the stored answer commit together, so a
redelivery (the platform never got our first answer) is answered the same and acts once, and a
crash leaves nothing half-done.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.context import Context
from bot.events import Event
from bot.replies import Reply, Text
from bot.router import Router
from handlers import messages as msg
from settings import Settings
from storage.db import Database
from storage.models import ProcessedEvent

log = logging.getLogger("pointsbot.events")


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


Render = Callable[[Event, Reply, Session], Answer]


def _earlier(s: Session, event: Event) -> ProcessedEvent | None:
    return s.scalar(select(ProcessedEvent).where(ProcessedEvent.platform == event.platform,
                                                 ProcessedEvent.event_id == event.event_id[:128]))


class Pipeline:
    def __init__(self, db: Database, settings: Settings, router: Router) -> None:
        self.db, self.settings, self.router = db, settings, router

    def handle(self, event: Event, render: Render) -> Answer:
        try:
            return self._handle(event, render)
        except IntegrityError:
            # A concurrent delivery of the same event committed first: answer as it did.
            with self.db.session_scope() as s:
                earlier = _earlier(s, event)
            if earlier is None:
                raise
            return Answer(earlier.response_status, earlier.response_body, earlier.response_type)
        except Exception:  # a bug must never reach the user as a stack trace or a 500
            log.exception("handler failed platform=%s event=%s", event.platform, event.event_id)
            return self._record_failure(event, render)

    def _handle(self, event: Event, render: Render) -> Answer:
        with self.db.session_scope() as s:
            earlier = _earlier(s, event)
            if earlier is not None:
                log.info("redelivery platform=%s event=%s answered from inbox", event.platform, event.event_id)
                return Answer(earlier.response_status, earlier.response_body, earlier.response_type)
            row = ProcessedEvent(platform=event.platform, event_id=event.event_id[:128], created_at=event.received_at)
            s.add(row)
            s.flush()  # the unique (platform, event_id) claims the event before any effect
            ctx = Context(session=s, settings=self.settings, clock=self.db.clock, platform=event.platform)
            reply = self.router.dispatch(event, ctx)
            answer = render(event, reply, s)
            row.response_status, row.response_body, row.response_type = answer.status, answer.body, answer.content_type
        log.info("handled platform=%s event=%s kind=%s employee=%s command=%s reply=%s", event.platform,
                 event.event_id, type(event).__name__, ctx.member.employee_no if ctx.member else "-",
                 ctx.command or "-", type(reply).__name__)
        return answer

    def _record_failure(self, event: Event, render: Render) -> Answer:
        """Everything the failed handler wrote is rolled back; the event is answered and recorded once."""
        try:
            with self.db.session_scope() as s:
                if (earlier := _earlier(s, event)) is not None:
                    return Answer(earlier.response_status, earlier.response_body, earlier.response_type)
                answer = render(event, Text(msg.INTERNAL_ERROR), s)
                s.add(ProcessedEvent(platform=event.platform, event_id=event.event_id[:128],
                                     created_at=event.received_at, response_status=answer.status,
                                     response_body=answer.body, response_type=answer.content_type))
                return answer
        except Exception:
            log.exception("could not record failed event platform=%s event=%s", event.platform, event.event_id)
            return Answer(200, "")
