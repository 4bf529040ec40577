"""The console's earning rules and manager budgets: rules as a table, one rule's form with its versions, the CSV
download and upload; each manager's monthly budget, rollover and one-off top-ups.

HR and admins only, checked on every request here and again by the service that saves. Saving a rule adds
its next version, valid from now (storage/rules.py); a tick box announces the change to the configured
groups (``[announcements] groups``).
"""
from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any, Callable

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from cards import builders_rules
from cards import messages as msg
from cards.problems import rule_problem
from settings_rules import PERIODS, PLATFORMS, Rule, check_rule
from console.catalog import csv_download, csv_upload
from storage import rules_csv
from storage.console import STAFF_ROLES
from storage.errors import DomainError
from storage.models import Employee

FORM_FIELDS = ("name", "platform", "template", "points", "base_points", "tiers", "field", "category", "max_count",
               "max_period")


def register_rules(bp: Blueprint, bot: Any, services: Callable[[Any], Any],
                   csv_text: Callable[[Any], tuple[str, str]]) -> None:
    def refused() -> tuple[str, int] | None:
        if g.member_role in STAFF_ROLES:
            return None
        return render_template("console/message.html", title="没有权限", text="规则和额度仅限 HR 和管理员管理。"), 403

    @bp.get("/rules")
    def rules_page() -> Any:
        if (no := refused()) is not None:
            return no
        with bot.db.read_scope() as s:
            current = services(s).rules.current()
        return render_template("console/rules.html", rules=current, line=builders_rules.rule_line,
                               platforms=builders_rules.PLATFORM_TEXT, tz=bot.settings.tz, local=msg.local_time)

    @bp.route("/rules/item", methods=["GET", "POST"], defaults={"rule_id": 0})
    @bp.route("/rules/item/<int:rule_id>", methods=["GET", "POST"])
    def rule_item(rule_id: int) -> Any:
        if (no := refused()) is not None:
            return no
        with bot.db.read_scope() as s:
            found = services(s).rules.get(rule_id) if rule_id else None
            history = services(s).rules.history(rule_id) if found is not None else []
        if rule_id and found is None:
            return render_template("console/message.html", title="找不到规则", text=f"没有编号为 {rule_id} 的规则。"), 404
        current = {**asdict(found), "tiers": found.tiers_text()} if found is not None else {}
        if request.method == "GET":
            return _form(current or {"platform": "dingtalk", "active": True, "category": "approval"}, rule_id, [],
                         history)
        cells = {f: (request.form.get(f) or "").strip() for f in FORM_FIELDS}
        values, problems = rules_csv.typed(cells)
        values["active"], values["id"] = request.form.get("active") == "1", rule_id or None
        rule = None
        if not problems:
            rule, problems = check_rule(values)
        if rule is None:
            return _form({**current, **cells, "active": values["active"]}, rule_id, problems, history), 400
        try:
            with bot.db.session_scope() as s:
                actor = s.get(Employee, g.member_id)
                outcome, saved = services(s).rules.save(rule, actor)
                if outcome != "unchanged" and request.form.get("announce") == "1":
                    card = builders_rules.rule_announcement(found, saved, changed_by=actor.name)
                    told = services(s).announce(card.to_dict(), key=f"announce:rule:{saved.id}:v{saved.version}")
                    flash(f"已向 {told} 个群发送规则调整公告。" if told else "没有配置公告群（[announcements] groups）。")
        except DomainError as exc:
            problems = [("template", exc.reason)] if exc.reason == "rule_template_taken" else []
            if problems:
                return _form({**current, **cells, "active": values["active"]}, rule_id, problems, history,
                             clash=exc.params), 400
            return render_template("console/message.html", title="没有权限", text=msg.domain_error(exc)), 403
        flash({"created": f"已新增规则 {saved.name}（编号 {saved.id}）。",
               "updated": f"已保存 {saved.name} 第 {saved.version} 版，之后通过的审批按新规则发放。",
               "unchanged": f"{saved.name} 没有改动。"}[outcome])
        return redirect(url_for("console.rules_page"))

    @bp.get("/rules.csv")
    def rules_download() -> Any:
        return refused() or csv_download(bot, rules_csv.export_text, "rules")

    @bp.post("/rules/import")
    def rules_upload() -> Any:
        return refused() or csv_upload(bot, csv_text, rules_csv.read, lambda s, rows, actor: services(s).rules
                                       .import_csv(rows, actor), title="规则导入结果", page="console.rules_page",
                                       needed="name,platform,template", words=rule_problem)

    register_budgets(bp, bot, services, refused)


