"""The console's catalog pages: the items as a table, one item's form, and the CSV download and upload.

HR and admins only, checked on every request here and again by the service that saves. An edit is
saved at once and audited; every process reads the catalog on each message (storage/catalog.py), so
the next ``商城`` in any chat shows it.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for

from cards import builders_rules
from cards import messages as msg
from cards.problems import CODE_HEADERS, CODE_PROBLEMS, catalog_problem
from settings_rules import ITEM_KINDS, LIMIT_PERIODS, check_item
from storage import catalog_csv, exports, gift_codes
from storage.catalog import values_of
from storage.console import STAFF_ROLES
from storage.errors import DomainError
from storage.members import audit
from storage.models import Employee

FORM_FIELDS = ("name", "kind", "cost", "stock", "description", "limit", "limit_period", "sort", "leave_days", "charity")


def register_catalog(bp: Blueprint, bot: Any, services: Callable[[Any], Any],
                     csv_text: Callable[[Any], tuple[str, str]]) -> None:
    """The pages on the console's blueprint; ``csv_text`` reads an upload as the bulk-award page does."""
    def refused() -> tuple[str, int] | None:
        if g.member_role in STAFF_ROLES:
            return None
        return render_template("console/message.html", title="没有权限", text="商城管理仅限 HR 和管理员。"), 403

    @bp.get("/catalog")
    def catalog_page() -> Any:
        if (no := refused()) is not None:
            return no
        with bot.db.read_scope() as s:
            items, pools = services(s).catalog.all(), services(s).catalog.pools()
            return render_template("console/catalog.html", items=items, kinds=msg.ITEM_KINDS, pools=pools,
                                   limit_text=msg.limit_text)

    @bp.route("/catalog/item", methods=["GET", "POST"], defaults={"sku": ""})
    @bp.route("/catalog/item/<sku>", methods=["GET", "POST"])
    def catalog_item(sku: str) -> Any:
        if (no := refused()) is not None:
            return no
        with bot.db.read_scope() as s:
            found = services(s).catalog.get(sku) if sku else None
            current = asdict(values_of(found)) if found is not None else {}
            pool = services(s).catalog.pools().get(sku, (0, 0)) if found is not None and found.kind == "gift_card" \
                else None
        if sku and found is None:
            return render_template("console/message.html", title="找不到商品", text=f"没有 sku 为 {sku} 的商品。"), 404
        if request.method == "GET":
            return _form(current or {"kind": "goods", "active": True}, sku, [], pool=pool)
        cells = {f: (request.form.get(f) or "").strip() for f in FORM_FIELDS}
        cells["sku"] = sku or (request.form.get("sku") or "").strip()
        values, problems = catalog_csv.typed(cells)
        values["active"] = request.form.get("active") == "1"
        item = None
        if not problems:
            item, problems = check_item(values)
        if item is None:
            return _form({**current, **cells, "active": values["active"]}, sku, problems, pool=pool), 400
        if not sku:  # a new item: its sku must be free
            with bot.db.read_scope() as s:
                if services(s).catalog.get(item.sku) is not None:
                    return _form({**cells, "active": values["active"]}, sku, [("sku", "taken")]), 400
        try:
            with bot.db.session_scope() as s:
                actor = s.get(Employee, g.member_id)
                outcome = services(s).catalog.save(item, actor)
                if outcome != "unchanged" and request.form.get("announce") == "1":
                    told = _announce(services(s), found, item, actor.name)
                    flash(f"已向 {told} 个群发送商城调整公告。" if told else "没有配置公告群（[announcements] groups）。")
        except DomainError as exc:
            return render_template("console/message.html", title="没有权限", text=msg.domain_error(exc)), 403
        flash({"created": f"已新增 {item.name}。", "updated": f"已保存 {item.name}，下一条消息起生效。",
               "unchanged": f"{item.name} 没有改动。"}[outcome])
        return redirect(url_for("console.catalog_page"))

    @bp.post("/catalog/item/<sku>/codes")
    def catalog_codes(sku: str) -> Any:
        """Gift-card codes pasted or uploaded as a file; what is shown back is counts and line numbers, never a code."""
        if (no := refused()) is not None:
            return no
        pasted, upload = (request.form.get("codes") or "").strip(), request.files.get("file")
        text, problem = (pasted, "") if pasted else csv_text(request) if upload and upload.filename else \
            ("", msg.CODES_NOTHING)
        if problem:
            flash(problem)
            return redirect(url_for("console.catalog_item", sku=sku))
        codes, unreadable = gift_codes.read_codes(text, CODE_HEADERS)
        try:
            with bot.db.session_scope() as s:
                up = services(s).catalog.add_codes(sku, codes, s.get(Employee, g.member_id))
        except DomainError as exc:
            return render_template("console/message.html", title="未能上传卡密", text=msg.domain_error(exc)), 400
        results = [("本次上传", f"新增 {up.added} 个卡密（第 {up.batch} 批），现在可兑换 {up.free} 个")]
        results += [(f"第 {line} 行", f"未导入：{CODE_PROBLEMS[code]}") for line, code in sorted(unreadable + up.skipped)]
        return render_template("console/results.html", title="卡密上传结果", results=results,
                               back=url_for("console.catalog_item", sku=sku))

    @bp.get("/donations")
    def donations_page() -> Any:
        """Monthly totals per charity (from the ledger's charity pools), with the export beside them."""
        if (no := refused()) is not None:
            return no
        rows = exports.donations(bot.db, g.member_id, exports.ExportFilter(), bot.settings.tz)
        charities: dict[str, int] = {}
        for _, charity, _, points in rows:
            charities[charity] = charities.get(charity, 0) + points
        return render_template("console/donations.html", rows=rows, charities=sorted(charities.items()))

    @bp.get("/catalog.csv")
    def catalog_download() -> Any:
        return refused() or csv_download(bot, catalog_csv.export_text, "catalog")

    @bp.post("/catalog/import")
    def catalog_upload() -> Any:
        return refused() or csv_upload(bot, csv_text, catalog_csv.read, lambda s, rows, actor: services(s).catalog
                                       .import_csv(rows, actor), title="商城导入结果", page="console.catalog_page",
                                       needed="sku,name,cost", words=catalog_problem)


