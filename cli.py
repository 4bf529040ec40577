"""The ``flask --app app <command>`` commands (the README's "CLI commands"; each has ``--help``).

Exit status: 0 success, 1 failure or any rejected input row (good rows still applied), 2 bad usage
(click's own convention for usage errors).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy import select

from storage.errors import CodesKeyMissing, InvalidState, UnknownItem
from storage.models import Employee

CODE_SKIPS = {"duplicate": "already in the pool (or twice in the file)",
              "code_format": "not a code (it has spaces, or is over 200 characters)"}


def _bot():  # type: ignore[no-untyped-def]
    return current_app.extensions["pointsbot"]


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read {path}: {exc}") from None


def register_cli(app: Flask) -> None:
    @app.cli.group("db", help="Database schema commands.")
    def db_group() -> None:
        pass

    @db_group.command("upgrade", help="Create or migrate the schema to the newest revision (safe to run again).")
    def db_upgrade() -> None:
        from storage import rules
        from storage.catalog import differs_from_config, seed_from_config
        from storage.ledger import totals
        from storage.migrate import upgrade

        bot = _bot()
        upgrade(bot.db)
        with bot.db.read_scope() as s:
            fill = totals.missing(s)
        if fill:  # a database from before earned_totals: fill it from the ledger once (resumable by hand)
            click.echo(f"earned totals filled from the ledger: {totals.rebuild(bot.db, bot.settings.tz)} rows")
        with bot.db.session_scope() as s:
            loaded = seed_from_config(s, bot.settings.catalog, now=bot.db.clock())  # once: an empty catalog
            differs = [] if loaded else differs_from_config(s, bot.settings.catalog)
            seeded = rules.seed_from_config(s, bot.settings.rules, now=bot.db.clock())  # once: no rules yet
            rules_differ = [] if seeded else rules.differs_from_config(s, bot.settings.rules)
        click.echo("database is at the newest revision" + (f"; catalog loaded from the configuration: "
                                                           f"{', '.join(loaded)}" if loaded else ""))
        if seeded:
            click.echo(f"earning rules loaded from the configuration: {len(seeded)} (ids {', '.join(map(str, seeded))})")
        if rules_differ:
            click.echo(f"notice: [[rules]] in the configuration differ from the rules in the database for "
                       f"{', '.join(rules_differ)}; the database is used (edit rules in the console or with "
                       f"flask rules import)")
        if differs:
            click.echo(f"notice: [[catalog]] in the configuration differs from the catalog in the database for "
                       f"{', '.join(differs)}; the database is used (edit items in the console or with "
                       f"flask catalog import)")

    @app.cli.command("import-employees", help="Create or update employees from a roster CSV "
                     "(employee_no,name,department,manager_no,role,dingtalk_userid,wecom_userid[,status]).")
    @click.argument("file", type=click.Path(dir_okay=False))
    def import_employees(file: str) -> None:
        from storage.employees import import_roster, read_roster
        from storage.ledger import Ledger

        bot = _bot()
        rows, error = read_roster(_read_text(file))
        if error:
            click.echo(f"rejected: {file}: {error}", err=True)
            sys.exit(1)
        with bot.db.session_scope() as s:
            now = bot.db.clock()
            ledger = Ledger(s, bot.db.clock, bot.settings.points["validity_days"], bot.settings.tz)
            report = import_roster(s, rows, ledger, now=now, budget=bot.settings.points["manager_monthly_budget"],
                                   rollover=bot.settings.points["budget_rollover"], tz=bot.settings.tz)
        click.echo(f"created {len(report.created)}: {', '.join(report.created)}")
        click.echo(f"updated {len(report.updated)}: {', '.join(report.updated)}")
        click.echo(f"bound {len(report.bound)} roster chat ids")
        for label in report.kept_unbound:
            click.echo(f"  kept unbound (unbound earlier; re-link with a bind code): {label}")
        for label in report.conflicts:
            click.echo(f"  not bound (the account is bound to another employee): {label}")
        click.echo(f"rejected {len(report.rejected)}")
        for line, reason in report.rejected:
            click.echo(f"  line {line}: {reason}")
        sys.exit(1 if report.rejected else 0)

    @app.cli.command("check-ledger", help="Verify every ledger invariant; exit 1 listing violations.")
    def check_ledger() -> None:
        from storage.invariants import check_invariants

        bot = _bot()
        with bot.db.session_scope() as s:
            problems = check_invariants(s, bot.settings.tz)
        for p in problems:
            click.echo(p)
        click.echo("ledger OK" if not problems else f"{len(problems)} violation(s)")
        sys.exit(1 if problems else 0)

    @app.cli.command("rebuild-totals", help="Recompute the per-period earned totals (leaderboards, ranks) from the "
                     "ledger, a batch of employees a transaction; safe to run twice, resumable with --start-after.")
    @click.option("--start-after", type=int, default=0, help="Skip employees up to this id (resume a run).")
    @click.option("--batch", type=click.IntRange(min=1), default=2000, help="Employees per transaction.")
    def rebuild_totals(start_after: int, batch: int) -> None:
        from storage.ledger import totals

        bot = _bot()

        def progress(last_id: int, written: int) -> None:
            click.echo(f"up to employee {last_id}: {written} rows")
        written = totals.rebuild(bot.db, bot.settings.tz, batch=batch, start_after=start_after, progress=progress)
        click.echo(f"earned totals rebuilt: {written} rows")

    @app.cli.command("bind-code", help="Issue a one-time binding code (valid 24 h) for EMPLOYEE_NO; prints only the code.")
    @click.argument("employee_no")
    def bind_code(employee_no: str) -> None:
        from storage.bindings import issue_code

        bot = _bot()
        with bot.db.session_scope() as s:
            emp = s.scalar(select(Employee).where(Employee.employee_no == employee_no))
            if emp is None or emp.status != "active":
                click.echo(f"no active employee {employee_no}", err=True)
                sys.exit(1)
            code = issue_code(s, emp, now=bot.db.clock())
        click.echo(code)

    @app.cli.command("console-link", help="Print a single-use HR console login link for EMPLOYEE_NO (a manager, HR or "
                     "admin still employed); exits 1 for anyone else.")
    @click.argument("employee_no")
    @click.option("--minutes", type=click.IntRange(min=1, max=1440), default=None,
                  help="How long the link stays usable (default: [console] link_minutes).")
    def console_link(employee_no: str, minutes: int | None) -> None:
        from storage.console import issue_link
        from storage.errors import DomainError
        from storage.members import by_employee_no

        bot = _bot()
        if not bot.settings.console["enabled"]:
            click.echo("the console is off: set [console] enabled = true", err=True)
            sys.exit(1)
        try:
            with bot.db.session_scope() as s:
                emp = by_employee_no(s, employee_no)
                if emp is None:
                    click.echo(f"no employee {employee_no}", err=True)
                    sys.exit(1)
                token = issue_link(s, emp, bot.db.clock(), minutes or bot.settings.console["link_minutes"], via="cli")
        except DomainError:
            click.echo(f"{employee_no} has no console access (only active managers, HR and admins)", err=True)
            sys.exit(1)
        click.echo(f"{str(bot.settings.server['public_url']).rstrip('/')}/console/login/{token}")

    @app.cli.command("restock", help="Set the remaining stock of SKU to N.")
    @click.argument("sku")
    @click.argument("n", type=click.IntRange(min=0))
    def restock(sku: str, n: int) -> None:
        from storage.catalog import get, set_stock

        bot = _bot()
        with bot.db.session_scope() as s:
            if get(s, sku) is None:
                click.echo(f"unknown sku {sku} (not in the catalog: flask --app app catalog export shows it)", err=True)
                sys.exit(1)
            try:
                set_stock(s, sku, n, now=bot.db.clock(), actor_id=None)
            except InvalidState:
                click.echo(f"{sku}: its stock is its free gift-card codes; add codes with "
                           f"flask --app app catalog codes {sku} FILE", err=True)
                sys.exit(1)
        click.echo(f"{sku}: stock {n}")

    @app.cli.command("reactivate", help="Bring back an employee marked as left.")
    @click.argument("employee_no")
    def reactivate_cmd(employee_no: str) -> None:
        from storage.employees import reactivate
        from storage.ledger import Ledger

        bot = _bot()
        with bot.db.session_scope() as s:
            emp = s.scalar(select(Employee).where(Employee.employee_no == employee_no))
            if emp is None:
                click.echo(f"no employee {employee_no}", err=True)
                sys.exit(1)
            changed = reactivate(s, Ledger(s, bot.db.clock), emp, now=bot.db.clock(), actor_id=None)
        click.echo(f"{employee_no} reactivated" if changed else f"{employee_no} is already active")

    @app.cli.command("award-csv", help="Bulk awards from a CSV (employee_no,points,reason,key); idempotent per key.")
    @click.argument("file", type=click.Path(dir_okay=False))
    def award_csv(file: str) -> None:
        from cards.builders_people import award_notice
        from storage.bulk import award_rows, read_rows

        def notice(points: int, reason: str, balance: int, txn_id: int) -> dict:
            return award_notice(points=points, giver="HR", reason=reason, balance=balance, txn_id=txn_id).to_dict()

        bot = _bot()
        rows, problem = read_rows(_read_text(file))
        if problem:
            click.echo(f"rejected: {problem}", err=True)
            sys.exit(1)
        results = award_rows(bot.db, bot.settings, rows, notice=notice)
        for line, status, detail in results:
            click.echo(f"line {line}: {status} {detail}")
        sys.exit(1 if any(st == "rejected" for _, st, _ in results) else 0)

    @app.cli.group("catalog", help="The reward catalog as a CSV file "
                   "(sku,name,kind,cost,stock,description,active,limit,limit_period,sort,leave_days,charity).")
    def catalog_group() -> None:
        pass

    @catalog_group.command("export", help="Write the whole catalog, inactive items included, to FILE "
                           "(UTF-8 with BOM).")
    @click.argument("file", type=click.Path(dir_okay=False, writable=True))
    def catalog_export(file: str) -> None:
        from storage.catalog_csv import export_text

        _export(export_text, file, "items")

    @catalog_group.command("import", help="Create or update items by sku from FILE (only sku,name,cost required); "
                           "exit 1 if any row was rejected (the good rows are applied).")
    @click.argument("file", type=click.Path(dir_okay=False))
    def catalog_import(file: str) -> None:
        from settings_rules import CONFIG_PROBLEMS
        from storage.catalog_csv import import_rows, read

        _import(read, import_rows, file, CONFIG_PROBLEMS)

    @catalog_group.command("codes", help="Add gift-card codes to SKU's pool from FILE (one code per line, or a CSV's "
                           "first column); codes already in the pool are skipped. Needs gift_cards.codes_key.")
    @click.argument("sku")
    @click.argument("file", type=click.Path(dir_okay=False))
    def catalog_codes(sku: str, file: str) -> None:
        from cards.problems import CODE_HEADERS
        from storage.gift_codes import read_codes
        from storage.services import Services

        bot = _bot()
        codes, problems = read_codes(_read_text(file), CODE_HEADERS)
        try:
            with bot.db.session_scope() as s:
                up = Services(s, bot.settings, bot.db.clock).catalog.add_codes(sku, codes, None)
        except UnknownItem:
            click.echo(f"unknown sku {sku} (flask --app app catalog export lists the catalog)", err=True)
            sys.exit(1)
        except CodesKeyMissing:
            click.echo("gift_cards.codes_key is not set: codes are stored encrypted with it", err=True)
            sys.exit(1)
        except InvalidState:
            click.echo(f"{sku} is not a gift_card item: only gift cards have codes", err=True)
            sys.exit(1)
        click.echo(f"{sku}: batch {up.batch}, added {up.added}, {up.free} free codes now")
        for line, code in sorted(problems + up.skipped):
            click.echo(f"line {line}: skipped: {CODE_SKIPS[code]}", err=True)
        sys.exit(1 if problems else 0)

    @app.cli.group("rules", help="The earning rules as a CSV file "
                   "(id,name,platform,template,points,base_points,tiers,field,category,max_count,max_period,active).")
    def rules_group() -> None:
        pass

    @rules_group.command("export", help="Write every rule as it is now, inactive ones too, to FILE (UTF-8 with BOM).")
    @click.argument("file", type=click.Path(dir_okay=False, writable=True))
    def rules_export(file: str) -> None:
        from storage.rules_csv import export_text

        _export(export_text, file, "rules")

    @rules_group.command("import", help="Create rules (empty id) or add a new version of a rule (its id) from FILE, "
                         "valid from now; exit 1 if any row was rejected (the good rows are applied).")
    @click.argument("file", type=click.Path(dir_okay=False))
    def rules_import(file: str) -> None:
        from settings_rules import RULE_PROBLEMS
        from storage.rules_csv import import_rows, read

        _import(read, import_rows, file, RULE_PROBLEMS)

    @app.cli.command("spool-retry", help="Replay the spooled events a bug stopped (held in the spool's failed.held), "
                     "after the fix; exit 1 if any is held again.")
    def spool_retry() -> None:
        from bot.spool import Spooler

        bot = _bot()
        queued = bot.spool.retry_failed()
        applied, empty = bot.spool.replay(Spooler(bot.spool, bot.adapters).apply)
        held = bot.spool.held()
        click.echo(f"queued {queued} held event(s); replayed {applied}; held again {held}"
                   + ("" if empty else "; the database is still away or another process is replaying: run again"))
        sys.exit(1 if held or not empty else 0)

    @app.cli.command("audit-bindings", help="List bindings of leavers, chat accounts bound to two employees, "
                     "and bindings unused for N days.")
    @click.option("--days", default=90, show_default=True, type=click.IntRange(min=1))
    def audit_bindings(days: int) -> None:
        from cards.messages import binding_audit_title
        from storage.bindings import binding_audit

        bot = _bot()
        with bot.db.session_scope() as s:
            report = binding_audit(s, now=bot.db.clock(), days=days)
        for kind, rows in report.items():
            click.echo(f"{binding_audit_title(kind, days)} ({kind}): {len(rows)}")
            for r in rows:
                extra = f" roster={r.roster_no}" if r.roster_no else ""
                extra += f" last_used={r.last_used:%Y-%m-%d}" if r.last_used else ""
                click.echo(f"  {r.employee_no} {r.name} {r.platform}:{r.platform_user_id}{extra}")

    @app.cli.command("scheduler", help="Run the scheduled jobs and the outbox loop in the foreground.")
    def scheduler_cmd() -> None:
        from scheduler import serve

        serve(current_app._get_current_object())  # type: ignore[attr-defined]

    @app.cli.command("run-job", help="Run one job now for the current period (claimed like the scheduler does).")
    @click.argument("name")
    @click.option("--force", is_flag=True, help="Run again even if this period already ran.")
    def run_job(name: str, force: bool) -> None:
        from scheduler.jobs import JOBS, run_job_now

        if name not in JOBS:
            raise click.BadParameter(f"unknown job {name}; one of: {', '.join(sorted(JOBS))}", param_hint="NAME")
        outcome = run_job_now(current_app._get_current_object(), name, force=force)  # type: ignore[attr-defined]
        click.echo(outcome)


def _export(export_text: Any, file: str, what: str) -> None:
    """The catalog's or the rules' CSV written to FILE."""
    bot = _bot()
    with bot.db.read_scope() as s:
        text = export_text(s)
    Path(file).write_text(text, encoding="utf-8")
    click.echo(f"wrote {text.count(chr(10)) - 1} {what} to {file}")


def _import(read: Any, import_rows: Any, file: str, words: dict[str, str]) -> None:
    """The catalog's or the rules' CSV imported from FILE; its report (created, updated, unchanged; each rejected
    row with its line and why), exit 1 if any row was rejected, like import-employees."""
    bot = _bot()
    rows, problem = read(_read_text(file))
    if problem:
        click.echo(f"rejected: {file}: {problem}", err=True)
        sys.exit(1)
    with bot.db.session_scope() as s:
        report = import_rows(s, rows, now=bot.db.clock(), actor_id=None)
    for label in ("created", "updated", "unchanged"):
        refs = getattr(report, label)
        click.echo(f"{label} {len(refs)}{': ' + ', '.join(refs) if refs else ''}")
    for line, field, code in report.rejected:
        click.echo(f"line {line}: rejected: {field}: {words.get(code, code)}", err=True)
    sys.exit(1 if report.rejected else 0)
