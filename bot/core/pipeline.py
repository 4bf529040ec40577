"""One event, one transaction: dedupe → router (middleware, handler) → rendered answer, stored.

The inbox row, the handler's writes, the outbox rows and the stored answer commit together, so a
redelivery (the platform never got our first answer) is answered the same and acts once, and a
crash leaves nothing half-done. Only an answer of an event that was applied is stored: a failure
is never recorded, so the platform's redelivery (or the user's retry) runs the event again.
A read-only command (``Route.reads_only``) records nothing: it is answered from fresh data each time.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable, Iterator

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.context import Context
from bot.core.events import Event
from bot.core.replies import CardReply, Failed, Outgoing, Reply, Unavailable
from bot.core.router import Router
from bot.core.stamps import UseStamps
from cards import messages as msg
import telemetry
from settings import Settings
from storage.db import Database
from storage import inbox, members
from storage.outbox import enqueue
from storage.transient import is_transient, is_unreachable
from storage.standings import Standings

log = logging.getLogger("pointsbot.events")
STANDINGS_TTL_SECONDS = 60  # how old the others' totals behind a 积分 rank may be (storage/standings.py)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    # For the metrics, not the platform: what the event was and what became of it
    # (applied | redelivery | failed | unavailable; the edge adds spooled, ignored, rejected).
    kind: str = field(default="", compare=False)
    outcome: str = field(default="", compare=False)


Rendered = tuple[Answer, tuple[Outgoing, ...]]
Render = Callable[[Event, Reply], Rendered]
"""The adapter's converter: the HTTP answer and the messages to send after the commit (queued here)."""
RETRY_SECONDS = 1.0  # DingTalk waits 1.5–2.5 s for an answer (docs/protocols.md)


def retry_delays(budget: float, first: float = 0.02) -> Iterator[float]:
    """Doubling, jittered pauses that add up to at most ``budget`` seconds."""
    spent, delay = 0.0, first
    while True:
        pause = delay * random.uniform(0.5, 1.0)
        if spent + pause > budget:
            return
        spent += pause
        yield pause
        delay *= 2


def _record(s: Session, event: Event, answer: Answer) -> None:
    """The inbox row with its answer: a redelivery of this event is answered with it and acts once."""
    inbox.record(s, event.platform, event.event_id, event.received_at,
                 inbox.Stored(answer.status, answer.body, answer.content_type))


def _rendered(render: Render, event: Event, reply: Reply) -> tuple[Answer, Rendered]:
    """(the answer to send, what to keep: the answer to store and the messages to queue).

    A reply with secrets (a gift-card code) is rendered again with them hidden, and only that copy is
    stored or queued: the code reaches the person in the HTTP answer and nowhere else (docs/catalog.md).
    """
    answer, messages = render(event, reply)
    if not isinstance(reply, CardReply) or not reply.secrets:
        return answer, (answer, messages)
    return answer, render(event, reply.hidden())


def _keyed(event: Event, messages: tuple[Outgoing, ...]) -> tuple[Outgoing, ...]:
    """The messages of a read-only answer, each with a key of its delivery, so queuing them acts once."""
    return tuple(m if m.idem_key else replace(m, idem_key=f"reply:{event.platform}:{event.event_id}:{i}"[:191])
                 for i, m in enumerate(messages))


def _answer(s: Session, now: datetime, rendered: Rendered) -> Answer:
    """Queue the rendered messages in the event's transaction and return the answer."""
    answer, messages = rendered
    for m in messages:
        enqueue(s, m.kind, m.payload, now=now, idem_key=m.idem_key, platform=m.platform,
                destination=m.destination)
    return answer


def _earlier(s: Session, event: Event) -> Answer | None:
    """The answer stored for this delivery, if an earlier one was handled."""
    found = inbox.earlier(s, event.platform, event.event_id)
    return Answer(*found, outcome="redelivery") if found is not None else None


