"""The services of one transaction: what a chat handler, a job or an edge (the HR console, next) calls.

Why a facade over the storage modules: a caller should pass what an operation is about (who, which
order, how many points), not the plumbing (the session, the clock, the settings, the ledger), and the
console must reach exactly the operations the chat handlers reach, with the same checks. Each service
binds one module's operations to the transaction; the modules stay plain functions, tested on their own.
"""
from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any, Callable

from sqlalchemy.orm import Session

from settings import CatalogItem, Rule, Settings
from storage import (appeals, approvals, bindings, budgets, catalog, catalog_csv, console, employees, gift_codes,
                     leavers, members, orders, outbox, queries, rules, rules_csv, sent_cards)
from storage.errors import NotPermitted
from storage.ledger import Ledger
from storage.models import Appeal, Binding, ConsoleLogin, Employee, Item, Order, Txn, UnbindRequest


class _Bound:
    def __init__(self, sv: "Services") -> None:
        self.s, self.settings, self.clock = sv.session, sv.settings, sv.clock
        self._sv = sv

    @property
    def ledger(self) -> Ledger:
        return self._sv.ledger


class Orders(_Bound):
    def available_points(self, employee_id: int) -> int:
        return orders.available_points(self.s, employee_id)

    def item(self, token: str) -> Item:
        return catalog.resolve(self.s, token)

    def get(self, ref: int | str) -> Order:
        return orders.get(self.s, ref, self.clock())

    def list_for(self, employee: Employee, limit: int = 10) -> list[Order]:
        return orders.list_for(self.s, employee, self.clock(), limit)

    def to_fulfil(self, limit: int) -> tuple[list[tuple[Order, str]], int]:
        """The oldest orders awaiting fulfilment with their requester's name, and how many there are."""
        rows = orders.pending_fulfilment(self.s, limit)
        names = {o.employee_id: queries.employee(self.s, o.employee_id) for o in rows}
        return ([(o, names[o.employee_id].name if names[o.employee_id] else "?") for o in rows],
                orders.pending_fulfilment_count(self.s))

    def fulfillers(self) -> list[Employee]:
        return orders.fulfillers(self.s)

    def start(self, employee: Employee, item_token: str, qty: int) -> Order:
        return orders.start(self.s, employee, item_token, qty, self.clock(), self.settings.tz)

    def confirm(self, employee: Employee, ref: int | str) -> Order:
        return orders.confirm(self.s, self.ledger, employee, ref, self.clock(), self.settings.tz)

    def cancel(self, employee: Employee, ref: int | str) -> Order:
        return orders.cancel(self.s, self.ledger, employee, ref, self.clock())

    def fulfil(self, actor: Employee, ref: int | str, note: str = "") -> Order:
        return orders.fulfil(self.s, self.ledger, actor, ref, self.clock(), note=note)

    def reject(self, actor: Employee, ref: int | str, note: str = "") -> Order:
        return orders.reject(self.s, self.ledger, actor, ref, self.clock(), note=note)

    def refund(self, actor: Employee, ref: int | str, note: str) -> Order:
        return orders.refund(self.s, self.ledger, actor, ref, self.clock(), note)

    def with_codes(self, orders_: list[Order]) -> set[int]:
        """Which of these orders got gift-card codes."""
        return gift_codes.order_has_codes(self.s, [o.id for o in orders_])

    def codes_of(self, orders_: list[Order]) -> dict[int, list[str]]:
        """The gift-card codes of these orders, opened: only for their owner's 我的订单 in a one-to-one chat."""
        vault = gift_codes.Vault(self.settings.gift_cards["codes_key"])
        return {o.id: gift_codes.reveal(self.s, vault, o.id) for o in orders_}


