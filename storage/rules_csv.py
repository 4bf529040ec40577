"""The earning rules as a CSV file, both ways: what ``flask rules export|import`` and the console exchange.

Columns ``id,name,platform,template,points,base_points,tiers,field,category,max_count,max_period,active``, tiers
written ``90:110%;80:100%;70:95%;0:0%`` or ``60:-50``. A row without an ``id`` creates a rule; a row with one
changes that rule (a new version, valid from the import). A column left out of the file keeps what the rule has;
an empty cell means none. Each row is checked by the same rules as the configuration and the console
(settings_rules.py ``check_rule``); a bad row is reported with its line and why, and never stops the good ones.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from settings_rules import RULE_FIELDS, check_rule
from storage import rules
from storage.errors import DomainError
from storage.exports import safe, unsafe

COLUMNS = RULE_FIELDS
REQUIRED = ("name", "platform", "template")
_NUMBERS = ("id", "points", "base_points", "max_count")
_TRUE, _FALSE = ("1", "true", "yes", "y"), ("0", "false", "no", "n")


@dataclass
class RulesImport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, problem code)


def export_text(s: Session) -> str:
    """Every rule as it is now, inactive ones included, with a BOM so Excel reads it as UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rules.current(s):
        values = {**asdict(r), "tiers": r.tiers_text(), "active": "true" if r.active else "false"}
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
    """The row's cells as the values ``check_rule`` takes; a cell that is not a number or a yes/no is a problem."""
    values: dict[str, Any] = {}
    problems = []
    for name, cell in cells.items():
        if name in _NUMBERS:
            try:
                values[name] = int(cell) if cell else None
            except ValueError:
                problems.append((name, "points" if name != "id" else "unknown_rule"))
        elif name == "active":
            folded = cell.casefold()
            if folded not in _TRUE + _FALSE + ("",):
                problems.append((name, name))
            values[name] = folded not in _FALSE
        else:
            values[name] = cell
    return values, problems


def import_rows(s: Session, rows: list[tuple[int, dict[str, str]]], *, now: datetime,
                actor_id: int | None) -> RulesImport:
    """Create or change a rule per row; columns a row leaves out keep the rule's values."""
    report = RulesImport()
    seen: set[int] = set()
    for line, cells in rows:
        values, problems = typed(cells)
        rule_id = values.get("id")
        existing = rules.get(s, rule_id) if rule_id is not None else None
        if not problems and rule_id is not None and existing is None:
            problems = [("id", "unknown_rule")]
        if not problems and rule_id in seen:
            problems = [("id", "duplicate")]
        if not problems:
            base = {**asdict(existing), "tiers": existing.tiers} if existing is not None else {}
            rule, problems = check_rule({k: v for k, v in {**base, **values}.items() if k in RULE_FIELDS})
        if problems:
            report.rejected.append((line, *problems[0]))
            continue
        assert rule is not None
        try:
            with s.begin_nested():
                outcome, saved = rules.save(s, rule, now=now, actor_id=actor_id)
        except DomainError as exc:
            report.rejected.append((line, "template", exc.reason or exc.code))
            continue
        seen.add(saved.id or 0)
        getattr(report, outcome).append(f"{saved.id} {saved.name}")
    return report
