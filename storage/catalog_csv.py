"""The catalog as a CSV file, both ways: what ``flask catalog export|import`` and the console exchange.

Columns ``sku,name,kind,cost,stock,description,active,limit,limit_period,sort,leave_days,charity``; only
``sku,name,cost`` are required. A column left out of the file keeps what the item has (or the default
for a new one); a cell left empty means "none" (unlimited stock, no limit). Each row is checked by the
same rules as the configuration (settings_rules.py ``check_item``); a bad row is reported with its
line and why, and never stops the good ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from settings_rules import check_item
from storage import catalog, csvfile

COLUMNS = ("sku", "name", "kind", "cost", "stock", "description", "active", "limit", "limit_period", "sort",
           "leave_days", "charity")
REQUIRED = ("sku", "name", "cost")
_NUMBERS = ("cost", "stock", "limit", "sort", "leave_days")


@dataclass
class CatalogImport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, problem code)


def export_text(s: Session) -> str:
    """The whole catalog, inactive items included, with a BOM so Excel reads it as UTF-8."""
    return csvfile.write(COLUMNS, (asdict(catalog.values_of(item)) for item in catalog.items(s)))


def read(text: str) -> tuple[csvfile.Rows, str]:
    """(line, cells) of every row, or the problem with the header (the missing columns named)."""
    return csvfile.read(text, COLUMNS, REQUIRED)


def typed(cells: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The row's cells as the values ``check_item`` takes; a cell that is not a number or a yes/no is a problem."""
    return csvfile.typed(cells, _NUMBERS)


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
