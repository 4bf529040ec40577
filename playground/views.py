"""The playground page and its small JSON API.

Why in-process: the page's "send" must go through the real callback view, but an HTTP call from
this web process to itself would deadlock a single-threaded server (and wait on itself under one
gunicorn worker). ``app.test_client()`` runs the same WSGI stack — routing, the view, the adapter,
signature and timestamp checks — inside this request, with no socket.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, render_template, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bot.clockutil import epoch_clock
from playground.fake_api import MessageLog
from playground.signer import DingTalkSigner, SignedRequest, WeComSigner
from storage import rules as rule_store
from storage.models import Binding, Employee
from storage.services import Services

MAX_TEXT = 2000
CONSOLE_LOGINS = (("hanmei", "韩梅 HR"), ("caoyu", "曹宇 管理员"), ("lijun", "李军 经理"))


class BadInput(Exception):
    """A request the page should never send; answered with 400 and the reason."""


def _forward(req: SignedRequest) -> Any:
    """Pass a signed request through the real callback view (see the module docstring)."""
    client = current_app.test_client()
    return client.post(req.path, query_string=req.params, data=req.body, headers=req.headers)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


class Playground:
    """What the page can do, for the platforms this config enables."""

    def __init__(self, bot: Any, log: MessageLog) -> None:
        self.bot, self.log = bot, log
        self.now = epoch_clock(bot.db.clock)
        s = bot.settings
        self.wecom = WeComSigner(s.wecom, self.now) if "wecom" in bot.adapters else None
        self.dingtalk = DingTalkSigner(s.dingtalk, self.now) if "dingtalk" in bot.adapters else None

    # ---- input -------------------------------------------------------------------------------
    def args(self, *names: str, limit: int = 128) -> tuple[str, ...]:
        data = request.get_json(silent=True) or {}
        values = []
        for name in names:
            value = data.get(name, "")
            if not isinstance(value, str) or (name in ("platform", "user", "text", "key") and not value.strip()):
                raise BadInput(f"{name}: expected a non-empty string")
            if len(value) > (MAX_TEXT if name in ("text", "key") else limit):
                raise BadInput(f"{name}: too long")
            values.append(value.strip() if name != "text" else value)
        platform = values[0] if names and names[0] == "platform" else ""
        if platform and platform not in ("wecom", "dingtalk"):
            raise BadInput("platform: expected wecom or dingtalk")
        if platform and getattr(self, platform) is None:
            raise BadInput(f"platform: {platform} is not enabled in the configuration")
        return tuple(values)

    def nick(self, platform: str, user: str) -> str:
        with self.bot.db.session_scope() as s:
            emp = s.scalar(select(Employee).join(Binding, Binding.employee_id == Employee.id)
                           .where(Binding.platform == platform, Binding.platform_user_id == user))
            return emp.name if emp is not None else user

    # ---- chat --------------------------------------------------------------------------------
    def send(self, platform: str, user: str, text: str) -> dict[str, Any]:
        if platform == "dingtalk":
            assert self.dingtalk is not None
            req = self.dingtalk.robot(user, self.nick(platform, user), text)
            resp = _forward(req)
            body = resp.get_json(silent=True) if resp.status_code == 200 else None
            reply = body if body and body.get("msgtype") != "empty" else None
            return {"status": resp.status_code, "reply": reply, "request": req.shown}
        assert self.wecom is not None
        req = self.wecom.text(user, text)
        resp = _forward(req)
        reply = self.wecom.open_reply(resp.data) if resp.status_code == 200 else None
        return {"status": resp.status_code, "reply": reply, "request": req.shown}

    def click(self, platform: str, user: str, key: str, task_id: str) -> dict[str, Any]:
        """WeCom: a template_card_event; DingTalk: a dtmd link sends its command as typed text."""
        if platform == "dingtalk":
            return self.send(platform, user, key)
        assert self.wecom is not None
        card = self.log.find("wecom", to=user, task_id=task_id, kind="template_card")
        code = card["response_code"] if card else "rc-" + secrets.token_hex(6)
        req = self.wecom.click(user, key, task_id, code)
        resp = _forward(req)
        reply = self.wecom.open_reply(resp.data) if resp.status_code == 200 else None
        return {"status": resp.status_code, "reply": reply, "request": req.shown}

    # ---- simulated platform events -------------------------------------------------------------
    def _rule(self, platform: str, name: str) -> Any:
        rules = [r for r in _rules(self.bot) if r.platform == platform]
        rule = next((r for r in rules if r.name == name), rules[0] if rules else None)
        if rule is None:
            raise BadInput(f"no [[rules]] entry for {platform}")
        return rule

    def approve(self, platform: str, user: str, rule_name: str) -> dict[str, Any]:
        rule, now = self._rule(platform, rule_name), self.now()
        title = f"{self.nick(platform, user)}提交的{rule.name}"
        value = "92" if rule.field else ""
        if platform == "dingtalk":
            assert self.dingtalk is not None
            instance = "PG" + secrets.token_hex(10)
            form = [{"name": rule.field, "value": value, "componentType": "NumberField", "id": "NumberField_1"}] \
                if rule.field else [{"name": "月份", "value": _iso(now)[:7], "componentType": "TextField", "id": "T1"}]
            self.log.approvals[f"dingtalk:{instance}"] = {
                "title": title, "createTime": _iso(now - 600), "finishTime": _iso(now), "originatorUserId": user,
                "status": "COMPLETED", "result": "agree", "businessId": instance[-12:], "formComponentValues": form,
                "tasks": [{"status": "COMPLETED", "result": "AGREE"}], "operationRecords": []}
            req = self.dingtalk.approval(user, instance, rule.template, title)
            resp = _forward(req)
            return {"status": resp.status_code, "ok": self.dingtalk.open_ack(resp.data), "request": req.shown}
        assert self.wecom is not None
        sp_no = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d") + str(secrets.randbelow(10**6)).zfill(6)
        contents = [{"control": "Number", "id": "Number-1", "title": [{"text": rule.field, "lang": "zh_CN"}],
                     "value": {"new_number": value}}] if rule.field else []
        self.log.approvals[f"wecom:{sp_no}"] = {
            "sp_no": sp_no, "sp_name": rule.name, "sp_status": 2, "template_id": rule.template,
            "apply_time": int(now) - 600, "applyer": {"userid": user, "partyid": "1"}, "sp_record": [],
            "notifyer": [], "apply_data": {"contents": contents}, "comments": []}
        req = self.wecom.approval(user, sp_no, rule.template, rule.name)
        resp = _forward(req)
        return {"status": resp.status_code, "ok": resp.status_code == 200, "request": req.shown}

    def leave(self, platform: str, user: str) -> dict[str, Any]:
        signer = self.dingtalk if platform == "dingtalk" else self.wecom
        assert signer is not None
        req = signer.member_left(user)
        resp = _forward(req)
        ok = self.dingtalk.open_ack(resp.data) if platform == "dingtalk" and self.dingtalk else resp.status_code == 200
        return {"status": resp.status_code, "ok": ok, "request": req.shown}

    # ---- page data -----------------------------------------------------------------------------
    def users(self, platform: str) -> list[dict[str, str]]:
        with self.bot.db.session_scope() as s:
            rows = s.execute(select(Binding.platform_user_id, Employee.name, Employee.role, Employee.department,
                                    Employee.employee_no)
                             .join(Employee, Binding.employee_id == Employee.id)
                             .where(Binding.platform == platform).order_by(Employee.employee_no)).all()
        return [{"user": u, "name": n, "role": r, "department": d, "employee_no": no} for u, n, r, d, no in rows]


def playground_blueprint(app: Flask, bot: Any, log: MessageLog) -> Blueprint:
    pg = Playground(bot, log)
    bp = Blueprint("playground", __name__, url_prefix="/playground", template_folder="templates",
                   static_folder="static", static_url_path="/static")

    @bp.errorhandler(BadInput)
    def bad_input(exc: BadInput) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 400

    @bp.get("")
    def page() -> str:
        platforms = [p for p in ("dingtalk", "wecom") if getattr(pg, p) is not None]
        rules = {p: [r.name for r in _rules(bot) if r.platform == p] for p in platforms}
        console = [(uid, label) for uid, label in CONSOLE_LOGINS] if bot.settings.console["enabled"] else []
        return render_template("playground.html", platforms=platforms, rules=rules, console=console)

    @bp.get("/console/<user>")
    def console_login(user: str) -> Response:
        """A demo role's login link, opened at once: the console's own login page (a POST) does the rest."""
        if not bot.settings.console["enabled"] or user not in dict(CONSOLE_LOGINS):
            raise BadInput("user: not a demo console role")
        with bot.db.session_scope() as s:
            emp = s.scalar(select(Employee).where(Employee.wecom_userid == user))
            if emp is None:
                raise BadInput("user: not in the demo company (run make run to load it)")
            token = Services(s, bot.settings, bot.db.clock).console.issue_link(emp, via="playground")
        return redirect(f"/console/login/{token}")

    @bp.get("/api/users")
    def users() -> Response:
        platform = request.args.get("platform", "")
        if platform not in ("wecom", "dingtalk"):
            raise BadInput("platform: expected wecom or dingtalk")
        return jsonify(users=pg.users(platform))

    @bp.post("/api/send")
    def send() -> Response:
        return jsonify(pg.send(*pg.args("platform", "user", "text")))

    @bp.post("/api/click")
    def click() -> Response:
        return jsonify(pg.click(*pg.args("platform", "user", "key", "task_id")))

    @bp.post("/api/simulate/approval")
    def approval() -> Response:
        platform, user = pg.args("platform", "user")
        rule = (request.get_json(silent=True) or {}).get("rule", "")
        return jsonify(pg.approve(platform, user, rule if isinstance(rule, str) else ""))

    @bp.post("/api/simulate/leave")
    def leave() -> Response:
        return jsonify(pg.leave(*pg.args("platform", "user")))

    @bp.get("/api/messages")
    def messages() -> Response:
        try:
            after = int(request.args.get("after", "0"))
        except ValueError:
            raise BadInput("after: expected a whole number") from None
        return jsonify(messages=log.since(request.args.get("platform", ""), request.args.get("user", ""), after))

    return bp


def _rules(bot: Any) -> list[Any]:
    """The active earning rules as HR keeps them (storage/rules.py), for the simulated approvals; none before the
    schema exists (the page still opens and says how to start)."""
    try:
        with bot.db.read_scope() as s:
            return [r for r in rule_store.current(s) if r.active]
    except SQLAlchemyError:
        return []
