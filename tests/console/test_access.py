"""Who gets into the console, and how: single-use links by POST, sessions that end, CSRF, every page × role."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from settings import ConfigError, build_settings
from storage.console import issue_link
from storage.errors import NotPermitted
from storage.models import AuditLog, ConsoleLogin, Employee
from tests.conftest import reset_schema
from tests.console.conftest import csrf_of, link, login

ROLES = ("anonymous", "E1", "M1", "H1", "A1")


def names(html: str) -> set[str]:
    """The people a page lists (below the header, which names the signed-in member)."""
    main = html.split("<main>", 1)[-1]
    return {n for n in ("曹管理", "韩梅", "周总", "王经理", "张三", "李四", "孙八") if n in main}


# ---- configuration ------------------------------------------------------------------------------
def test_the_secret_key_is_required_and_named() -> None:
    with pytest.raises(ConfigError, match=r"^console\.secret_key: required"):
        build_settings({"console": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"^console\.secret_key"):
        build_settings({"console": {"enabled": True, "secret_key": "short"}})
    demo = build_settings({"console": {"enabled": True}, "playground": {"enabled": True}})
    assert len(demo.console["secret_key"]) >= 32  # the local demo gets a random one per start
    assert build_settings({}).console["enabled"] is False


def test_off_by_default_nothing_is_served(engine_url: str, clock: Any) -> None:
    from app import create_app
    from storage.db import Database

    db = Database(engine_url, clock=clock)
    reset_schema(db)  # a database left by another test may hold gift-card codes, which need a key to start
    app = create_app({"database": {"url": engine_url}}, db=db)
    assert app.test_client().get("/console/login").status_code == 404


# ---- links --------------------------------------------------------------------------------------
def test_a_link_works_once_and_only_by_post(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    token = link(app, "H1")
    for _ in range(2):  # link previews and scanners GET it: that uses nothing up
        page = client.get(f"/console/login/{token}")
        assert page.status_code == 200 and "进入后台" in page.get_data(as_text=True)
    resp = client.post(f"/console/login/{token}", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie and "Path=/console" in cookie
    assert client.get("/console/people").status_code == 200
    other = app.test_client()
    page = other.get(f"/console/login/{token}")
    again = other.post(f"/console/login/{token}", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert again.status_code == 403 and "已使用或已过期" in again.get_data(as_text=True)
    assert other.get("/console/people").status_code == 302
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        assert s.scalar(select(ConsoleLogin.token_hash)) != token  # only a hash is stored
        assert [a for a in s.scalars(select(AuditLog.action)) if a.startswith("console")] == \
            ["console_link", "console_login"]


def test_an_expired_or_made_up_link_says_how_to_get_a_new_one(app: Any, ids: dict[str, int], clock: Any) -> None:
    client = app.test_client()
    token = link(app, "H1", minutes=10)
    clock.advance(minutes=11)
    page = client.get(f"/console/login/{token}")
    resp = client.post(f"/console/login/{token}", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 403 and "发送「后台」" in resp.get_data(as_text=True)
    resp = client.post("/console/login/made-up", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 403 and "无效" in resp.get_data(as_text=True)


def test_employees_and_leavers_get_no_link(app: Any, ids: dict[str, int], clock: Any) -> None:
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        with pytest.raises(NotPermitted):
            issue_link(s, s.get(Employee, ids["E1"]), clock(), 10, via="test")
        s.get(Employee, ids["M1"]).status = "left"
    with bot.db.session_scope() as s:
        with pytest.raises(NotPermitted):
            issue_link(s, s.get(Employee, ids["M1"]), clock(), 10, via="test")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["console-link", "E1"]).exit_code == 1
    assert runner.invoke(args=["console-link", "M1"]).exit_code == 1
    ok = runner.invoke(args=["console-link", "h1", "--minutes", "5"])
    assert ok.exit_code == 0 and ok.output.startswith("https://points.example.test/console/login/")
    assert "--minutes" in runner.invoke(args=["console-link", "--help"]).output


def test_csrf_is_enforced_on_every_form(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    token = link(app, "H1")
    client.get(f"/console/login/{token}")
    assert client.post(f"/console/login/{token}").status_code == 400  # no token: the link is not used up
    login(client, app, "H1")
    assert client.post("/console/logout").status_code == 400
    assert client.get("/console/people").status_code == 200


# ---- sessions end -------------------------------------------------------------------------------
@pytest.mark.parametrize("change", ["left", "role", "logout", "age"])
def test_a_session_ends_at_once(app: Any, ids: dict[str, int], clock: Any, change: str) -> None:
    client = app.test_client()
    login(client, app, "H1")
    bot = app.extensions["pointsbot"]
    if change == "logout":
        page = client.get("/console/people").get_data(as_text=True)
        stolen = client.get_cookie("pointsbot_console", path="/console").value
        assert client.post("/console/logout", data={"csrf_token": csrf_of(page)}).status_code == 302
        client.set_cookie("pointsbot_console", stolen, path="/console")  # a copy of the cookie no longer works
    elif change == "age":
        clock.advance(hours=8, seconds=1)
    else:
        with bot.db.session_scope() as s:
            emp = s.get(Employee, ids["H1"])
            if change == "left":
                emp.status = "left"
            else:
                emp.role = "employee"
    resp = client.get("/console/people")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/console/login")
    assert "韩梅" not in resp.get_data(as_text=True)


# ---- every page × role --------------------------------------------------------------------------
EXPECTED_PEOPLE = {"M1": {"王经理", "张三", "李四"}, "H1": {"曹管理", "韩梅", "周总", "王经理", "张三", "李四", "孙八"},
                   "A1": {"曹管理", "韩梅", "周总", "王经理", "张三", "李四", "孙八"}}


@pytest.mark.parametrize("role", ROLES)
def test_every_page_by_role(app: Any, ids: dict[str, int], role: str) -> None:
    client = app.test_client()
    if role == "E1":
        with pytest.raises(NotPermitted):
            link(app, "E1")
        role = "anonymous"  # an employee never gets a session
    if role != "anonymous":
        login(client, app, role)
    people = client.get("/console/people")
    e1, x1 = client.get(f"/console/people/{ids['E1']}"), client.get(f"/console/people/{ids['X1']}")
    audit = client.get("/console/audit")
    if role == "anonymous":
        for resp in (people, e1, x1, audit):
            assert resp.status_code == 302 and resp.headers["Location"].endswith("/console/login")
            assert "张三" not in resp.get_data(as_text=True)
        return
    shown = names(people.get_data(as_text=True))
    assert shown == EXPECTED_PEOPLE[role], shown
    assert e1.status_code == 200 and "季度之星" in e1.get_data(as_text=True)  # E1 is in everyone's view
    if role == "M1":
        assert x1.status_code == 404 and "值班" not in x1.get_data(as_text=True)
        assert audit.status_code == 403 and "console_login" not in audit.get_data(as_text=True)
    else:
        assert x1.status_code == 200 and "值班" in x1.get_data(as_text=True)
        assert audit.status_code == 200 and "console_login" in audit.get_data(as_text=True)


def test_a_skip_level_manager_sees_the_whole_tree(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    login(client, app, "B1")
    assert names(client.get("/console/people").get_data(as_text=True)) == {"周总", "王经理", "张三", "李四"}
    assert client.get(f"/console/people/{ids['E2']}").status_code == 200


def test_user_text_is_escaped_and_headers_are_strict(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    login(client, app, "H1")
    resp = client.get(f"/console/people/{ids['E2']}")
    html = resp.get_data(as_text=True)
    assert "&lt;b&gt;李四&lt;/b&gt;" in html and "<b>李四</b>" not in html
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Referrer-Policy"] == "same-origin"


def test_search_and_the_audit_filters(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    login(client, app, "A1")
    assert names(client.get("/console/people?q=e1").get_data(as_text=True)) == {"张三"}
    assert names(client.get("/console/people?q=%").get_data(as_text=True)) == set()  # no wildcard injection
    html = client.get("/console/audit?action=console_login&actor=A1").get_data(as_text=True)
    assert "共 1 条" in html and "曹管理" in html
    bad = client.get("/console/audit?start=2026-13-01")
    assert bad.status_code == 200 and "格式不对" in bad.get_data(as_text=True)
    assert "共 0 条" in client.get("/console/audit?employee=nobody").get_data(as_text=True)


def test_login_and_logout_are_audited_with_where_from(app: Any, ids: dict[str, int]) -> None:
    client = app.test_client()
    login(client, app, "H1")
    page = client.get("/console/people").get_data(as_text=True)
    client.post("/console/logout", data={"csrf_token": csrf_of(page)}, environ_base={"REMOTE_ADDR": "10.0.0.7"})
    bot = app.extensions["pointsbot"]
    with bot.db.session_scope() as s:
        rows = {a.action: a.detail for a in s.scalars(select(AuditLog).where(AuditLog.action.like("console%")))}
    assert rows["console_login"] == "from 127.0.0.1" and rows["console_logout"] == "from 10.0.0.7"

