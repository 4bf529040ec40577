"""The console's exports: balances, the ledger and orders as CSV or Excel, streamed and audited.

CSV is UTF-8 with a BOM (Excel in China shows mojibake without one) and Chinese headers; ``.xlsx`` is
written by openpyxl in write-only mode (rows go to disk as they come), at most ``SHEET_ROWS`` rows a
sheet. A text cell that begins like a formula (``=``, ``+``, ``-``, ``@``, tab, CR) gets a leading
``'`` so a spreadsheet shows it instead of running it. Every export is in the audit log: who, from
where, which filters, how many rows. Rows come page by page from storage/exports.py.
"""
from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import quote

from flask import Response, abort, g, request

from cards import messages as msg
from storage import exports
from storage.exports import safe
from storage.members import audit

SHEET_ROWS = 1_000_000
KINDS = ("balances", "ledger", "orders", "donations")
HEADERS = {
    "balances": ("工号", "姓名", "部门", "状态", "可用积分", "兑换冻结中", "累计获得"),
    "ledger": ("编号", "时间", "工号", "姓名", "部门", "类型", "积分", "操作人", "原因"),
    "orders": ("订单", "下单时间", "工号", "姓名", "部门", "商品", "数量", "积分", "状态", "处理人", "处理时间", "备注"),
    "donations": ("月份", "受捐机构", "捐赠笔数", "积分"),
}
TITLES = {"balances": "积分余额", "ledger": "积分流水", "orders": "兑换订单", "donations": "积分捐赠"}


def rows_of(kind: str, bot: Any, viewer_id: int, f: exports.ExportFilter) -> Iterator[tuple[Any, ...]]:
    """The export's rows, worded: times in the company's zone, kinds and statuses in Chinese."""
    tz = bot.settings.tz

    def when(at: datetime | None) -> str:
        return msg.local_time(at, tz, "%Y-%m-%d %H:%M:%S") if at is not None else ""

    if kind == "balances":
        for _, no, name, dept, status, available, held, earned in exports.balances(bot.db, viewer_id, f):
            yield no, name, dept, "在职" if status == "active" else "已离职", int(available), int(held), int(earned)
    elif kind == "ledger":
        for tid, at, no, name, dept, k, amount, actor, reason in exports.ledger(bot.db, viewer_id, f):
            yield f"E{tid}", when(at), no or "", name or "", dept or "", msg.TXN_KIND_TEXT.get(k, k), int(amount), \
                actor or "系统", reason or ""
    elif kind == "donations":
        yield from exports.donations(bot.db, viewer_id, f, tz)
    else:
        for oid, at, no, name, dept, item, qty, cost, status, by, decided, note in exports.orders(bot.db, viewer_id, f):
            yield f"R{oid}", when(at), no, name, dept, item, int(qty), int(cost), \
                msg.ORDER_STATUS.get(status, status), by, when(decided), note or ""


def csv_stream(kind: str, rows: Iterator[tuple[Any, ...]], done: Callable[[int], None]) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow(HEADERS[kind])
    n = 0
    for row in rows:
        writer.writerow([safe(v) for v in row])
        n += 1
        if buf.tell() > 64 * 1024:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")
    done(n)


def xlsx_file(kind: str, rows: Iterator[tuple[Any, ...]]) -> tuple[Any, int]:
    """The workbook in a temporary file (write-only: memory stays flat), and how many rows it holds."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    sheet, n, in_sheet = None, 0, SHEET_ROWS
    for row in rows:
        if in_sheet >= SHEET_ROWS:
            sheet = wb.create_sheet(TITLES[kind] if n == 0 else f"{TITLES[kind]}{n // SHEET_ROWS + 1}")
            sheet.append(HEADERS[kind])
            in_sheet = 0
        sheet.append([safe(v) for v in row])  # type: ignore[union-attr]
        n += 1
        in_sheet += 1
    if sheet is None:
        wb.create_sheet(TITLES[kind]).append(HEADERS[kind])
    out = tempfile.TemporaryFile()
    wb.save(out)
    out.seek(0)
    return out, n


def file_stream(f: Any) -> Iterator[bytes]:
    try:
        while chunk := f.read(256 * 1024):
            yield chunk
    finally:
        f.close()


def export_response(bot: Any, kind: str, fmt: str, f: exports.ExportFilter, filters: str) -> Response:
    if kind not in KINDS or fmt not in ("csv", "xlsx"):
        abort(404)
    viewer_id, ip = g.member_id, request.remote_addr or ""

    def record(n: int) -> None:
        with bot.db.session_scope() as s:
            audit(s, "console_export", now=bot.db.clock(), actor_id=viewer_id, target_id=None,
                  detail=f"{kind}.{fmt} rows={n} from {ip} {filters}".strip())

    stamp = datetime.now(timezone.utc).astimezone(bot.settings.tz).strftime("%Y%m%d-%H%M")
    name = f"{TITLES[kind]}-{stamp}.{fmt}"
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    rows = rows_of(kind, bot, viewer_id, f)
    if fmt == "csv":
        return Response(csv_stream(kind, rows, record), mimetype="text/csv", headers=headers)
    out, n = xlsx_file(kind, rows)
    record(n)
    return Response(file_stream(out), headers=headers,
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
