"""The earning rules as a CSV file, both ways: what ``flask rules export|import`` and the console exchange.

Columns ``id,name,platform,template,points,base_points,tiers,field,category,max_count,max_period,active``, tiers
written ``90:110%;80:100%;70:95%;0:0%`` or ``60:-50``. A row without an ``id`` creates a rule; a row with one
changes that rule (a new version, valid from the import). A column left out of the file keeps what the rule has;
an empty cell means none. Each row is checked by the same rules as the configuration and the console
(settings_rules.py ``check_rule``); a bad row is reported with its line and why, and never stops the good ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from settings_rules import RULE_FIELDS, check_rule
from storage import csvfile, rules
from storage.errors import DomainError

COLUMNS = RULE_FIELDS
REQUIRED = ("name", "platform", "template")
_NUMBERS = ("id", "points", "base_points", "max_count")


@dataclass
class RulesImport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, problem code)


def export_text(s: Session) -> str:
    """Every rule as it is now, inactive ones included, with a BOM so Excel reads it as UTF-8."""
    return csvfile.write(COLUMNS, ({**asdict(r), "tiers": r.tiers_text()} for r in rules.current(s)))


def read(text: str) -> tuple[csvfile.Rows, str]:
    """(line, cells) of every row, or the problem with the header (the missing columns named)."""
    return csvfile.read(text, COLUMNS, REQUIRED)


def typed(cells: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The row's cells as the values ``check_rule`` takes; a cell that is not a number or a yes/no is a problem."""
    return csvfile.typed(cells, _NUMBERS, {"id": "unknown_rule", "points": "points", "base_points": "base_points",
                                           "max_count": "max_count"})


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