def csv_download(bot: Any, export_text: Callable[[Any], str], name: str) -> Response:
    """The catalog's or the rules' CSV, audited as an export."""
    with bot.db.read_scope() as s:
        text = export_text(s)
    with bot.db.session_scope() as s:
        audit(s, "console_export", now=bot.db.clock(), actor_id=g.member_id, detail=f"{name} csv")
    return Response(text.encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}.csv"})


def csv_upload(bot: Any, csv_text: Callable[[Any], tuple[str, str]], read: Callable[[str], tuple[Any, str]],
               run: Callable[[Any, Any, Employee], Any], *, title: str, page: str, needed: str,
               words: Callable[[str], str]) -> Any:
    """An uploaded catalog or rules CSV imported by ``run``; the results page lists each row's outcome."""
    text, problem = csv_text(request)
    rows, missing = read(text) if not problem else ([], "")
    if missing:
        problem = f"CSV 缺少列：{missing.split(': ', 1)[-1]}（至少需要 {needed}）"
    if problem:
        flash(problem)
        return redirect(url_for(page))
    try:
        with bot.db.session_scope() as s:
            report = run(s, rows, s.get(Employee, g.member_id))
    except DomainError as exc:
        return render_template("console/message.html", title="没有权限", text=msg.domain_error(exc)), 403
    results = [(ref, label) for label, refs in (("新增", report.created), ("已更新", report.updated),
                                                ("无改动", report.unchanged)) for ref in refs]
    results += [(f"第 {line} 行", f"未导入：{words(code)}") for line, _, code in report.rejected]
    return render_template("console/results.html", title=title, results=results, back=url_for(page))


def _announce(sv: Any, old: Any, new: Any, actor: str) -> int:
    """The change as a card to ``[announcements] groups``; how many groups."""
    def line(v: Any) -> str | None:
        return None if v is None else builders_rules.item_line(
            name=v.name, kind=str(v.kind), cost=v.cost, active=v.active,
            limit=msg.limit_text(getattr(v, "limit_count", getattr(v, "limit", None)), v.limit_period))
    card = builders_rules.catalog_announcement(line(old), line(new), name=new.name, changed_by=actor)
    return sv.announce(card.to_dict(), key=f"announce:item:{new.sku}:{sv.clock():%Y%m%d%H%M%S%f}")


def _form(values: dict[str, Any], sku: str, problems: list[tuple[str, str]],
          pool: tuple[int, int] | None = None) -> str:
    """The item's form; ``pool`` is a gift card's (free, handed out) codes, for its upload panel."""
    words = {field: catalog_problem(code) for field, code in problems}
    return render_template("console/catalog_item.html", v=values, sku=sku, problems=words, kinds=msg.ITEM_KINDS,
                           kind_order=ITEM_KINDS, periods=msg.LIMIT_PERIODS, period_order=LIMIT_PERIODS, pool=pool)
