"""The catalog as a CSV file, both ways: what ``flask catalog export|import`` and the console exchange.

Columns ``sku,name,kind,cost,stock,description,active,limit,limit_period,sort,leave_days,charity``; only
``sku,name,cost`` are required. A column left out of the file keeps what the item has (or the default
for a new one); a cell left empty means "none" (unlimited stock, no limit). Each row is checked by the
same rules as the configuration (settings_rules.py ``check_item``); a bad row is reported with its
line and why, and never stops the good ones.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from settings_rules import check_item
from storage import catalog
from storage.exports import safe, unsafe

COLUMNS = ("sku", "name", "kind", "cost", "stock", "description", "active", "limit", "limit_period", "sort",
           "leave_days", "charity")
REQUIRED = ("sku", "name", "cost")
_NUMBERS = ("cost", "stock", "limit", "sort", "leave_days")
_TRUE, _FALSE = ("1", "true", "yes", "y"), ("0", "false", "no", "n")


@dataclass
class CatalogImport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, problem code)


def export_text(s: Session) -> str:
    """The whole catalog, inactive items included, with a BOM so Excel reads it as UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for item in catalog.items(s):
        values = asdict(catalog.values_of(item))
        values["active"] = "true" if values["active"] else "false"
        writer.writerow([safe("" if values[c] is None else values[c]) for c in COLUMNS])
    return "\ufeff" + out.getvalue()


def read(text: str) -> tuple[list[tuple[int, dict[str, str]]], str]:
    """(line, cells) of every row, or the problem with the header (the missing columns named)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [(h or "").strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        return [], f"missing column(s): {', '.join(missing)}"
    reader.fieldnames = header
    return [(reader.line_num, {k: unsafe((v or "").strip()) for k, v in row.items() if k in COLUMNS})
            for row in reader], ""


def typed(cells: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The row's cells as the values ``check_item`` takes; a cell that is not a number or a yes/no is a problem."""
    values: dict[str, Any] = {}
    problems = []
    for name, cell in cells.items():
        if name in _NUMBERS:
            try:
                values[name] = int(cell) if cell else None
            except ValueError:
                problems.append((name, name))
        elif name == "active":
            folded = cell.casefold()
            if folded not in _TRUE + _FALSE + ("",):
                problems.append((name, name))
            values[name] = folded not in _FALSE
        else:
            values[name] = cell
    return values, problems


def import_rows(s: Session, rows: list[tuple[int, dict[str, str]]], *, now: datetime,
                actor_id: int | None) -> CatalogImport:
    """Create or update an item per row (by sku); columns a row leaves out keep the item's values."""
    report = CatalogImport()
    seen: set[str] = set()
    for line, cells in rows:
        values, problems = typed(cells)
        existing = catalog.get(s, values.get("sku") or "")
        if not problems:
            base = asdict(catalog.values_of(existing)) if existing is not None else {}
            item, problems = check_item({**base, **values})
        if problems:
            report.rejected.append((line, *problems[0]))
            continue
        assert item is not None
        if item.sku in seen:
            report.rejected.append((line, "sku", "duplicate"))
            continue
        seen.add(item.sku)
        outcome = catalog.save(s, item, now=now, actor_id=actor_id)
        getattr(report, outcome).append(item.sku)
    return report
