"""The console's pages: login by single-use link, people, one employee, the audit log.

Every request reads who is asking from the database (``before_request``), so a logout, a departure or a
role change ends a session at once; every page checks the role on the server; reads run in a read
transaction (on SQLite it takes no write lock, so browsing never stalls a callback).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect

from cards import messages as msg
from console import actions
from console.catalog import register_catalog
from console.rules import register_rules
from console.exports import export_response
from cards.builders_people import award_notice
from storage import bulk
from storage.console import STAFF_ROLES, AuditFilter, OrderFilter
from storage.exports import ExportFilter
from storage.errors import DomainError
from storage.members import audit as write_audit
from storage.members import ACTIVE
from storage.models import Employee
from storage.services import Services

PUBLIC = {"console.login_help", "console.login_form", "console.login", "console.static"}
PER_PAGE = 20
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # a login link's token never leaves in a Referer
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def console_blueprint(bot: Any, csrf: CSRFProtect) -> Blueprint:
    bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                   static_folder="static", static_url_path="/static")

    def services(s: Any) -> Services:
        return Services(s, bot.settings, bot.db.clock)

    @bp.before_request
    def who_is_asking() -> Any:
        if request.endpoint in ("console.bulk_awards", "console.catalog_upload"):  # more than the callbacks' 64 KiB
            request.max_content_length = MAX_CSV_BYTES + 2**16
        if request.method == "POST":
            csrf.protect()
        if request.endpoint in PUBLIC:
            return None
        ident = session.get("login") or {}
        member = None
        if ident:
            with bot.db.read_scope() as s:
                emp = services(s).console.session_member(int(ident["id"]), int(ident["emp"]), str(ident["role"]))
                member = None if emp is None else (emp.id, emp.name, emp.role)
        if member is None:
            session.clear()
            if request.path.startswith("/console/export/"):  # a download never returns a login page, nor data
                return Response("需要登录后台", status=401, mimetype="text/plain")
            return redirect(url_for("console.login_help"))
        g.member_id, g.member_name, g.member_role = member
        g.login_id = int(ident["id"])
        return None

    @bp.after_request
    def headers(resp: Response) -> Response:
        resp.headers.update(HEADERS)
        return resp

    @bp.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError) -> tuple[str, int]:
        return render_template("console/message.html", title="页面已过期",
                               text="表单已过期或来源不明，请返回重新打开页面后再提交。"), 400

    # ---- login ---------------------------------------------------------------------------------
    @bp.get("/login")
    def login_help() -> str:
        return render_template("console/login_help.html")

    @bp.get("/login/<token>")
    def login_form(token: str) -> str:
        """A GET never uses the link up: chat apps and scanners open links to preview them."""
        return render_template("console/login_form.html", token=token)

    @bp.post("/login/<token>")
    def login(token: str) -> Any:
        try:
            with bot.db.session_scope() as s:
                row = services(s).console.redeem_link(token, request.remote_addr or "")
                emp = s.get(Employee, row.employee_id)
                ident = {"id": row.id, "emp": row.employee_id, "role": emp.role if emp else ""}
        except DomainError as exc:
            return render_template("console/login_help.html", problem=msg.domain_error(exc)), 403
        session.clear()
        session.permanent = True
        session["login"] = ident
        return redirect(url_for("console.people"))

    @bp.post("/logout")
    def logout() -> Any:
        with bot.db.session_scope() as s:
            services(s).console.end_session(g.login_id, request.remote_addr or "")
        session.clear()
        return redirect(url_for("console.login_help"))

    # ---- pages ---------------------------------------------------------------------------------
    @bp.get("/")
    def home() -> Any:
        return redirect(url_for("console.people"))

    @bp.get("/people")
    def people() -> str:
        q = request.args.get("q", "")[:64]
        with bot.db.read_scope() as s:
            viewer = s.get(Employee, g.member_id)
            rows, total = services(s).console.search(viewer, q)
            return render_template("console/people.html", rows=rows, total=total, q=q)

    @bp.get("/people/<int:employee_id>")
    def person(employee_id: int) -> str:
        page = max(1, min(request.args.get("page", 1, type=int) or 1, 10_000))
        with bot.db.read_scope() as s:
            sv = services(s)
            viewer = s.get(Employee, g.member_id)
            emp = s.get(Employee, employee_id)
            if emp is None or not sv.console.may_see(viewer, employee_id):
                abort(404)  # the same answer whether the person exists or is outside the viewer's team
            return render_template(
                "console/person.html", emp=emp, st=sv.queries.statement(emp.id, days=30),
                history=sv.queries.history(emp.id, page=page, per_page=PER_PAGE), more=sv.console.person(emp),
                local=lambda at, fmt="%Y-%m-%d %H:%M": msg.local_time(at, bot.settings.tz, fmt),
                kind_text=msg.TXN_KIND_TEXT, order_status=msg.ORDER_STATUS, platforms=msg.PLATFORM_NAMES,
                active=ACTIVE, token=actions.form_token())

    @bp.get("/audit")
    def audit() -> Any:
        if g.member_role not in STAFF_ROLES:
            return render_template("console/message.html", title="没有权限",
                                   text="审计日志仅限 HR 和管理员查看。"), 403
        f, problem = _audit_filter(request.args, bot.settings.tz)
        page = max(1, min(request.args.get("page", 1, type=int) or 1, 10_000))
        with bot.db.read_scope() as s:
            sv = services(s)
            rows, total = sv.console.audit_page(s.get(Employee, g.member_id), f, page)
            return render_template("console/audit.html", rows=rows, total=total, page=page,
                                   pages=max(1, math.ceil(total / 50)), actions=sv.console.audit_actions(),
                                   args=request.args, problem=problem,
                                   local=lambda at: msg.local_time(at, bot.settings.tz, "%Y-%m-%d %H:%M:%S"))

    # ---- acting: every change is the chat's command, run through the pipeline (console/actions.py) -----
    def _act(command: str) -> str:
        return actions.run(bot, g.member_id, command, request.form.get("token") or actions.form_token())

    @bp.post("/people/<int:employee_id>/act")
    def act_on_person(employee_id: int) -> Any:
        with bot.db.read_scope() as s:
            emp = s.get(Employee, employee_id)
            if emp is None or not services(s).console.may_see(s.get(Employee, g.member_id), employee_id):
                abort(404)
            no = emp.employee_no
        command = _person_command(request.form, no)
        if command is None:
            flash("请填写完整后再提交。")
        else:
            flash(_act(command))
        return redirect(url_for("console.person", employee_id=employee_id))

    @bp.get("/orders")
    def orders() -> Any:
        f = OrderFilter(status=request.args.get("status", "awaiting_fulfilment")[:32],
                        item=request.args.get("item", "")[:64], department=request.args.get("department", "")[:128],
                        min_days=max(0, min(request.args.get("days", 0, type=int) or 0, 3650)))
        with bot.db.read_scope() as s:
            try:
                rows = services(s).console.orders_queue(s.get(Employee, g.member_id), f)
            except DomainError as exc:
                return render_template("console/message.html", title="没有权限", text=msg.domain_error(exc)), 403
            return render_template("console/orders.html", rows=rows, f=f, token=actions.form_token(),
                                   kinds=msg.ITEM_KINDS, todo=msg.fulfil_todo,
                                   statuses=msg.ORDER_STATUS, reasons=bot.settings.orders["reject_reasons"],
                                   local=lambda at: msg.local_time(at, bot.settings.tz, "%Y-%m-%d %H:%M"),
                                   now=bot.db.clock())

    @bp.post("/orders/act")
    def orders_act() -> Any:
        ids = [int(i) for i in request.form.getlist("order") if i.isdigit()][:200]
        decision = request.form.get("decision", "")
        typed = (request.form.get("reason") or "").strip()  # a fulfilment's note, or a rejection's own reason
        note = typed if decision == "fulfil" else (typed or (request.form.get("preset") or "").strip())
        token = request.form.get("token") or actions.form_token()
        if not ids or decision not in ("fulfil", "reject"):
            flash("请选择订单和操作。")
            return redirect(url_for("console.orders"))
        verb = "发放" if decision == "fulfil" else "拒绝订单"
        results = [(f"R{i}", actions.run(bot, g.member_id, f"{verb} R{i} {note}".strip(), f"{token}:{i}"))
                   for i in ids]
        return render_template("console/results.html", title="批量处理结果", results=results,
                               back=url_for("console.orders"))

    @bp.get("/appeals")
    def appeals_page() -> str:
        with bot.db.read_scope() as s:
            rows = services(s).console.appeals_queue(s.get(Employee, g.member_id))
            return render_template("console/appeals.html", rows=rows, token=actions.form_token(),
                                   reasons=bot.settings.appeals["deny_reasons"],
                                   local=lambda at: msg.local_time(at, bot.settings.tz, "%Y-%m-%d %H:%M"))

    @bp.post("/appeals/act")
    def appeals_act() -> Any:
        ref = request.form.get("appeal", "")
        decision = request.form.get("decision", "")
        typed = (request.form.get("reason") or "").strip()  # an approval's note, or a denial's own reason
        note = typed if decision == "approve" else (typed or (request.form.get("preset") or "").strip())
        points = (request.form.get("points") or "").strip()
        if not ref.isdigit() or decision not in ("approve", "deny"):
            flash("请选择申诉和操作。")
        elif decision == "approve":
            flash(_act(f"通过申诉 A{ref} {points} {note}".strip()))
        else:
            flash(_act(f"驳回申诉 A{ref} {note}".strip()))
        return redirect(url_for("console.appeals_page"))

    @bp.route("/awards", methods=["GET", "POST"])
    def bulk_awards() -> Any:
        """A CSV of awards (employee_no,points,reason,key, as ``flask award-csv``): a preview first, then apply."""
        if g.member_role not in STAFF_ROLES:
            return render_template("console/message.html", title="没有权限", text="批量奖励仅限 HR 和管理员。"), 403
        if request.method == "GET":
            return render_template("console/awards.html", preview=None)
        text, problem = _csv_text(request)
        rows, missing = bulk.read_rows(text) if not problem else ([], "")
        if missing:
            problem = f"CSV 缺少列：{missing.split(' ', 2)[-1]}（需要 employee_no,points,reason,key）"
        if problem:
            return render_template("console/awards.html", preview=None, problem=problem), 400
        if request.form.get("apply") != "1":
            preview = [(line, st, msg.bulk_row(detail)) for line, st, detail in bulk.check_rows(bot.db, rows)]
            return render_template("console/awards.html", preview=preview, csv_text=text)
        with bot.db.read_scope() as s:
            giver = s.get(Employee, g.member_id).name

        def notice(points: int, reason: str, balance: int, txn_id: int) -> dict:
            return award_notice(points=points, giver=giver, reason=reason, balance=balance, txn_id=txn_id).to_dict()

        results = bulk.award_rows(bot.db, bot.settings, rows, notice=notice, actor_id=g.member_id)
        with bot.db.session_scope() as s:
            write_audit(s, "console_bulk_awards", now=bot.db.clock(), actor_id=g.member_id, detail=" ".join(
                f"{st}={sum(1 for _, x, _ in results if x == st)}" for st in ("awarded", "already", "rejected")))
        return render_template("console/results.html", title="批量奖励结果", back=url_for("console.bulk_awards"),
                               results=[(f"第 {line} 行", f"{BULK_STATUS[st]} {msg.bulk_row(detail)}")
                                        for line, st, detail in results])

    @bp.get("/exports")
    def exports_page() -> str:
        return render_template("console/exports.html", args=request.args)

    @bp.get("/export/<kind>.<fmt>")
    def export(kind: str, fmt: str) -> Any:
        (start, end), problem = _dates(request.args, bot.settings.tz)
        if problem:
            return render_template("console/message.html", title="导出条件有误", text=problem), 400
        f = ExportFilter(start=start, end=end, department=(request.args.get("department") or "").strip()[:128],
                         employee_no=(request.args.get("employee") or "").strip()[:64],
                         kind=(request.args.get("kind") or "").strip()[:32])
        filters = " ".join(f"{k}={v}" for k, v in sorted(request.args.items()) if v)[:500]
        return export_response(bot, kind, fmt, f, filters)

    register_catalog(bp, bot, services, _csv_text)
    register_rules(bp, bot, services, _csv_text)

    @bp.app_template_global()
    def console_member() -> dict[str, Any]:
        return {"name": g.get("member_name", ""), "role": g.get("member_role", ""),
                "staff": g.get("member_role") in STAFF_ROLES}

    return bp


BULK_STATUS = {"awarded": "已发放", "already": "已发放过（同一 key）", "rejected": "未发放", "award": "将发放"}
MAX_CSV_BYTES = 2 * 2**20


def _csv_text(req: Any) -> tuple[str, str]:
    """The uploaded file's text (or the previewed text sent back to apply it); a problem in words otherwise."""
    upload = req.files.get("file")
    raw = upload.read(MAX_CSV_BYTES + 1) if upload is not None and upload.filename else \
        (req.form.get("csv_text") or "").encode("utf-8")
    if not raw:
        return "", "请选择 CSV 文件。"
    if len(raw) > MAX_CSV_BYTES:
        return "", "文件超过 2 MB，请分成几个文件上传。"
    try:
        return raw.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        return "", "文件不是 UTF-8 编码：请在 Excel 中另存为「CSV UTF-8」。"


