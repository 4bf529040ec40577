"""Approval work that needs the platform APIs: the form-detail fetch (an outbox task) and reconcile.

Why here and not in the callback: the approval-detail API may be slow or down, and a callback must
answer within 2.5–5 s, so the live path only queues ``{"task": "approval_detail"}`` and the outbox
runs :func:`fetch_detail_task` with retries. Reconcile catches what an outage lost (DingTalk retries
twice, then parks events in its failed-callback list; WeCom retries three times). Both end in
``storage.approvals.on_approval`` with the live path's keys, so nothing is awarded twice whichever
path comes first. Their events go through the pipeline as a callback's do (inbox, middleware,
handler), so no path here decides or notifies on its own.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, NamedTuple

from sqlalchemy import select

from bot.clients import get_clients
from bot.core.events import Actor, ApprovalChange, Event
from bot.core.pipeline import Answer, Rendered
from bot.core.replies import Failed, NoReply, Reply, Unavailable
from bot.dingtalk.parse import parse_failed_push, parse_instance_detail
from bot.errors import ConfigurationError, MalformedPayload, PlatformApiError
from bot.spool import UNAVAILABLE
from bot.wecom.parse import parse_approval_detail
from storage import approvals, rules
from storage.models import ApprovalInstance

log = logging.getLogger(__name__)
MAX_PAGES = 50  # failed-callback pages / getapprovalinfo pages per run: a bound, not a business limit
PENDING_AGE = timedelta(minutes=10)  # a pending_detail row older than this missed its outbox task


class Detail(NamedTuple):
    status: str
    applicant: str
    template: str
    title: str
    form: dict[str, str]
    finished_at: datetime | None


def fetch_detail(bot: Any, platform: str, instance_id: str) -> Detail:
    """The instance as the platform's detail API reports it; errors are PlatformApiError for the outbox."""
    client = get_clients(bot).get(platform)
    if client is None:
        raise ConfigurationError(f"approval detail: {platform} is not enabled")
    try:
        # Wrapped again as the full response: the bare DingTalk ``result`` object has a ``result`` key of its
        # own ("agree"), which the parser would otherwise take for the envelope.
        if platform == "wecom":
            w = parse_approval_detail({"info": client.get_approval_detail(instance_id)})
            return Detail(w.status, w.applicant, w.template, w.title, dict(w.form), w.finished_at)
        d = parse_instance_detail({"result": client.get_process_instance(instance_id)})
        return Detail(d.status, d.applicant, "", d.title, dict(d.form), d.finished_at)
    except MalformedPayload as exc:
        raise PlatformApiError(platform, "bad_response", f"approval detail: {exc}", retryable=True) from None


def _render(notes: list[str]) -> Callable[[Event, Reply], Rendered]:
    """Nobody waits on an answer here: 200 when applied (the handler's note kept), else not."""
    def render(event: Event, reply: Reply) -> Rendered:
        if isinstance(reply, Unavailable):
            return Answer(UNAVAILABLE, ""), ()
        if isinstance(reply, Failed):
            return Answer(500, ""), ()
        notes.append(reply.note if isinstance(reply, NoReply) else "")
        return Answer(200, ""), ()
    return render


def apply_event(bot: Any, event: Event) -> str:
    """One event through the pipeline; the handler's note ("awarded", …), "" for a redelivery.

    Raises PlatformApiError (retryable) when it was not applied, so the outbox task runs again.
    """
    notes: list[str] = []
    answer = bot.pipeline.handle(event, _render(notes))
    if answer.status != 200:
        raise PlatformApiError(event.platform, "not_applied", f"approval sync: {event.event_id} not applied",
                               retryable=True)
    return notes[0] if notes else ""


def apply_change(bot: Any, *, platform: str, instance_id: str, template: str, status: str, applicant: str,
                 title: str, form: dict[str, str] | None, finished_at: datetime | None) -> str:
    """What the detail API reported, as the approval event the live path would have had.

    Its id names this run: an instance that came to nothing earlier (an applicant missing from the
    roster) must be decided again; the approval's own keys keep it from awarding twice.
    """
    now = bot.db.clock()
    event = ApprovalChange(platform=platform, event_id=f"sync:{platform}:{instance_id}:{now:%Y%m%d%H%M%S%f}"[:128],
                           actor=Actor(applicant), received_at=now, instance_id=instance_id, template=template,
                           status=status, applicant_user_id=applicant, title=title,
                           form=tuple((form or {}).items()), form_complete=form is not None,
                           finished_at=finished_at)
    note = apply_event(bot, event)
    log.info("approval %s:%s (sync) status=%s → %s", platform, instance_id, status, note or "already applied")
    return note


def _known(bot: Any, platform: str, instance_id: str) -> ApprovalInstance | None:
    with bot.db.session_scope() as s:
        return s.scalar(select(ApprovalInstance).where(ApprovalInstance.platform == platform,
                                                       ApprovalInstance.instance_id == instance_id))


