"""The reward catalog and the earning rules of the configuration, validated with errors that name
the item or rule (an HR person edits these; the message must point at the line to fix)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


class ConfigError(Exception):
    """A missing or malformed setting; the message names the key."""


PERIODS = ("month", "quarter", "year")


@dataclass(frozen=True)
class Tier:
    min: float
    points: int


@dataclass(frozen=True)
class Rule:
    name: str
    platform: str
    template: str
    category: str
    points: int | None = None
    field: str = ""
    tiers: tuple[Tier, ...] = ()
    max_count: int | None = None
    max_period: str = ""

    def points_for(self, value: float | None) -> int:
        """Fixed points, or the tier with the highest ``min`` not above ``value`` (0 below all)."""
        if self.points is not None:
            return self.points
        if value is None:
            return 0
        best = [t for t in self.tiers if t.min <= value]
        return max(best, key=lambda t: t.min).points if best else 0


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
    Chinese (cards/messages.py ``CATALOG_PROBLEMS``). Values arrive typed (``None`` for left empty).
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


def _parse_tiers(where: str, raw: Any) -> tuple[Tier, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.tiers: expected a non-empty list of {{min, points}}")
    tiers = []
    for j, t in enumerate(raw):
        if not isinstance(t, Mapping) or set(t) != {"min", "points"}:
            raise ConfigError(f"{where}.tiers[{j}]: expected exactly min and points")
        if isinstance(t["min"], bool) or not isinstance(t["min"], (int, float)):
            raise ConfigError(f"{where}.tiers[{j}].min: expected a number")
        if isinstance(t["points"], bool) or not isinstance(t["points"], int) or t["points"] < 0:
            raise ConfigError(f"{where}.tiers[{j}].points: expected a whole number ≥ 0")
        tiers.append(Tier(min=float(t["min"]), points=t["points"]))
    mins = [t.min for t in tiers]
    if len(set(mins)) != len(mins):
        raise ConfigError(f"{where}.tiers: two tiers share the same min (overlapping tiers)")
    return tuple(sorted(tiers, key=lambda t: -t.min))


RULE_KEYS = {"name", "platform", "template", "points", "category", "max_per", "field", "tiers"}


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
    if entry.get("platform") not in ("dingtalk", "wecom"):
        raise ConfigError(f"{where}.platform: expected \"dingtalk\" or \"wecom\"")
    if not isinstance(entry.get("template"), str) or not entry["template"]:
        raise ConfigError(f"{where}.template: expected the processCode / TemplateId")
    category = entry.get("category", "approval")
    if not isinstance(category, str):
        raise ConfigError(f"{where}.category: expected a string")
    points, tiers, fld = entry.get("points"), (), entry.get("field", "")
    if points is not None and ("tiers" in entry or fld):
        raise ConfigError(f"{where}: give either points or field + tiers, not both")
    if points is not None:
        if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
            raise ConfigError(f"{where}.points: expected a positive whole number")
    else:
        if not isinstance(fld, str) or not fld:
            raise ConfigError(f"{where}.field: required with tiers (the form field's title)")
        tiers = _parse_tiers(where, entry.get("tiers"))
    max_count, max_period = None, ""
    if "max_per" in entry:
        mp = entry["max_per"]
        if not isinstance(mp, Mapping) or set(mp) != {"count", "period"}:
            raise ConfigError(f"{where}.max_per: expected {{count = N, period = \"month|quarter|year\"}}")
        if isinstance(mp["count"], bool) or not isinstance(mp["count"], int) or mp["count"] <= 0:
            raise ConfigError(f"{where}.max_per.count: expected a positive whole number")
        if mp["period"] not in PERIODS:
            raise ConfigError(f"{where}.max_per.period: expected month, quarter or year")
        max_count, max_period = mp["count"], mp["period"]
    return Rule(name=name, platform=entry["platform"], template=entry["template"], category=category,
                points=points, field=fld, tiers=tiers, max_count=max_count, max_period=max_period)


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
