"""Shared fixtures: a database per engine, the app from create_app(mapping), a fixed clock.

``TEST_DATABASE_URLS`` (space-separated) adds PostgreSQL/MariaDB to SQLite. Each test session
creates its own database on those servers (named after the process id) and drops it at the end,
so parallel runs on one machine never see each other's rows.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from storage.db import Database
from storage.models import Base


def _server_urls() -> list[str]:
    return [u for u in os.environ.get("TEST_DATABASE_URLS", "").split() if u]


def _engine_name(url: str) -> str:
    return make_url(url).get_backend_name()


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, str]]:
    """{engine name: URL of a fresh database created for this session}."""
    created: dict[str, str] = {}
    admin: list[tuple[str, str]] = []
    for url in _server_urls():
        u = make_url(url)
        name = f"{u.database}_pb{os.getpid()}"
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if u.get_backend_name() == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        engine.dispose()
        created[u.get_backend_name()] = u.set(database=name).render_as_string(hide_password=False)
        admin.append((url, name))
    yield created
    for url, name in admin:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if _engine_name(url) == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()


def pytest_report_header(config: pytest.Config) -> str:
    engines = ["sqlite", *(_engine_name(u) for u in _server_urls())]
    return f"database engines: {', '.join(engines)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that take ``engine_url`` run once per engine (SQLite always)."""
    if "engine_name" in metafunc.fixturenames:
        names = ["sqlite", *(_engine_name(u) for u in _server_urls())]
        metafunc.parametrize("engine_name", names)


@pytest.fixture
def engine_url(engine_name: str, server_databases: dict[str, str], tmp_path) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return server_databases[engine_name]


_CREATED: set[str] = set()  # server databases whose tables create_all made in this session


def reset_schema(db: Database) -> None:
    """Fresh tables, and no Alembic revision left by an earlier test that migrated the same database.

    Dropping and creating every table took 170 ms on PostgreSQL and 250 ms on MariaDB, before each of
    hundreds of tests; emptying the tables the last test used (and restarting their ids, which tests
    name: R1, E1) takes a few. Whenever the tables are not create_all's (a migration test ran), they are
    made again.
    """
    if db.dialect != "sqlite" and db.url in _CREATED and _emptied(db):
        return
    Base.metadata.drop_all(db.engine)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    Base.metadata.create_all(db.engine)
    if db.dialect != "sqlite":
        _CREATED.add(db.url)


def _emptied(db: Database) -> bool:
    """Empty the tables that hold rows or used ids; False when the tables are not create_all's."""
    names = [t.name for t in Base.metadata.sorted_tables]
    pg = db.dialect == "postgresql"
    quote = (lambda n: f'"{n}"') if pg else (lambda n: f"`{n}`")
    with db.engine.begin() as conn:
        if set(inspect(conn).get_table_names()) != set(names):
            return False
        probe = " UNION ALL ".join(f"SELECT '{n}' FROM (SELECT 1 AS x FROM {quote(n)} LIMIT 1) AS t{i}"
                                   for i, n in enumerate(names))
        used = set(conn.exec_driver_sql(probe).scalars())
        if pg:  # a sequence a rolled-back insert moved on has no row to show for it
            used |= {s[:-len("_id_seq")] for s in conn.exec_driver_sql(
                "SELECT sequencename FROM pg_sequences WHERE last_value IS NOT NULL").scalars()}
        else:
            used |= set(conn.exec_driver_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
                "AND auto_increment > 1").scalars())
        used &= set(names)
        if not used:
            return True
        if pg:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(map(quote, sorted(used)))} RESTART IDENTITY CASCADE")
        else:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for n in sorted(used):
                conn.exec_driver_sql(f"TRUNCATE {quote(n)}")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    return True


class FakeClock:
    """A settable clock (naive UTC), shared by everything a test builds."""

    def __init__(self, start: datetime = datetime(2026, 3, 10, 2, 0, 0)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqlite_db(tmp_path, clock) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'unit.db'}", clock=clock)
    db.create_all()
    yield db
    db.dispose()


@pytest.fixture
def engine_db(engine_url: str, clock) -> Iterator[Database]:
    """A clean database on the parametrised engine."""
    db = Database(engine_url, clock=clock)
    reset_schema(db)
    yield db
    db.dispose()


# ---- secrets never reach the logs (T12) -----------------------------------------------------------
import logging  # noqa: E402
import re  # noqa: E402

_LOG_RECORDS: list[str] = []
LEAK_PATTERNS = [
    re.compile(r"access_token=(?!\*)[^&\s\"']+"),
    re.compile(r"<FromUserName>"),  # a decrypted WeCom message body
    re.compile(r'"senderStaffId"'),  # a DingTalk robot message body
    re.compile(r"GIFTCODE-"),  # a gift-card code of the tests (tests/e2e/test_gift_cards.py): only its owner sees it
]


class _Capture(logging.Handler):
    """Keeps each record as the JSON log line it would be (``[server] log_format = "json"``: the context
    fields included), with the text format's traceback when there is one."""

    def emit(self, record: logging.LogRecord) -> None:
        from telemetry import JsonFormatter

        try:
            _LOG_RECORDS.append(JsonFormatter().format(record)
                                + (logging.Formatter().format(record) if record.exc_info else ""))
        except Exception:
            pass


def known_secrets() -> list[str]:
    from tests.e2e.conftest import DINGTALK, WECOM

    keys = ("secret", "token", "encoding_aes_key", "contacts_token", "contacts_encoding_aes_key", "app_secret",
            "aes_key", "card_api_secret")
    return [v for conf in (WECOM, DINGTALK) for k, v in conf.items() if k in keys and v]


def pytest_sessionstart(session: pytest.Session) -> None:
    from telemetry import ContextFilter

    handler = _Capture(level=logging.INFO)
    handler.addFilter(ContextFilter())
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    secrets = known_secrets()
    leaks = [line for line in _LOG_RECORDS
             if any(s in line for s in secrets) or any(p.search(line) for p in LEAK_PATTERNS)]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        engines = ["sqlite", *(_engine_name(u) for u in _server_urls())]
        reporter.write_line(f"database engines in this run: {', '.join(engines)}")
        reporter.write_line(f"log scan: {len(_LOG_RECORDS)} log records at INFO and above checked for secrets, "
                            f"tokens and message bodies: {len(leaks)} leak(s)")
        for line in leaks[:10]:
            reporter.write_line(f"  LEAK: {line[:200]}")
    if leaks and session.exitstatus == 0:
        session.exitstatus = 1