def _person_command(form: Any, no: str) -> str | None:
    """The chat command a person-page form stands for; None when a required field is empty."""
    action = form.get("action", "")
    points, reason = (form.get("points") or "").strip(), " ".join((form.get("reason") or "").split())
    platform = msg.PLATFORM_NAMES.get(form.get("platform", ""), "")  # the word the chat command reads
    if action in ("award", "deduct"):
        return f"{'奖励' if action == 'award' else '扣除'} {no} {points} {reason}" if points and reason else None
    if action == "unbind":
        return f"解绑 {no} {platform}".strip()
    if action == "force_unbind":
        return f"强制解绑 {no} {platform} {reason}".replace("  ", " ") if reason else None
    if action == "reverse":
        ref = (form.get("txn") or "").strip().upper().lstrip("E")
        return f"撤销 E{ref} {reason}" if ref.isdigit() and reason else None
    return {"bind_code": f"绑定码 {no}", "reactivate": f"恢复员工 {no}"}.get(action)


def _audit_filter(args: Any, tz: Any) -> tuple[AuditFilter, str]:
    """The form's filters; a bad date is named and ignored, never a 500."""
    (start, end), problem = _dates(args, tz)
    return AuditFilter(actor=(args.get("actor") or "").strip()[:64], action=(args.get("action") or "").strip()[:64],
                       employee=(args.get("employee") or "").strip()[:64], start=start, end=end), problem


def _dates(args: Any, tz: Any) -> tuple[tuple[datetime | None, datetime | None], str]:
    """``start`` and ``end`` (local days, both included) as naive UTC bounds; a bad date is named, never a 500."""
    bounds: list[datetime | None] = []
    problem = ""
    for key, extra in (("start", 0), ("end", 1)):
        raw = (args.get(key) or "").strip()
        if not raw:
            bounds.append(None)
            continue
        try:
            day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=tz) + timedelta(days=extra)
            bounds.append(day.astimezone(timezone.utc).replace(tzinfo=None))
        except ValueError:
            problem = f"日期「{raw}」格式不对，应为 2026-03-01。"
            bounds.append(None)
    return (bounds[0], bounds[1]), problem