class Members(_Bound):
    def resolve(self, platform: str, user_id: str) -> Employee | None:
        """Writes: binds a roster user on first use and stamps the binding's last use (storage/members.py)."""
        return members.resolve_member(self.s, platform, user_id, self.clock())

    def identify(self, platform: str,
                 user_id: str) -> tuple[Employee | members.Member | None, members.MemberUse | None]:
        """Reads only: the member, and what ``resolve`` would write for them (storage/members.py)."""
        return members.identify(self.s, platform, user_id, self.clock())

    def get(self, employee_id: int) -> Employee | None:
        return queries.employee(self.s, employee_id)

    def find(self, token: str, platform: str, mentions: tuple[str, ...] = ()) -> Employee:
        return members.find_person(self.s, token, platform, mentions)

    def bound_ids(self, employee_id: int) -> dict[str, str]:
        return members.bound_ids(self.s, employee_id)

    def binding_for(self, platform: str, user_id: str) -> Binding | None:
        return members.binding_for(self.s, platform, user_id)

    def bind(self, employee: Employee, platform: str, user_id: str, *, actor_id: int | None, how: str) -> None:
        members.bind(self.s, employee, platform, user_id, now=self.clock(), actor_id=actor_id, how=how)

    def reactivate(self, employee: Employee, by: Employee) -> bool:
        """Back from left: the wallet unfrozen; False when they were active already (storage/employees.py)."""
        return employees.reactivate(self.s, self.ledger, employee, now=self.clock(), actor_id=by.id)

    def in_team(self, manager_id: int, employee_id: int) -> bool:
        """Below the manager in the reporting tree, directly or not (storage/members.py ``team``)."""
        return members.in_team(self.s, manager_id, employee_id)

    def left(self, platform: str, user_id: str) -> leavers.LeaverReport | None:
        """A platform says this account's person left: unbind, freeze, report (storage/leavers.py)."""
        return leavers.member_left(self.s, self.ledger, platform, user_id, now=self.clock())


class Catalog(_Bound):
    def shelf(self) -> list[Item]:
        """The active items in shop order: what ``商城`` lists and its numbers mean (storage/catalog.py)."""
        return catalog.items(self.s, active_only=True)

    def all(self) -> list[Item]:
        return catalog.items(self.s)

    def get(self, sku: str) -> Item | None:
        return catalog.get(self.s, sku)

    def save(self, item: CatalogItem, actor: Employee) -> str:
        """Create or update an item (HR and admins only: the console checks the role, this checks it again)."""
        if actor.role not in orders.FULFILLERS:
            raise NotPermitted("not HR", reason="catalog_hr_only")
        return catalog.save(self.s, item, now=self.clock(), actor_id=actor.id)

    def import_csv(self, rows: list[tuple[int, dict[str, str]]], actor: Employee) -> catalog_csv.CatalogImport:
        if actor.role not in orders.FULFILLERS:
            raise NotPermitted("not HR", reason="catalog_hr_only")
        return catalog_csv.import_rows(self.s, rows, now=self.clock(), actor_id=actor.id)

    def add_codes(self, sku: str, codes: list[tuple[int, str]], actor: Employee | None) -> gift_codes.Upload:
        """Add gift-card codes to an item's pool (HR and admins; ``actor`` None is the operator's CLI)."""
        if actor is not None and actor.role not in orders.FULFILLERS:
            raise NotPermitted("not HR", reason="catalog_hr_only")
        vault = gift_codes.Vault(self.settings.gift_cards["codes_key"])
        return gift_codes.add(self.s, vault, sku, codes, now=self.clock(), actor_id=actor.id if actor else None)

    def pools(self) -> dict[str, tuple[int, int]]:
        return gift_codes.pools(self.s)

    def pool_running_low(self, sku: str) -> tuple[int, int] | None:
        """(free codes, upload number) when the item's pool is at or below ``gift_cards.low_stock``, else None."""
        if not gift_codes.pooled(self.s, sku):
            return None
        free = catalog.stock_of(self.s, sku) or 0
        return (free, gift_codes.batch_of(self.s, sku)) if free <= self.settings.gift_cards["low_stock"] else None


class Rules(_Bound):
    """Earning rules as versioned data (storage/rules.py); changes by HR and admins only."""

    def current(self) -> list[Rule]:
        return rules.current(self.s)

    def get(self, rule_id: int) -> Rule | None:
        return rules.get(self.s, rule_id)

    def last_change(self) -> datetime | None:
        return rules.last_change(self.s)

    def history(self, rule_id: int) -> list[Rule]:
        return rules.history(self.s, rule_id)

    def save(self, rule: Rule, actor: Employee) -> tuple[str, Rule]:
        if actor.role not in orders.FULFILLERS:
            raise NotPermitted("not HR", reason="rules_hr_only")
        return rules.save(self.s, rule, now=self.clock(), actor_id=actor.id)

    def import_csv(self, rows: list[tuple[int, dict[str, str]]], actor: Employee) -> rules_csv.RulesImport:
        if actor.role not in orders.FULFILLERS:
            raise NotPermitted("not HR", reason="rules_hr_only")
        return rules_csv.import_rows(self.s, rows, now=self.clock(), actor_id=actor.id)


