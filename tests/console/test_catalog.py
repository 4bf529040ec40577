"""The console's catalog pages (Catalog 1): HR edits items and CSVs, the next chat message anywhere sees it."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from storage.models import AuditLog, Item
from tests.console.conftest import csrf_of, login

ROOT = Path(__file__).resolve().parents[2]
# Another process: its own interpreter, engine and pool, answering 商城 for E1 through the pipeline.
OTHER_PROCESS = textwrap.dedent("""
    import sys
    from app import create_app
    from bot.core.events import Actor, TextCommand
    from bot.core.pipeline import Answer
    from cards.text import plain_text

    bot = create_app({"database": {"url": sys.argv[1]}}).extensions["pointsbot"]
    event = TextCommand(platform="wecom", event_id=sys.argv[2], actor=Actor("e1"), text="商城",
                        received_at=bot.db.clock())
    print(bot.pipeline.handle(event, lambda e, r: (Answer(200, plain_text(r.card)), ())).body)
""")


def shop_in_another_process(app: Any, event_id: str) -> str:
    url = app.extensions["pointsbot"].db.url
    done = subprocess.run([sys.executable, "-c", OTHER_PROCESS, url, event_id], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def save(client: Any, editing: str, **fields: str) -> Any:
    """Open the item's form (a new item's when ``editing`` is empty) and submit ``fields`` with its CSRF token."""
    url = f"/console/catalog/item/{editing}" if editing else "/console/catalog/item"
    html = client.get(url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_of(html), **fields})


TEA = {"sku": "tea", "name": "<b>好茶</b>", "kind": "goods", "cost": "120", "stock": "5", "sort": "1",
       "active": "1", "description": "", "limit": "", "limit_period": "", "leave_days": ""}


def test_an_edit_in_the_console_is_seen_by_the_next_message_of_another_process(app: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    assert "商城暂无商品" in shop_in_another_process(app, "shop-1")
    resp = save(client, "", **TEA)
    assert resp.status_code == 302
    page = client.get("/console/catalog").get_data(as_text=True)
    assert "已新增 &lt;b&gt;好茶&lt;/b&gt;" in page and "<b>好茶" not in page  # escaped, never markup
    assert "1. [实物] <b>好茶</b>（tea）  120 积分  ·  库存 5" in shop_in_another_process(app, "shop-2")
    assert save(client, "tea", **{**TEA, "cost": "150", "active": ""}).status_code == 302
    assert "tea" not in shop_in_another_process(app, "shop-3")  # taken off the shelf
    with app.extensions["pointsbot"].db.session_scope() as s:
        item = s.get(Item, "tea")
        assert (item.cost, item.active) == (150, False)
        assert [(a.action, a.actor_id) for a in s.scalars(select(AuditLog).where(
            AuditLog.action.like("catalog_%")).order_by(AuditLog.id))] == \
            [("catalog_create", ids["H1"]), ("catalog_update", ids["H1"])]


def test_a_bad_form_says_what_to_fix_and_saves_nothing(app: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "A1")
    resp = save(client, "", **{**TEA, "cost": "0", "kind": "leave"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "积分必须是正整数" in html and "假期类商品需填写 1 到 365 的天数" in html
    save(client, "", **TEA)
    taken = save(client, "", **{**TEA, "name": "别的茶"})
    assert taken.status_code == 400 and "这个 sku 已经有商品了" in taken.get_data(as_text=True)
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.get(Item, "tea").name == "<b>好茶</b>"


@pytest.mark.parametrize("no", ["M1", "B1"])  # employees have no console at all
def test_only_hr_and_admins_reach_the_catalog(app: Any, ids: dict, no: str) -> None:
    client = app.test_client()
    login(client, app, no)
    token = csrf_of(client.get("/console/people").get_data(as_text=True))
    for url in ("/console/catalog", "/console/catalog/item", "/console/catalog/item/tea", "/console/catalog.csv"):
        assert client.get(url).status_code == 403, url
    assert client.post("/console/catalog/item", data={"csrf_token": token, **TEA}).status_code == 403
    assert client.post("/console/catalog/import", data={"csrf_token": token}).status_code == 403
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.get(Item, "tea") is None


def test_every_catalog_form_needs_its_csrf_token(app: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    assert client.post("/console/catalog/item", data=TEA).status_code == 400
    assert client.post("/console/catalog/import", data={}).status_code == 400


def test_csv_download_and_upload_with_line_numbers(app: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    save(client, "", **TEA)
    csv = client.get("/console/catalog.csv")
    assert csv.headers["Content-Disposition"] == "attachment; filename=catalog.csv"
    text = csv.get_data().decode("utf-8")
    assert text.startswith("\ufeffsku,name,kind,cost") and "tea,<b>好茶</b>,goods,120,5" in text
    upload = (text + "pen,钢笔,goods,abc,,,,,,,\nmug,马克杯,goods,80,,,,,,,\n").encode("utf-8")
    token = csrf_of(client.get("/console/catalog").get_data(as_text=True))
    page = client.post("/console/catalog/import", data={"csrf_token": token, "file": (io.BytesIO(upload), "c.csv")},
                       content_type="multipart/form-data").get_data(as_text=True)
    assert "第 3 行" in page and "积分必须是正整数" in page and "mug" in page and "无改动" in page
    assert "1. [实物] 马克杯（mug）  80 积分  ·  库存充足" in shop_in_another_process(app, "shop-csv")  # sort 0 first
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.get(Item, "mug").cost == 80 and s.get(Item, "pen") is None
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "console_export")) == "catalog csv"


def test_the_cli_round_trip_and_its_exit_status(app: Any, ids: dict, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    src = tmp_path / "in.csv"
    src.write_text("sku,name,cost,kind,leave_days\nleave1,1天年假,500,leave,1\nbad,坏,-1,goods,\n", encoding="utf-8")
    result = runner.invoke(args=["catalog", "import", str(src)])
    assert result.exit_code == 1
    assert "created 1: leave1" in result.output and "line 3: rejected: cost" in result.output
    out = tmp_path / "out.csv"
    assert runner.invoke(args=["catalog", "export", str(out)]).exit_code == 0
    again = runner.invoke(args=["catalog", "import", str(out)])
    assert again.exit_code == 0 and "unchanged 1: leave1" in again.output
    assert json.dumps(out.read_text(encoding="utf-8")).startswith('"\\ufeffsku,name,kind')
    assert runner.invoke(args=["restock", "leave1", "3"]).output.strip() == "leave1: stock 3"
    assert runner.invoke(args=["restock", "nope", "3"]).exit_code == 1
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert s.get(Item, "leave1").stock == 3
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "catalog_restock")) == "leave1: stock 3"


def test_db_upgrade_loads_the_configuration_once_then_says_where_it_differs(tmp_path: Path, caplog) -> None:
    from app import create_app

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = {"database": {"url": url}, "catalog": [{"sku": "mug", "name": "马克杯", "cost": 100}]}
    loaded = create_app(first).test_cli_runner().invoke(args=["db", "upgrade"])
    assert loaded.exit_code == 0 and "catalog loaded from the configuration: mug" in loaded.output
    changed = {**first, "catalog": [{"sku": "mug", "name": "马克杯", "cost": 90}, {"sku": "pen", "name": "笔", "cost": 5}]}
    with caplog.at_level("WARNING", logger="pointsbot"):
        app = create_app(changed)
    assert any("[[catalog]] in the configuration differs from the database for mug, pen" in r.getMessage()
               for r in caplog.records)
    again = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert "notice: [[catalog]] in the configuration differs" in again.output and "mug, pen" in again.output
    with app.extensions["pointsbot"].db.session_scope() as s:
        assert [(i.sku, i.cost) for i in s.scalars(select(Item))] == [("mug", 100)]  # the database is the truth
