"""The inbox: which deliveries were handled, with the answer each got (docs/reliability.md §3).

A row is written last, with the answer, in the transaction of the event's effects, so a
redelivery is answered the same and acts once. Both statements run on every callback, so they
are prebuilt (storage/fastsql.py), one of the few callback lookups outside the ledger that are.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from storage.fastsql import Fast
from storage.models import ProcessedEvent

_PE = ProcessedEvent.__table__
_EARLIER = Fast(select(_PE.c.response_status, _PE.c.response_body, _PE.c.response_type).where(
    _PE.c.platform == bindparam("platform"), _PE.c.event_id == bindparam("event_id")))
_RECORD = Fast(insert(_PE).values(platform=bindparam("platform"), event_id=bindparam("event_id"),
                                  created_at=bindparam("created_at"), response_status=bindparam("status"),
                                  response_body=bindparam("body"), response_type=bindparam("type")))
EVENT_ID_MAX = 128


class Stored(NamedTuple):
    status: int
    body: str
    content_type: str


def earlier(s: Session, platform: str, event_id: str) -> Stored | None:
    """The answer stored for this delivery, if an earlier one was handled."""
    rows = _EARLIER.run(s.connection(), {"platform": platform, "event_id": event_id[:EVENT_ID_MAX]}).rows
    return Stored(int(rows[0][0]), rows[0][1], rows[0][2]) if rows else None


def record(s: Session, platform: str, event_id: str, received_at: datetime, answer: Stored) -> None:
    """The inbox row with its answer; a twin already recorded raises IntegrityError here."""
    s.flush()  # the ORM's pending writes first, in the order they were made
    _RECORD.run(s.connection(), {"platform": platform, "event_id": event_id[:EVENT_ID_MAX], "created_at": received_at,
                                 "status": answer.status, "body": answer.body, "type": answer.content_type})
