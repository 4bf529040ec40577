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


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    name: str
    cost: int
    stock: int | None = None


def parse_catalog(raw: Any) -> tuple[CatalogItem, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("catalog: expected [[catalog]] tables")
    items: list[CatalogItem] = []
    for i, entry in enumerate(raw):
        where = f"catalog[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a table")
        unknown = set(entry) - {"sku", "name", "cost", "stock"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown setting")
        sku, name, cost = entry.get("sku"), entry.get("name"), entry.get("cost")
        if not isinstance(sku, str) or not sku.strip():
            raise ConfigError(f"{where}.sku: expected a non-empty string")
        where = f"catalog[{sku}]"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.name: expected a non-empty string")
        if isinstance(cost, bool) or not isinstance(cost, int) or cost <= 0:
            raise ConfigError(f"{where}.cost: expected a positive whole number of points")
        stock = entry.get("stock")
        if stock is not None and (isinstance(stock, bool) or not isinstance(stock, int) or stock < 0):
            raise ConfigError(f"{where}.stock: expected a whole number ≥ 0 (omit for unlimited)")
        if any(it.sku == sku for it in items):
            raise ConfigError(f"{where}.sku: duplicate sku")
        items.append(CatalogItem(sku=sku, name=name, cost=cost, stock=stock))
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