class Pipeline:
    def __init__(self, db: Database, settings: Settings, router: Router) -> None:
        self.db, self.settings, self.router = db, settings, router
        self.standings = Standings(ttl_seconds=STANDINGS_TTL_SECONDS)
        self.stamps = UseStamps(db)

    def handle(self, event: Event, render: Render) -> Answer:
        """Handle one delivery (every line it logs names the platform, the event and, once known, the
        employee); the answer says what became of it."""
        with telemetry.scope(platform=event.platform, event_id=event.event_id):
            answer = self._handle_retrying(event, render)
        return replace(answer, kind=type(event).__name__, outcome=answer.outcome or "applied")

    def _handle_retrying(self, event: Event, render: Render) -> Answer:
        """What could not be applied is never recorded as the event's answer.

        Transient database errors (deadlock, lock timeout) are tried again inside the request, for
        about a second in all; then, or at once when the database cannot be reached at all, the
        adapter gets ``Unavailable`` (it spools the callback, or asks the user to send it again).
        Any other exception is a bug: the user gets the friendly error, and nothing is recorded, so
        a redelivery after the fix runs again (docs/reliability.md).
        """
        delays = retry_delays(RETRY_SECONDS)
        while True:
            try:
                return self._handle_once(event, render)
            except Exception as exc:  # a bug must never reach the user as a stack trace or a 500
                if not is_transient(exc):
                    log.exception("handler failed platform=%s event=%s", event.platform, event.event_id)
                    return self._answer_failure(event, render)
                delay = None if is_unreachable(exc) else next(delays, None)
                if delay is None:
                    log.warning("database unavailable platform=%s event=%s: not applied (%s)",
                                event.platform, event.event_id, type(exc).__name__)
                    return replace(render(event, Unavailable(msg.BUSY))[0], outcome="unavailable")
                log.info("transient database error platform=%s event=%s (%s), retrying", event.platform,
                         event.event_id, type(exc).__name__)
                time.sleep(delay)

    def _handle_once(self, event: Event, render: Render) -> Answer:
        try:
            return self._handle(event, render)
        except IntegrityError:
            # A concurrent delivery of the same event committed first: answer as it did.
            with self.db.session_scope() as s:
                earlier = _earlier(s, event)
            if earlier is None:  # not a twin: a handler's own constraint failure
                raise
            return earlier

    def _handle(self, event: Event, render: Render) -> Answer:
        if self.router.reads_only(event):
            return self._read(event, render)
        with self.db.session_scope() as s:
            earlier = _earlier(s, event)
            if earlier is not None:
                log.info("redelivery platform=%s event=%s answered from inbox", event.platform, event.event_id)
                return earlier
            ctx = self._context(s, event)
            reply = self.router.dispatch(event, ctx)
            answer, kept = _rendered(render, event, reply)
            # Written last, with the answer, in the transaction of the effects: a concurrent twin of
            # this delivery fails on the unique (platform, event_id) at commit and all it did is
            # rolled back (one INSERT where claiming first took an INSERT and an UPDATE).
            _record(s, event, _answer(s, self.db.clock(), kept))
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

    def _read(self, event: Event, render: Render) -> Answer:
        """A read-only route: one read transaction on one connection, and nothing recorded.

        A redelivery is simply answered again from fresh data, which is right for a read, so neither the
        inbox nor its stored answer is written (docs/reliability.md §3). The read scope refuses writes
        (``query_only`` on SQLite), so a read-only route that writes after all fails loudly as the bug it
        is. What knowing the member writes waits in ``Context.member_use``: a binding's last-use stamp
        joins the next batch (``UseStamps``); a roster user's first binding, once per person, and a card
        the platform cannot take as an answer (queued once per delivery) take a short write transaction.
        """
        with self.db.read_scope() as s:
            ctx = self._context(s, event)
            reply = self.router.dispatch(event, ctx)
        answer, (_, messages) = _rendered(render, event, reply)
        use = ctx.member_use
        if use is not None and use.binding_id is not None:
            self.stamps.add(use.binding_id, event.received_at)
            use = None
        if messages or use is not None:
            with self.db.session_scope() as s:  # a redelivery finds its messages' keys taken
                _answer(s, self.db.clock(), (answer, _keyed(event, messages)))
                if use is not None:
                    members.record_use(s, use, event.received_at)
        self._log_handled(event, ctx, reply)
        return replace(answer, outcome="answered")

    def _answer_failure(self, event: Event, render: Render) -> Answer:
        """Tell the user something went wrong; everything the handler wrote is rolled back and the
        event is not recorded."""
        try:
            with self.db.session_scope() as s:
                return replace(_answer(s, self.db.clock(), render(event, Failed(msg.INTERNAL_ERROR))), outcome="failed")
        except Exception:
            log.exception("could not answer failed event platform=%s event=%s", event.platform, event.event_id)
            return Answer(200, "", outcome="failed")
