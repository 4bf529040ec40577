"""The reward catalog and the earning rules of the configuration, validated with errors that name
the item or rule (an HR person edits these; the message must point at the line to fix)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Mapping


class ConfigError(Exception):
    """A missing or malformed setting; the message names the key."""


PERIODS = ("month", "quarter", "year")


@dataclass(frozen=True)
class Tier:
    """From ``min`` up: fixed ``points`` (negative: an automatic deduction), or ``percent`` of the rule's
    ``base_points``, rounded half up to whole points."""
    min: float
    points: int | None = None
    percent: float | None = None

    def amount(self, base: int | None) -> int:
        if self.percent is None:
            return int(self.points or 0)
        exact = Decimal(base or 0) * Decimal(str(self.percent)) / 100
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def text(self) -> str:
        """``90:110%`` or ``60:-50``: the CSV's form of one tier."""
        value = f"{_num(self.percent)}%" if self.percent is not None else str(self.points)
        return f"{_num(self.min)}:{value}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Rule:
    """An earning rule: an approval flow (platform + template) that awards points once approved.

    The database keeps every version (storage/rules.py); ``id`` is the rule's stable id and ``version`` the
    one in force, both None/0 for a rule still only in the configuration.
    """
    name: str
    platform: str
    template: str
    category: str
    points: int | None = None
    field: str = ""
    tiers: tuple[Tier, ...] = ()
    max_count: int | None = None
    max_period: str = ""
    base_points: int | None = None
    active: bool = True
    id: int | None = None
    version: int = 0
    changed_at: datetime | None = None

    def points_for(self, value: float | None) -> int:
        """Fixed points, or the tier with the highest ``min`` not above ``value`` (0 below all)."""
        if self.points is not None:
            return self.points
        if value is None:
            return 0
        best = [t for t in self.tiers if t.min <= value]
        return max(best, key=lambda t: t.min).amount(self.base_points) if best else 0

    def tiers_text(self) -> str:
        return ";".join(t.text() for t in sorted(self.tiers, key=lambda t: -t.min))

    def same_terms(self, other: "Rule") -> bool:
        """Whether two versions award alike (the id, version and date aside)."""
        return replace(self, id=None, version=0, changed_at=None) == replace(other, id=None, version=0,
                                                                             changed_at=None)


ITEM_KINDS = ("goods", "gift_card", "leave", "training", "service", "donation")  # storage/kinds.py ItemKind
LIMIT_PERIODS = ("week", "month", "quarter", "year")
ITEM_FIELDS = ("sku", "name", "kind", "cost", "stock", "description", "active", "limit", "limit_period", "sort",
               "leave_days", "charity")
CHARITY_MAX = 40


@dataclass(frozen=True)
class CatalogItem:
    """One reward: the configuration's ``[[catalog]]`` seeds them, the database holds them (storage/catalog.py)."""
    sku: str
    name: str
    cost: int
    stock: int | None = None  # None = unlimited
    kind: str = "goods"
    description: str = ""
    active: bool = True
    limit: int | None = None  # at most this many per employee per ``limit_period``
    limit_period: str = ""
    sort: int = 0  # the shop lists items by sort, then sku
    leave_days: int | None = None  # what a ``leave`` item adds in the leave system
    charity: str = ""  # whose pool account a ``donation`` item's points go to (storage/ledger/credit.py settle)