def _process_detail(bot: Any, platform: str, instance_id: str, detail: Detail) -> str:
    template = detail.template
    if not template:  # DingTalk's detail has no processCode: the row (or nothing) names the rule
        row = _known(bot, platform, instance_id)
        template = ""
        if row is not None and row.rule_id is not None:
            with bot.db.read_scope() as s:
                rule = rules.get(s, row.rule_id)
            template = rule.template if rule is not None else ""
    return apply_change(bot, platform=platform, instance_id=instance_id, template=template, status=detail.status,
                        applicant=detail.applicant, title=detail.title, form=detail.form,
                        finished_at=detail.finished_at)


def fetch_detail_task(bot: Any, payload: dict[str, Any]) -> None:
    """Outbox task ``approval_detail``: fetch the form, then award with its values (raises to retry)."""
    platform, instance_id = str(payload["platform"]), str(payload["instance_id"])
    row = _known(bot, platform, instance_id)
    if row is not None and row.status in approvals.FINAL:
        return  # revoked (or settled) while the task waited: nothing to fetch
    _process_detail(bot, platform, instance_id, fetch_detail(bot, platform, instance_id))


def _epoch(t: datetime) -> int:
    return int(t.replace(tzinfo=timezone.utc).timestamp())


def _reconcile_dingtalk(bot: Any, client: Any, now: datetime) -> int:
    """Replay DingTalk's failed-callback list (approvals and leavers) through the live logic."""
    awarded = 0
    for _ in range(MAX_PAGES):
        data = client.get_failed_callbacks()
        items = data.get("failed_list") or []
        for item in items if isinstance(items, list) else []:
            awarded += _replay_dingtalk(bot, item, now)
        if not data.get("has_more") or not items:
            break
    return awarded


def _replay_dingtalk(bot: Any, item: Any, now: datetime) -> int:
    try:
        event = parse_failed_push(item, now)
    except MalformedPayload as exc:
        log.warning("reconcile: dingtalk failed callback skipped: %s", exc)
        return 0
    return int(apply_event(bot, event) == "awarded")


def _sp_numbers(client: Any, template: str, start: int, end: int) -> list[str]:
    found: list[str] = []
    cursor: int | str = 0
    for _ in range(MAX_PAGES):
        data = client.get_approval_info(start, end, template_id=template, cursor=cursor, size=100)
        page = [str(n) for n in data.get("sp_no_list") or []]
        found += page
        nxt: int | str = data.get("new_next_cursor") or ""  # the newer string cursor wins when present
        if not nxt:
            nxt = int(data.get("next_cursor") or 0)
        if not page or not nxt or nxt == cursor:
            break
        cursor = nxt
    return list(dict.fromkeys(found))


def _reconcile_wecom(bot: Any, client: Any, now: datetime, days: int) -> int:
    """Every instance of a WeCom rule's template over the last ``days`` not yet settled: fetch and apply."""
    awarded, start, end = 0, _epoch(now - timedelta(days=days)), _epoch(now)
    with bot.db.read_scope() as s:
        wecom_rules = [r for r in rules.current(s) if r.platform == "wecom" and r.active]
    for rule in wecom_rules:
        for sp_no in _sp_numbers(client, rule.template, start, end):
            row = _known(bot, "wecom", sp_no)
            if row is not None and row.status in approvals.FINAL:
                continue
            try:
                detail = fetch_detail(bot, "wecom", sp_no)
            except PlatformApiError as exc:
                log.warning("reconcile: wecom approval %s: %s", sp_no, exc.code)
                continue
            note = _process_detail(bot, "wecom", sp_no, detail._replace(template=detail.template or rule.template))
            awarded += int(note == "awarded")
    return awarded


def _retry_pending(bot: Any, platforms: set[str], now: datetime) -> int:
    """Rows left in pending_detail (their outbox task died): fetch once more."""
    with bot.db.session_scope() as s:
        rows = [(r.platform, r.instance_id) for r in s.scalars(select(ApprovalInstance).where(
            ApprovalInstance.status == approvals.PENDING_DETAIL, ApprovalInstance.updated_at <= now - PENDING_AGE))]
    awarded = 0
    for platform, instance_id in rows:
        if platform not in platforms:
            continue
        try:
            detail = fetch_detail(bot, platform, instance_id)
        except (PlatformApiError, ConfigurationError) as exc:
            log.warning("reconcile: %s approval %s detail: %s", platform, instance_id, exc)
            continue
        awarded += int(_process_detail(bot, platform, instance_id, detail) == "awarded")
    return awarded


def reconcile(bot: Any, now: datetime, days: int = 3) -> int:
    """The ``reconcile-approvals`` job: returns how many awards it made (0 when the live path did them all)."""
    clients = get_clients(bot)
    with bot.db.read_scope() as s:
        platforms = {r.platform for r in rules.current(s) if r.active} & set(clients)
    awarded = 0
    if "dingtalk" in clients:  # also replays leavers, so it runs even without DingTalk rules
        try:
            awarded += _reconcile_dingtalk(bot, clients["dingtalk"], now)
        except PlatformApiError as exc:
            log.warning("reconcile: dingtalk failed-callback list: %s", exc.code)
    if "wecom" in platforms:
        try:
            awarded += _reconcile_wecom(bot, clients["wecom"], now, days)
        except PlatformApiError as exc:
            log.warning("reconcile: wecom getapprovalinfo: %s", exc.code)
    awarded += _retry_pending(bot, platforms, now)
    return awarded
