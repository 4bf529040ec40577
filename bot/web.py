"""Flask blueprints per platform: a few lines each, no logic (bolt's SlackRequestHandler style); and the
probes an operator's tools ask (/healthz, /readyz, /status, /metrics; docs/operations.md).

Anything that cannot be verified or decrypted is 403 (413 over 64 KiB) before any database write. Every
callback gets a request id (the caller's ``X-Request-ID`` when safe), logged on each line and returned.
"""
from __future__ import annotations

import hmac
import logging
import os
import time
from typing import Any, Callable, Iterator, Mapping

from flask import Blueprint, Response, jsonify, redirect, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text
from werkzeug.exceptions import RequestEntityTooLarge

import telemetry
from bot.clients import DINGTALK_CALLS, month_window
from bot.errors import CallbackRejected
from bot.core.pipeline import Answer
from storage.migrate import schema_is_current
from storage.status import gauges
from storage.status import status as storage_status

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "::1")


def _respond(platform: str, action: Callable[[], Answer]) -> Response:
    """One callback: its request id in every log line and in the response, counted and timed."""
    rid = telemetry.request_id(request.headers.get("X-Request-ID"))
    started = time.perf_counter()
    with telemetry.scope(request_id=rid, platform=platform):
        answer = _answer(platform, action)
    telemetry.CALLBACKS.labels(platform, answer.kind or "-", answer.outcome or "ignored").inc()
    telemetry.CALLBACK_SECONDS.labels(platform).observe(time.perf_counter() - started)
    response = Response(answer.body, answer.status, content_type=answer.content_type)
    response.headers["X-Request-ID"] = rid
    return response


def _answer(platform: str, action: Callable[[], Answer]) -> Answer:
    try:
        return action()
    except RequestEntityTooLarge:
        return Answer(413, "request body too large", outcome="too_large")
    except CallbackRejected as exc:
        log.warning("%s: rejected callback (%s) from %s", platform, type(exc).__name__, request.remote_addr)
        return Answer(403, "forbidden", outcome="rejected")
    except Exception:  # a bug at the edge: not acknowledged (the platform may deliver it again), never a 500
        log.exception("%s: callback failed before it could be handled", platform)
        return Answer(503, "unavailable", outcome="error")


def _body() -> bytes:
    if (request.content_length or 0) > 64 * 1024:
        raise RequestEntityTooLarge()
    return request.get_data(cache=False)


def wecom_blueprint(name: str, path: str, adapter: Any) -> Blueprint:
    bp = Blueprint(name, __name__)

    @bp.get(path)
    def verify() -> Response:
        return _respond(adapter.platform, lambda: adapter.verify_url(request.args))

    @bp.post(path)
    def callback() -> Response:
        return _respond(adapter.platform, lambda: adapter.handle(request.args, _body()))

    return bp


def dingtalk_blueprint(adapter: Any, cards_enabled: bool) -> Blueprint:
    bp = Blueprint("dingtalk", __name__)

    @bp.post("/callback/dingtalk")
    def events() -> Response:
        return _respond("dingtalk", lambda: adapter.handle_event(request.args, _body()))

    @bp.post("/callback/dingtalk/robot")
    def robot() -> Response:
        return _respond("dingtalk", lambda: adapter.handle_robot(request.headers, _body()))

    if cards_enabled:
        @bp.post("/callback/dingtalk/card")
        def card() -> Response:
            return _respond("dingtalk", lambda: adapter.handle_card(request.headers, _body()))

    return bp