def _whole(value: Any, low: int, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def check_item(values: Mapping[str, Any]) -> tuple[CatalogItem | None, list[tuple[str, str]]]:
    """The item the values describe, or the problems as (field, code) pairs.

    The one set of rules for an item, whether it comes from the configuration, a CSV row or the console:
    the configuration words the codes in English (``parse_catalog``), the console and the CSV import in
    Chinese (cards/problems.py ``CATALOG_PROBLEMS``). Values arrive typed (``None`` for left empty).
    """
    problems: list[tuple[str, str]] = []
    v = {**{f: None for f in ITEM_FIELDS}, **values}
    sku, name = v["sku"], v["name"]
    if not isinstance(sku, str) or not sku.strip() or len(sku) > 64 or any(ch.isspace() for ch in sku):
        problems.append(("sku", "sku"))
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        problems.append(("name", "name"))
    if not _whole(v["cost"], 1, 10_000_000):
        problems.append(("cost", "cost"))
    if v["stock"] is not None and not _whole(v["stock"], 0, 10_000_000):
        problems.append(("stock", "stock"))
    kind = v["kind"] if v["kind"] is not None else "goods"
    if kind not in ITEM_KINDS:
        problems.append(("kind", "kind"))
    if v["description"] is not None and (not isinstance(v["description"], str) or len(v["description"]) > 500):
        problems.append(("description", "description"))
    if v["active"] is not None and not isinstance(v["active"], bool):
        problems.append(("active", "active"))
    if v["limit"] is not None and not _whole(v["limit"], 1, 10_000):
        problems.append(("limit", "limit"))
    period = v["limit_period"] or ""
    if (v["limit"] is None) != (period == "") or (period and period not in LIMIT_PERIODS):
        problems.append(("limit_period", "limit_period"))
    if v["sort"] is not None and not _whole(v["sort"], -1_000_000, 1_000_000):
        problems.append(("sort", "sort"))
    if kind == "leave" and not _whole(v["leave_days"], 1, 365):
        problems.append(("leave_days", "leave_days"))
    elif kind != "leave" and v["leave_days"] is not None:
        problems.append(("leave_days", "leave_days_not_leave"))
    charity = v["charity"].strip() if isinstance(v["charity"], str) else v["charity"]
    if kind == "donation" and (not isinstance(charity, str) or not charity or len(charity) > CHARITY_MAX):
        problems.append(("charity", "charity"))
    elif kind != "donation" and charity:
        problems.append(("charity", "charity_not_donation"))
    if problems:
        return None, problems
    return CatalogItem(sku=sku.strip(), name=name.strip(), cost=v["cost"], stock=v["stock"], kind=kind,
                       description=(v["description"] or "").strip(), active=v["active"] is not False,
                       limit=v["limit"], limit_period=period, sort=v["sort"] or 0, leave_days=v["leave_days"],
                       charity=charity or ""), []


CONFIG_PROBLEMS = {
    "sku": "expected a non-empty string of at most 64 characters without spaces",
    "name": "expected a non-empty string of at most 128 characters",
    "cost": "expected a positive whole number of points",
    "stock": "expected a whole number ≥ 0 (omit for unlimited)",
    "kind": f"expected one of {', '.join(ITEM_KINDS)}",
    "description": "expected a string of at most 500 characters",
    "active": "expected true or false",
    "limit": "expected a whole number ≥ 1 (omit for no limit)",
    "limit_period": f"expected one of {', '.join(LIMIT_PERIODS)}, given together with limit",
    "sort": "expected a whole number",
    "leave_days": "expected a whole number of days from 1 to 365 for a leave item",
    "leave_days_not_leave": "only a leave item has leave_days",
    "charity": f"expected the charity's name (1 to {CHARITY_MAX} characters) for a donation item",
    "charity_not_donation": "only a donation item names a charity",
    "duplicate": "duplicate sku",
}


def parse_catalog(raw: Any) -> tuple[CatalogItem, ...]:
    """The configuration's ``[[catalog]]``: what ``db upgrade`` loads into an empty catalog once."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("catalog: expected [[catalog]] tables")
    items: list[CatalogItem] = []
    for i, entry in enumerate(raw):
        where = f"catalog[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a table")
        unknown = set(entry) - set(ITEM_FIELDS)
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown setting")
        item, problems = check_item(entry)
        if isinstance(entry.get("sku"), str) and entry["sku"].strip():
            where = f"catalog[{entry['sku']}]"
        if item is None:
            field, code = problems[0]
            raise ConfigError(f"{where}.{field}: {CONFIG_PROBLEMS[code]}")
        if any(it.sku == item.sku for it in items):
            raise ConfigError(f"{where}.sku: {CONFIG_PROBLEMS['duplicate']}")
        items.append(item)
    return tuple(items)


RULE_FIELDS = ("id", "name", "platform", "template", "points", "base_points", "tiers", "field", "category",
               "max_count", "max_period", "active")
PLATFORMS = ("dingtalk", "wecom")
_TIER = re.compile(r"(-?\d+(?:\.\d+)?):(-?\d+(?:\.\d+)?)(%?)")
POINTS_MAX = 1_000_000


def parse_tiers(text: str) -> tuple[Tier, ...] | None:
    """``90:110%;80:100%;0:0%`` or ``60:-50`` → tiers, highest first; None when it does not read."""
    tiers = []
    for part in (p.replace(" ", "") for p in text.replace("；", ";").replace("：", ":").split(";")):
        if not part:
            continue
        m = _TIER.fullmatch(part)
        if m is None:
            return None
        low, value, pct = float(m.group(1)), float(m.group(2)), m.group(3)
        if pct:
            tiers.append(Tier(min=low, percent=value))
        elif value.is_integer():
            tiers.append(Tier(min=low, points=int(value)))
        else:
            return None
    return tuple(sorted(tiers, key=lambda x: -x.min)) or None


def _tier_problem(tiers: tuple[Tier, ...], base: Any) -> str:
    if len({x.min for x in tiers}) != len(tiers):
        return "tiers_overlap"
    if any(x.percent is not None and not 0 <= x.percent <= 1000 for x in tiers) or \
            any(x.points is not None and abs(x.points) > POINTS_MAX for x in tiers):
        return "tiers"
    if any(x.percent is not None for x in tiers) and base is None:
        return "tiers_need_base"
    return ""


def check_rule(values: Mapping[str, Any]) -> tuple[Rule | None, list[tuple[str, str]]]:
    """The rule the values describe, or the problems as (field, code) pairs: the one set of rules for the
    configuration, a CSV row and the console's form (words: ``RULE_PROBLEMS`` here, ``RULE_PROBLEMS`` in
    cards/problems.py). ``tiers`` arrives as text (``90:110%;0:0%``) or as tiers; numbers typed, None if empty."""
    v = {**{f: None for f in RULE_FIELDS}, **values}
    problems: list[tuple[str, str]] = []
    name, template = v["name"], v["template"]
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        problems.append(("name", "rule_name"))
    if v["platform"] not in PLATFORMS:
        problems.append(("platform", "platform"))
    if not isinstance(template, str) or not template.strip() or len(template) > 128 or " " in template.strip():
        problems.append(("template", "template"))
    tiers: Any = v["tiers"] or ()
    if isinstance(tiers, str):
        tiers = parse_tiers(tiers) if tiers.strip() else ()
        if tiers is None:
            problems.append(("tiers", "tiers"))
            tiers = ()
    points, base, fld = v["points"], v["base_points"], (v["field"] or "").strip()
    if (points is None) == (not tiers):
        problems.append(("points", "points_or_tiers"))
    elif points is not None and (isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= POINTS_MAX):
        problems.append(("points", "points"))
    elif tiers and (code := _tier_problem(tiers, base)):
        problems.append(("tiers", code))
    elif tiers and not fld:
        problems.append(("field", "field"))
    if base is not None and (isinstance(base, bool) or not isinstance(base, int) or not 0 < base <= POINTS_MAX):
        problems.append(("base_points", "base_points"))
    category = v["category"] if v["category"] is not None else "approval"
    if not isinstance(category, str) or not category.strip() or len(category) > 32:
        problems.append(("category", "category"))
    count, period = v["max_count"], v["max_period"] or ""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 1000):
        problems.append(("max_count", "max_count"))
    elif (count is None) != (period == "") or (period and period not in PERIODS):
        problems.append(("max_period", "max_period"))
    if v["active"] is not None and not isinstance(v["active"], bool):
        problems.append(("active", "active"))
    if problems:
        return None, problems
    return Rule(name=name.strip(), platform=v["platform"], template=template.strip(), category=category.strip(),
                points=points, field=fld if tiers else "", tiers=tuple(tiers), max_count=count, max_period=period,
                base_points=base, active=v["active"] is not False, id=v["id"]), []


RULE_PROBLEMS = {
    "rule_name": "expected a non-empty string of at most 128 characters",
    "platform": 'expected "dingtalk" or "wecom"',
    "template": "expected the processCode / TemplateId (no spaces)",
    "points_or_tiers": "give either points or field + tiers, not both (and one of them)",
    "points": "expected a positive whole number",
    "tiers": "expected tiers such as 90:110%;80:100%;0:0% or 90:500;60:-50 (min:points or min:percent%)",
    "tiers_overlap": "two tiers share the same min (overlapping tiers)",
    "tiers_need_base": "a percentage tier needs base_points",
    "field": "required with tiers (the form field's title)",
    "base_points": "expected a positive whole number",
    "category": "expected a short name (at most 32 characters)",
    "max_count": "expected a positive whole number",
    "max_period": "expected month, quarter or year, together with the count",
    "active": "expected true or false",
    "duplicate": "the same rule twice in the file",
    "unknown_rule": "no rule with this id (leave id empty to create one)",
    "rule_template_taken": "an active rule already uses this platform and template",
}
RULE_KEYS = {"name", "platform", "template", "points", "category", "max_per", "field", "tiers", "base_points",
             "active"}


def _config_tiers(where: str, raw: Any) -> tuple[Tier, ...]:
    """``tiers = [{min = 90, points = 500}, {min = 80, percent = 100}]``: the TOML form of tiers."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.tiers: expected a non-empty list of {{min, points}} or {{min, percent}}")
    tiers = []
    for j, x in enumerate(raw):
        if not isinstance(x, Mapping) or set(x) not in ({"min", "points"}, {"min", "percent"}):
            raise ConfigError(f"{where}.tiers[{j}]: expected exactly min and points (or min and percent)")
        if isinstance(x["min"], bool) or not isinstance(x["min"], (int, float)):
            raise ConfigError(f"{where}.tiers[{j}].min: expected a number")
        if "percent" in x:
            if isinstance(x["percent"], bool) or not isinstance(x["percent"], (int, float)):
                raise ConfigError(f"{where}.tiers[{j}].percent: expected a number")
            tiers.append(Tier(min=float(x["min"]), percent=float(x["percent"])))
        elif isinstance(x["points"], bool) or not isinstance(x["points"], int):
            raise ConfigError(f"{where}.tiers[{j}].points: expected a whole number (negative: a deduction)")
        else:
            tiers.append(Tier(min=float(x["min"]), points=x["points"]))
    return tuple(sorted(tiers, key=lambda x: -x.min))


