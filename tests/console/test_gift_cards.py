"""The console's gift-card codes and donations (Catalog 2): HR uploads codes it never sees again; totals per charity."""
from __future__ import annotations

import io
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from settings import CatalogItem
from storage import catalog, gift_codes, orders
from storage.ledger import Ledger
from storage.models import AuditLog, Employee, GiftCode
from tests.console.conftest import csrf_of, login

KEY = Fernet.generate_key().decode()
TZ = ZoneInfo("Asia/Shanghai")
ITEMS = (CatalogItem("jd100", "京东卡100元", 10, None, kind="gift_card"), CatalogItem("mug", "马克杯", 10, None),
         CatalogItem("hope", "希望工程", 20, None, kind="donation", charity="希望工程"))


@pytest.fixture
def shop(app: Any, ids: dict, clock: Any) -> Any:
    bot = app.extensions["pointsbot"]
    bot.settings.gift_cards["codes_key"] = KEY
    with bot.db.session_scope() as s:
        catalog.seed_from_config(s, ITEMS, now=clock())
    return bot


def upload(client: Any, sku: str, **data: Any) -> Any:
    html = client.get(f"/console/catalog/item/{sku}").get_data(as_text=True)
    return client.post(f"/console/catalog/item/{sku}/codes", data={"csrf_token": csrf_of(html), **data},
                       content_type="multipart/form-data")


