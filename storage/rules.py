"""Earning rules as versioned data (docs/rules.md): what an approval flow awards, and since when.

The database is the source of truth, as for the catalog: the configuration's ``[[rules]]`` only seeds a
database that never had rules (``seed_from_config``), and HR changes rules in the console or with a CSV.
A change never edits a row: it adds the rule's next version, valid from the moment it was saved, and an
approval is awarded under the version in force when it *finished* (``in_force``), so changing a rule never
alters awards already made and applies to approvals finished after it. The seeded first versions are valid
from the beginning of time, so an approval that finished before the upgrade is still reconciled under them.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from typing import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from settings_rules import Rule, parse_tiers
from storage.errors import InvalidState, UnknownRule
from storage.members import audit
from storage.models import ApprovalInstance, ApprovalSlot, RuleVersion

SINCE_EVER = datetime(1970, 1, 1)


def to_rule(v: RuleVersion) -> Rule:
    return Rule(name=v.name, platform=v.platform, template=v.template, category=v.category, points=v.points,
                field=v.field, tiers=parse_tiers(v.tiers) or () if v.tiers else (), max_count=v.max_count,
                max_period=v.max_period, base_points=v.base_points, active=v.active, id=v.rule_id, version=v.version,
                changed_at=v.changed_at)


def _latest(s: Session, at: datetime | None = None) -> list[RuleVersion]:
    """Each rule's latest version (valid by ``at``, if given), in rule order."""
    newest = select(RuleVersion.rule_id, func.max(RuleVersion.version).label("v"))
    if at is not None:
        newest = newest.where(RuleVersion.valid_from <= at)
    sub = newest.group_by(RuleVersion.rule_id).subquery()
    return list(s.scalars(select(RuleVersion).join(sub, (sub.c.rule_id == RuleVersion.rule_id)
                                                   & (sub.c.v == RuleVersion.version)).order_by(RuleVersion.rule_id)))


def current(s: Session) -> list[Rule]:
    """Every rule as it is now (inactive ones included): what 规则, the console and the export show."""
    return [to_rule(v) for v in _latest(s)]


def in_force(s: Session, at: datetime) -> list[Rule]:
    """The active rules as they were at ``at``."""
    return [r for r in (to_rule(v) for v in _latest(s, at)) if r.active]


def match(s: Session, platform: str, template: str, at: datetime) -> Rule | None:
    """The rule an approval of ``template`` that finished at ``at`` is awarded under, if any."""
    return next((r for r in in_force(s, at) if r.platform == platform and r.template == template), None)


def get(s: Session, rule_id: int, at: datetime | None = None) -> Rule | None:
    """The rule as it is now (or as it was at ``at``)."""
    q = select(RuleVersion).where(RuleVersion.rule_id == rule_id)
    if at is not None:
        q = q.where(RuleVersion.valid_from <= at)
    v = s.scalar(q.order_by(RuleVersion.version.desc()).limit(1))
    return to_rule(v) if v is not None else None


def version(s: Session, rule_id: int, number: int) -> Rule | None:
    v = s.scalar(select(RuleVersion).where(RuleVersion.rule_id == rule_id, RuleVersion.version == number))
    return to_rule(v) if v is not None else None


def history(s: Session, rule_id: int) -> list[Rule]:
    """Every version of a rule, newest first (the console's rule page)."""
    return [to_rule(v) for v in s.scalars(select(RuleVersion).where(RuleVersion.rule_id == rule_id)
                                          .order_by(RuleVersion.version.desc()))]


def last_change(s: Session) -> datetime | None:
    """When a rule last changed (the seeding aside): what 规则 tells employees."""
    return s.scalar(select(func.max(RuleVersion.changed_at)).where(RuleVersion.valid_from > SINCE_EVER))


def save(s: Session, rule: Rule, *, now: datetime, actor_id: int | None,
         valid_from: datetime | None = None) -> tuple[str, Rule]:
    """Create a rule (``rule.id`` None) or add its next version; ``created``, ``updated`` or ``unchanged``.

    Two active rules may not share a platform and template: an approval must have one meaning.
    """
    old = get(s, rule.id) if rule.id is not None else None
    if rule.id is not None and old is None:
        raise UnknownRule(f"no rule {rule.id}", rule=rule.id)
    if old is not None and old.same_terms(rule):
        return "unchanged", old
    if rule.active:
        clash = next((r for r in current(s) if r.active and r.id != rule.id and
                      (r.platform, r.template) == (rule.platform, rule.template)), None)
        if clash is not None:
            raise InvalidState("template taken", reason="rule_template_taken", name=clash.name, id=clash.id)
    rule_id = rule.id if rule.id is not None else int(s.scalar(select(func.max(RuleVersion.rule_id))) or 0) + 1
    version = (old.version if old is not None else 0) + 1
    s.add(RuleVersion(rule_id=rule_id, version=version, valid_from=valid_from or now, name=rule.name,
                      platform=rule.platform, template=rule.template, points=rule.points,
                      base_points=rule.base_points, tiers=rule.tiers_text(), field=rule.field, category=rule.category,
                      max_count=rule.max_count, max_period=rule.max_period, active=rule.active, changed_by=actor_id,
                      changed_at=now))
    s.flush()
    saved = replace(rule, id=rule_id, version=version, changed_at=now)
    audit(s, "rule_create" if old is None else "rule_update", now=now, actor_id=actor_id,
          detail=f"rule {rule_id} v{version}: {', '.join(differences(old, saved)) or 'created'}")
    return ("created" if old is None else "updated"), saved


def differences(old: Rule | None, new: Rule) -> list[str]:
    """The fields that differ (all of them for a new rule)."""
    skip = {"id", "version", "changed_at"}
    if old is None:
        return []
    a, b = asdict(old), asdict(new)
    return [k for k in a if k not in skip and a[k] != b[k]]


def seed_from_config(s: Session, configured: Iterable[Rule], *, now: datetime) -> list[int]:
    """Load the configuration's rules into a database that never had any; their ids. Valid since ever, so
    approvals that finished before the upgrade are decided exactly as before it."""
    if s.scalar(select(RuleVersion.id).limit(1)) is not None:
        return []
    seeded = [save(s, r, now=now, actor_id=None, valid_from=SINCE_EVER)[1] for r in configured]
    _adopt_history(s, seeded)
    return [r.id or 0 for r in seeded]


def _adopt_history(s: Session, seeded: list[Rule]) -> None:
    """Approvals decided before rules had ids name their rule by its name, and their cap slots by platform and
    template: both get the seeded rule's id (and version 1), so caps keep counting across the upgrade."""
    for r in seeded:
        s.execute(update(ApprovalInstance).where(ApprovalInstance.rule == r.name, ApprovalInstance.rule_id.is_(None))
                  .values(rule_id=r.id, rule_version=1).execution_options(synchronize_session=False))
        s.execute(update(ApprovalSlot).where(ApprovalSlot.rule_key == f"{r.platform}:{r.template}"[:160])
                  .values(rule_key=f"rule:{r.id}").execution_options(synchronize_session=False))


def differs_from_config(s: Session, configured: Iterable[Rule]) -> list[str]:
    """The configured rules (by name) that the database does not hold as they are configured."""
    held = current(s)
    return [c.name for c in configured if not any(h.same_terms(c) for h in held)]