INDEX_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>pointsbot · 员工积分机器人</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em; line-height: 1.6">
<h1>pointsbot · 员工积分机器人</h1>
<p>这里运行的是钉钉和企业微信中的员工积分机器人。员工请在钉钉或企业微信中向机器人发送「帮助」。</p>
<p>HR 和经理：在聊天中发送「后台」获取积分后台的登录链接。</p>
</body></html>"""


def probes_blueprint(bot: Any) -> Blueprint:
    """``/healthz``, ``/readyz`` and ``/status``: what load balancers and operators ask of a web process."""
    bp = Blueprint("probes", __name__)

    @bp.get("/")
    def index():  # type: ignore[no-untyped-def]
        """The address a newcomer opens first: the playground in the demo, else a page saying what runs here."""
        if bot.settings.playground["enabled"]:
            return redirect("/playground")
        return Response(INDEX_PAGE, mimetype="text/html")

    @bp.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        try:
            with bot.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return jsonify(status="unavailable"), 503
        return jsonify(status="ok")

    schema_ok: dict[str, bool] = {}

    @bp.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        """For load balancers: can this process take callbacks? Yes while the database answers and its
        schema is current, and also while the database is away but the spool has room (so an outage
        does not take every web host out of rotation at once)."""
        size, events = bot.spool.usage()
        spool_info = {"events": events, "bytes": size, "full": bot.spool.full(), "held": bot.spool.held()}
        try:  # once current, the schema stays current for this process (a probe a second would log each check)
            current = schema_ok.setdefault("current", False) or schema_is_current(bot.db)
            schema_ok["current"] = current
        except Exception:
            ready = not spool_info["full"]
            return jsonify(ready=ready, database="unavailable", spool=spool_info), 200 if ready else 503
        if not current:
            return jsonify(ready=False, database="migrations pending", spool=spool_info), 503
        return jsonify(ready=True, database="ok", spool=spool_info)

    @bp.get("/status")
    def status():  # type: ignore[no-untyped-def]
        """For operators: configuration errors, the outbox, each job's last success, heartbeats. Off (404)
        unless ``[server] status_token`` is set (then required as a bearer token) or asked from loopback."""
        refused = _refused(bot.settings.server["status_token"])
        if refused is not None:
            return refused
        try:
            return jsonify(storage_status(bot.db, bot.db.clock()))
        except Exception:
            return jsonify(error="database unavailable"), 503

    stored = CollectorRegistry(auto_describe=False)
    stored.register(StorageCollector(bot))

    @bp.get("/metrics")
    def metrics():  # type: ignore[no-untyped-def]
        """Prometheus text format: this host's counters (every worker's, in multiprocess mode) and the
        database's gauges. Off (404) unless ``[server] metrics_token`` is set (then a bearer token) or loopback."""
        refused = _refused(bot.settings.server["metrics_token"])
        if refused is not None:
            return refused
        return Response(generate_latest(_process_registry()) + generate_latest(stored), 200,
                        content_type=CONTENT_TYPE_LATEST)

    return bp


def _refused(token: str) -> Any:
    """None when the caller may read an operator endpoint; else the refusal (401, or 404 off loopback)."""
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return jsonify(error="a bearer token is required"), 401, {"WWW-Authenticate": "Bearer"}
        return None
    if request.remote_addr not in LOOPBACK:
        return jsonify(error="not found"), 404
    return None


def _process_registry() -> Any:
    """The counters of this process, or of every process on the host in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


class StorageCollector:
    """Gauges read from the database at scrape time: the work of the scheduler, the outbox and every host."""

    def __init__(self, bot: Any) -> None:
        self.bot = bot

    def collect(self) -> Iterator[Any]:
        settings, now = self.bot.settings, self.bot.db.clock()
        if self.bot.spool is not None:  # this host's disk, whether or not the database answers
            yield _family("pointsbot_spool_held", "Spooled events a bug stopped on replay, kept on this host for "
                          "flask spool-retry.", [], {(): self.bot.spool.held()})
        up = GaugeMetricFamily("pointsbot_database_up", "1 when the database answered this scrape.")
        window = month_window(settings, now)
        try:
            g = gauges(self.bot.db, now, [(DINGTALK_CALLS, window)])
        except Exception:
            log.warning("metrics: database unavailable")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _family("pointsbot_outbox_rows", "Outbox rows waiting (pending) or given up (dead).",
                      ["platform", "status"], g.outbox)
        yield _family("pointsbot_outbox_oldest_pending_seconds", "Age of the oldest pending outbox row.", [],
                      {(): g.oldest_pending_seconds})
        yield _family("pointsbot_delivery_errors", "Pending or dead outbox rows by the platform error they last got.",
                      ["platform", "code"], g.errors)
        yield _family("pointsbot_job_last_success_timestamp_seconds", "When each job last finished well.", ["job"],
                      {(job,): at for job, (at, _) in g.job_success.items()})
        yield _family("pointsbot_job_last_duration_seconds", "How long each job's last successful run took.",
                      ["job"], {(job,): took for job, (_, took) in g.job_success.items()})
        yield _family("pointsbot_heartbeat_age_seconds", "Seconds since each scheduler or Stream client beat.",
                      ["kind", "instance"], g.heartbeats)
        yield _family("pointsbot_dingtalk_api_calls", "DingTalk API calls counted this quota month.", ["month"],
                      {(window,): g.counters.get((DINGTALK_CALLS, window), 0)})
        yield _family("pointsbot_dingtalk_api_quota", "The configured DingTalk monthly API quota.", [],
                      {(): settings.dingtalk["monthly_api_quota"]})


def _family(name: str, doc: str, labels: list[str], values: Mapping[tuple[str, ...], float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family