class Budgets(_Bound):
    """Per-manager budgets and top-ups (storage/budgets.py); set by HR and admins only."""

    def managers(self) -> list[Employee]:
        """The active managers, by department: who has a budget."""
        return budgets.managers(self.s)

    def manager(self, employee_no: str) -> Employee:
        return budgets.manager(self.s, employee_no)

    def terms(self, manager_ids: list[int]) -> dict[int, budgets.Terms]:
        return budgets.terms(self.s, self.settings.points, manager_ids)

    def set_terms(self, manager: Employee, monthly: int | None, rollover: bool | None, actor: Employee) -> None:
        if actor.role not in orders.FULFILLERS:
            raise NotPermitted("not HR", reason="budgets_hr_only")
        budgets.set_terms(self.s, manager, monthly, rollover, now=self.clock(), actor_id=actor.id)

    def top_up(self, manager: Employee, points: int, reason: str, actor: Employee, key: str) -> Txn:
        if actor.role not in orders.FULFILLERS:
            raise NotPermitted("not HR", reason="budgets_hr_only")
        return budgets.top_up(self.s, self.ledger, manager, points, reason, key=key, now=self.clock(), actor_id=actor.id)


class Queries(_Bound):
    def sample_employee_no(self, not_id: int | None) -> str | None:
        return queries.sample_employee_no(self.s, not_id)

    def statement(self, employee_id: int, days: int) -> queries.Statement:
        return queries.statement(self.s, employee_id, self.clock(), days=days)

    def history(self, employee_id: int, page: int, per_page: int) -> queries.HistoryPage:
        return queries.history(self.s, employee_id, page=page, per_page=per_page)

    def leaderboard(self, start: datetime, end: datetime, *, department: str | None = None,
                    top_n: int = 10, period_key: str | None = None) -> list[queries.BoardRow]:
        return queries.leaderboard(self.s, start, end, department=department, top_n=top_n, period_key=period_key)

    def txn(self, txn_id: int) -> Txn | None:
        return queries.txn(self.s, txn_id)

    def recent_twin(self, *, kind: str, actor_id: int, employee_id: int, amount: int, since: datetime) -> Txn | None:
        return queries.recent_twin(self.s, kind=kind, actor_id=actor_id, employee_id=employee_id, amount=amount,
                                   since=since)

    def budget_usage(self, manager_id: int) -> tuple[int, int]:
        return queries.budget_usage(self.s, manager_id, self.clock())

    def leavers_with_points(self, limit: int) -> tuple[list[tuple[Employee, int]], int]:
        return queries.leavers_with_points(self.s, limit)


class Appeals(_Bound):
    def create(self, employee: Employee, txn_id: int | None, reason: str) -> Appeal:
        return appeals.create(self.s, employee, txn_id, reason, now=self.clock())

    def reviewers(self, appeal: Appeal) -> list[Employee]:
        return appeals.reviewers(self.s, appeal)

    def open_for(self, decider: Employee) -> list[Appeal]:
        return appeals.open_for(self.s, decider)

    def decide(self, appeal_id: int, decider: Employee, *, approve: bool, points: int | None = None,
               note: str = "") -> appeals.Decision:
        return appeals.decide(self.s, self.ledger, appeal_id, decider, approve=approve,
                              max_award=int(self.settings.points["max_award"]), points=points, note=note, now=self.clock())


class Bindings(_Bound):
    def redeem_code(self, employee_no: str, code: str) -> Employee:
        return bindings.redeem_code(self.s, employee_no, code, self.clock())

    def request_unbind(self, target: Employee, by: Employee, platform: str) -> UnbindRequest:
        return bindings.request_unbind(self.s, target, by, platform, self.clock())

    def get(self, request_id: int) -> UnbindRequest | None:
        return bindings.unbind_request(self.s, request_id)

    def complete(self, req: UnbindRequest, by: Employee) -> int:
        return bindings.complete_unbind(self.s, req, by, self.clock())

    def force_unbind(self, target: Employee, by: Employee, platform: str, reason: str) -> int:
        return bindings.force_unbind(self.s, target, by, platform, reason, self.clock())

    def issue_code(self, employee: Employee) -> str:
        """A fresh one-time code (the older ones stop working); only its hash is stored."""
        return bindings.issue_code(self.s, employee, self.clock())


