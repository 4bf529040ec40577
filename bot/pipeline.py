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


def _claim(s: Session, event: Event) -> ProcessedEvent | None:
    """Insert the inbox row; return the earlier row instead when this is a redelivery."""
    row = ProcessedEvent(platform=event.platform, event_id=event.event_id[:128], created_at=event.received_at)
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
        return None
    except IntegrityError:
        return s.scalar(select(ProcessedEvent).where(ProcessedEvent.platform == event.platform,
                                                     ProcessedEvent.event_id == event.event_id[:128]))


class Pipeline:
    def __init__(self, db: Database, settings: Settings, router: Router) -> None:
        self.db, self.settings, self.router = db, settings, router

    def handle(self, event: Event, render: Render) -> Answer:
        with self.db.session_scope() as s:
            earlier = _claim(s, event)
            if earlier is not None:
                log.info("redelivery platform=%s event=%s answered from inbox", event.platform, event.event_id)
                return Answer(earlier.response_status, earlier.response_body, earlier.response_type)
            ctx = Context(session=s, settings=self.settings, clock=self.db.clock, platform=event.platform)
            reply = self._dispatch(event, ctx)
            answer = render(event, reply, s)
            row = s.scalar(select(ProcessedEvent).where(ProcessedEvent.platform == event.platform,
                                                        ProcessedEvent.event_id == event.event_id[:128]))
            assert row is not None
            row.response_status, row.response_body, row.response_type = answer.status, answer.body, answer.content_type
        log.info("handled platform=%s event=%s kind=%s employee=%s command=%s reply=%s", event.platform,
                 event.event_id, type(event).__name__, ctx.member.employee_no if ctx.member else "-",
                 ctx.command or "-", type(reply).__name__)
        return answer

    def _dispatch(self, event: Event, ctx: Context) -> Reply:
        try:
            with ctx.session.begin_nested():
                return self.router.dispatch(event, ctx)
        except Exception:  # a bug must never reach the user as a stack trace or a 500
            log.exception("handler failed platform=%s event=%s", event.platform, event.event_id)
            return Text(msg.INTERNAL_ERROR)