def register_budgets(bp: Blueprint, bot: Any, services: Callable[[Any], Any],
                     refused: Callable[[], tuple[str, int] | None]) -> None:
    @bp.get("/budgets")
    def budgets_page() -> Any:
        if (no := refused()) is not None:
            return no
        with bot.db.read_scope() as s:
            sv = services(s)
            managers = sv.budgets.managers()
            terms = sv.budgets.terms([m.id for m in managers])
            usage = {m.id: sv.queries.budget_usage(m.id) for m in managers}
        return render_template("console/budgets.html", managers=managers, terms=terms, usage=usage,
                               defaults=bot.settings.points, nonce=secrets.token_hex(8))

    @bp.post("/budgets/<no>/terms")
    def budget_terms(no: str) -> Any:
        if (no_ := refused()) is not None:
            return no_
        raw, roll = (request.form.get("monthly") or "").strip(), request.form.get("rollover", "")
        if raw and not raw.isdigit():
            flash("每月额度需为不小于 0 的整数，留空表示使用默认值。")
            return redirect(url_for("console.budgets_page"))
        try:
            with bot.db.session_scope() as s:
                manager = services(s).budgets.manager(no)
                services(s).budgets.set_terms(manager, int(raw) if raw else None,
                                              {"yes": True, "no": False}.get(roll), s.get(Employee, g.member_id))
        except DomainError as exc:
            flash(msg.domain_error(exc))
            return redirect(url_for("console.budgets_page"))
        flash(f"已保存 {manager.name} 的额度设置，从下个月的发放起生效。")
        return redirect(url_for("console.budgets_page"))

    @bp.post("/budgets/<no>/topup")
    def budget_topup(no: str) -> Any:
        if (no_ := refused()) is not None:
            return no_
        raw, reason = (request.form.get("points") or "").strip(), " ".join((request.form.get("reason") or "").split())
        nonce = (request.form.get("nonce") or "")[:32]
        if not raw.isdigit() or not reason or len(reason) > 200:
            flash("追加额度需填写正整数积分和原因（最多 200 个字）。")
            return redirect(url_for("console.budgets_page"))
        try:
            with bot.db.session_scope() as s:
                manager = services(s).budgets.manager(no)
                txn = services(s).budgets.top_up(manager, int(raw), reason, s.get(Employee, g.member_id),
                                                 key=f"budget-topup:{manager.id}:{g.member_id}:{nonce}")
        except DomainError as exc:
            flash(msg.domain_error(exc))
            return redirect(url_for("console.budgets_page"))
        flash(f"已为 {manager.name} 追加 {int(raw)} 积分额度（E{txn.id}）。")
        return redirect(url_for("console.budgets_page"))


def _form(values: dict[str, Any], rule_id: int, problems: list[tuple[str, str]], history: list[Rule],
          clash: dict[str, Any] | None = None) -> str:
    words = {field: rule_problem(code, **(clash or {})) for field, code in problems}
    return render_template("console/rule_item.html", v=values, rule_id=rule_id, problems=words, history=history,
                           platforms=builders_rules.PLATFORM_TEXT, platform_order=PLATFORMS, periods=PERIODS,
                           period_text=builders_rules.PERIOD_TEXT, line=builders_rules.rule_line)