def _parse_rule(i: int, entry: Any) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a table")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: expected a non-empty string")
    where = f"rules[{name}]"
    unknown = set(entry) - RULE_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown setting (known: {', '.join(sorted(RULE_KEYS))})")
    values = {k: entry.get(k) for k in ("name", "platform", "template", "points", "base_points", "field",
                                        "category", "active")}
    values["tiers"] = _config_tiers(where, entry["tiers"]) if "tiers" in entry else ()
    if "max_per" in entry:
        mp = entry["max_per"]
        if not isinstance(mp, Mapping) or set(mp) != {"count", "period"}:
            raise ConfigError(f"{where}.max_per: expected {{count = N, period = \"month|quarter|year\"}}")
        values["max_count"], values["max_period"] = mp["count"], mp["period"]
    rule, problems = check_rule(values)
    if rule is None:
        field, code = problems[0]
        key = {"max_count": "max_per.count", "max_period": "max_per.period"}.get(field, field)
        raise ConfigError(f"{where}: {RULE_PROBLEMS[code]}" if code == "points_or_tiers" else
                          f"{where}.{key}: {RULE_PROBLEMS[code]}")
    return rule


def parse_rules(raw: Any) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("rules: expected [[rules]] tables")
    rules = tuple(_parse_rule(i, e) for i, e in enumerate(raw))
    seen: set[tuple[str, str]] = set()
    for r in rules:
        if (r.platform, r.template) in seen:
            raise ConfigError(f"rules[{r.name}].template: another rule already uses {r.platform} {r.template}")
        seen.add((r.platform, r.template))
    return rules