class Console(_Bound):
    """The HR console's logins and reads (storage/console.py); its writes go through the other services."""

    def issue_link(self, employee: Employee, via: str) -> str:
        return console.issue_link(self.s, employee, self.clock(), self.settings.console["link_minutes"], via)

    def redeem_link(self, token: str, ip: str) -> ConsoleLogin:
        return console.redeem_link(self.s, token, self.clock(), ip)

    def session_member(self, login_id: int, employee_id: int, role: str) -> Employee | None:
        return console.session_member(self.s, login_id, employee_id, role, self.clock(),
                                      self.settings.console["session_hours"])

    def end_session(self, login_id: int, ip: str) -> None:
        console.end_session(self.s, login_id, self.clock(), ip)

    def search(self, viewer: Employee, q: str, limit: int = 50) -> tuple[list[Employee], int]:
        return console.search(self.s, viewer, q, limit)

    def may_see(self, viewer: Employee, employee_id: int) -> bool:
        return console.may_see(self.s, viewer, employee_id)

    def person(self, employee: Employee) -> console.Person:
        return console.person(self.s, employee)

    def audit_page(self, viewer: Employee, f: console.AuditFilter, page: int) -> tuple[list[Any], int]:
        return console.audit_page(self.s, viewer, f, page)

    def audit_actions(self) -> list[str]:
        return console.audit_actions(self.s)

    def orders_queue(self, viewer: Employee, f: console.OrderFilter) -> list[tuple[Order, Employee, Item | None]]:
        return console.orders_queue(self.s, viewer, f, self.clock())

    def appeals_queue(self, viewer: Employee) -> list[tuple[Appeal, Employee]]:
        return console.appeals_queue(self.s, viewer)


class Cards(_Bound):
    def close(self, subject: str, button: str, message: str, decider_id: int, key: str) -> None:
        """Every card about ``subject`` shows the decision (storage/sent_cards.py, bot/cards_closed.py)."""
        sent_cards.queue_close(self.s, subject, button, message, members.bound_ids(self.s, decider_id), key,
                               self.clock())


class Approvals(_Bound):
    def on_change(self, **change: Any) -> approvals.Decision:
        """One approval state change (storage/approvals.py ``on_approval``: platform, instance_id, template,
        status, applicant_user_id, title, form, finished_at)."""
        return approvals.on_approval(self.s, self.ledger, self.settings, now=self.clock(), **change)


class Services:
    """Built once per event (or job step) around its transaction; each service made on first use."""

    def __init__(self, session: Session, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.session, self.settings, self.clock = session, settings, clock

    @cached_property
    def ledger(self) -> Ledger:
        """The writer of points, bound to this transaction."""
        return Ledger(self.session, self.clock, self.settings.points["validity_days"], self.settings.tz)

    @cached_property
    def orders(self) -> Orders:
        return Orders(self)

    @cached_property
    def members(self) -> Members:
        return Members(self)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self)

    @cached_property
    def rules(self) -> Rules:
        return Rules(self)

    @cached_property
    def budgets(self) -> Budgets:
        return Budgets(self)

    @cached_property
    def queries(self) -> Queries:
        return Queries(self)

    @cached_property
    def appeals(self) -> Appeals:
        return Appeals(self)

    @cached_property
    def bindings(self) -> Bindings:
        return Bindings(self)

    @cached_property
    def approvals(self) -> Approvals:
        return Approvals(self)

    @cached_property
    def console(self) -> Console:
        return Console(self)

    @cached_property
    def cards(self) -> Cards:
        return Cards(self)

    def announce(self, card: dict[str, Any], *, key: str) -> int:
        """Post a card to every ``[announcements] groups`` chat, once per key; how many groups."""
        groups = self.settings.announcements["groups"]
        for g in groups:
            payload = {"platform": g["platform"], "chat_id": g["chat_id"], "card": card} | (
                {"webhook_key": g["webhook_key"]} if g.get("webhook_key") else {})
            outbox.enqueue(self.session, "group", payload, now=self.clock(), idem_key=f"{key}:{g['platform']}:"
                           f"{g['chat_id']}"[:191], platform=g["platform"],
                           destination=f"{g['platform']}:group:{g['chat_id']}"[:191])
        return len(groups)

    def task(self, name: str, payload: dict[str, Any], *, key: str, platform: str = "") -> None:
        """Queue slow work for the outbox (``{"task": name}``, run by ``PointsBot.tasks`` in app.py), once per key."""
        outbox.enqueue(self.session, "task", {"task": name, **payload}, now=self.clock(), idem_key=key, platform=platform)

    def notify(self, employee_id: int, card: dict[str, Any], *, key: str | None = None,
               codes_of: int | None = None) -> None:
        """Queue a message to an employee on every platform they are bound on (resolved at send time).

        ``card`` is a card's ``to_dict()``. A keyed notice is about one event (its key names it), so its
        content is unique and WeCom may drop a duplicate of it (bot/delivery.py).
        """
        payload = ({"employee_id": employee_id, "card": card} | ({"duplicate_check": True} if key else {})
                   | ({"codes_of": codes_of} if codes_of is not None else {}))
        outbox.enqueue(self.session, "notice", payload, now=self.clock(), idem_key=key)