def test_hr_uploads_codes_and_sees_counts_never_codes(app: Any, shop: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    assert "上传卡密后，员工确认兑换即自动发放" in client.get("/console/catalog/item/jd100").get_data(as_text=True)
    done = upload(client, "jd100", codes="GIFTCODE-C1\nGIFTCODE-C2\nGIFTCODE-C1\nbad code")
    page = done.get_data(as_text=True)
    assert done.status_code == 200 and "GIFTCODE" not in page
    assert "新增 2 个卡密（第 1 批），现在可兑换 2 个" in page
    assert "第 3 行" in page and "卡密已在库中（或文件里重复），已跳过" in page
    assert "第 4 行" in page and "卡密不能含空格" in page
    again = upload(client, "jd100", file=(io.BytesIO("\ufeffGIFTCODE-C2\nGIFTCODE-C3\n".encode()), "codes.txt"))
    assert "新增 1 个卡密（第 2 批），现在可兑换 3 个" in again.get_data(as_text=True)
    assert "3 个卡密" in client.get("/console/catalog").get_data(as_text=True)
    item = client.get("/console/catalog/item/jd100").get_data(as_text=True)
    assert 'id="codes-free">3<' in item and "readonly" in item and "GIFTCODE" not in item
    nothing = upload(client, "jd100", codes="  ")
    assert nothing.status_code == 302 and "请粘贴卡密或选择卡密文件" in client.get(nothing.location).get_data(as_text=True)
    with shop.db.session_scope() as s:
        assert s.scalar(select(AuditLog.actor_id).where(AuditLog.action == "gift_codes_add")) == ids["H1"]
        assert len(list(s.scalars(select(GiftCode.id)))) == 3


def test_codes_need_a_gift_card_and_a_key(app: Any, shop: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    wrong = upload(client, "mug", codes="GIFTCODE-M1")
    assert wrong.status_code == 400 and "「马克杯」不是购物卡" in wrong.get_data(as_text=True)
    shop.settings.gift_cards["codes_key"] = ""
    keyless = upload(client, "jd100", codes="GIFTCODE-K1")
    assert keyless.status_code == 400 and "gift_cards.codes_key" in keyless.get_data(as_text=True)
    with shop.db.session_scope() as s:
        assert s.scalar(select(GiftCode.id)) is None


@pytest.mark.parametrize("no", ["M1", "B1"])
def test_only_hr_and_admins_upload_codes_or_see_donations(app: Any, shop: Any, ids: dict, no: str) -> None:
    client = app.test_client()
    login(client, app, no)
    token = csrf_of(client.get("/console/people").get_data(as_text=True))
    assert client.post("/console/catalog/item/jd100/codes", data={"csrf_token": token,
                                                                  "codes": "GIFTCODE-X"}).status_code == 403
    assert client.get("/console/donations").status_code == 403
    exported = client.get("/console/export/donations.csv").get_data(as_text=True)
    assert exported.strip() == "\ufeff月份,受捐机构,捐赠笔数,积分"  # a manager's export has no rows
    with shop.db.session_scope() as s:
        assert s.scalar(select(GiftCode.id)) is None


def test_a_code_upload_needs_its_csrf_token(app: Any, shop: Any, ids: dict) -> None:
    client = app.test_client()
    login(client, app, "H1")
    assert client.post("/console/catalog/item/jd100/codes", data={"codes": "GIFTCODE-X"}).status_code == 400
    with shop.db.session_scope() as s:
        assert s.scalar(select(GiftCode.id)) is None


def test_donations_are_totalled_per_month_and_charity_and_exported(app: Any, shop: Any, ids: dict,
                                                                   clock: Any) -> None:
    with shop.db.session_scope() as s:
        for no, qty in (("E1", 2), ("X1", 1)):
            who = s.get(Employee, ids[no])
            order = orders.start(s, who, "hope", qty, clock(), TZ)
            orders.confirm(s, Ledger(s, clock), who, order.id, clock(), TZ)
        gift_codes.add(s, gift_codes.Vault(KEY), "jd100", [(1, "GIFTCODE-O1")], now=clock(), actor_id=None)
        who = s.get(Employee, ids["E1"])
        order = orders.start(s, who, "jd100", 1, clock(), TZ)
        orders.confirm(s, Ledger(s, clock), who, order.id, clock(), TZ)
    client = app.test_client()
    login(client, app, "H1")
    month = clock().strftime("%Y-%m")
    page = client.get("/console/donations").get_data(as_text=True)
    assert f"<td>{month}</td><td>希望工程</td><td>2</td><td>60</td>" in page
    assert f"{month},希望工程,2,60" in client.get("/console/export/donations.csv").get_data(as_text=True)
    assert client.get("/console/export/donations.xlsx").status_code == 200
    assert "GIFTCODE" not in client.get("/console/export/orders.csv").get_data(as_text=True)
    assert "GIFTCODE" not in client.get("/console/export/ledger.csv").get_data(as_text=True)


def test_the_cli_adds_codes_and_says_what_it_skipped(app: Any, shop: Any, tmp_path: Any) -> None:
    runner = app.test_cli_runner()
    src = tmp_path / "codes.csv"
    src.write_text("卡密,面值\nGIFTCODE-L1,100\nGIFTCODE-L2,100\nGIFTCODE-L1,100\n", encoding="utf-8")
    done = runner.invoke(args=["catalog", "codes", "jd100", str(src)])
    assert done.exit_code == 0 and "jd100: batch 1, added 2, 2 free codes now" in done.output
    assert "line 4: skipped: already in the pool" in done.output and "GIFTCODE" not in done.output
    src.write_text("GIFTCODE-L3\nnot a code\n", encoding="utf-8")
    bad = runner.invoke(args=["catalog", "codes", "jd100", str(src)])
    assert bad.exit_code == 1 and "line 2: skipped: not a code" in bad.output and "added 1" in bad.output
    assert runner.invoke(args=["catalog", "codes", "nope", str(src)]).exit_code == 1
    assert "not a gift_card item" in runner.invoke(args=["catalog", "codes", "mug", str(src)]).output
    refused = runner.invoke(args=["restock", "jd100", "9"])
    assert refused.exit_code == 1 and "its stock is its free gift-card codes" in refused.output
    with shop.db.session_scope() as s:
        assert catalog.stock_of(s, "jd100") == 3
