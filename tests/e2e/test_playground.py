"""The playground: its API in-process (signed requests, fake platform API), and the whole demo in a
real browser, started the way ``make run`` starts it.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (nothing here downloads a
browser); without them it is skipped with the command that installs them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any, Iterator
from xml.etree import ElementTree

import pytest
from sqlalchemy import func, select

from app import create_app
from playground.demo import load_demo
from storage.models import ApprovalInstance, Employee, ProcessedEvent
from tests.e2e import signing

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Set POINTSBOT_SCREENSHOTS=docs/screenshots to refresh the README images; by default they go to a temp dir.
SHOTS = Path(os.environ.get("POINTSBOT_SCREENSHOTS") or tempfile.gettempdir() + "/pointsbot-screenshots")


# ---- in-process: the playground API on the demo config ----------------------------------------------
@pytest.fixture
def pg(tmp_path) -> Iterator[Any]:
    data = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    data["database"] = {"url": f"sqlite:///{tmp_path / 'pg.db'}"}
    app = create_app(data)
    bot = app.extensions["pointsbot"]
    bot.db.create_all()
    load_demo(bot.db, bot.settings)
    yield app
    bot.db.dispose()


def _capture(monkeypatch) -> list[Any]:
    """Record the signed requests the playground forwards, still forwarding them."""
    import playground.views as views

    seen: list[Any] = []
    real = views._forward

    def spy(req: Any) -> Any:
        seen.append(req)
        return real(req)

    monkeypatch.setattr(views, "_forward", spy)
    return seen


def test_dingtalk_send_is_a_signed_robot_message_answered_by_the_real_view(pg, monkeypatch) -> None:
    seen, cfg = _capture(monkeypatch), pg.extensions["pointsbot"].settings.dingtalk
    resp = pg.test_client().post("/playground/api/send", json={"platform": "dingtalk", "user": "lijun", "text": "额度"})
    assert resp.status_code == 200 and resp.get_json()["status"] == 200
    req = seen[0]
    assert req.path == "/callback/dingtalk/robot"
    assert req.headers["sign"] == signing.robot_headers(cfg["app_secret"], int(req.headers["timestamp"]))["sign"]
    assert json.loads(req.body)["senderStaffId"] == "lijun"
    reply = resp.get_json()["reply"]
    assert reply["msgtype"] in ("text", "markdown") and "额度" in json.dumps(reply, ensure_ascii=False)
    with pg.extensions["pointsbot"].db.session_scope() as s:  # a query (额度) is answered, never recorded
        assert s.scalar(select(func.count(ProcessedEvent.id)).where(ProcessedEvent.platform == "dingtalk")) == 0


def test_wecom_send_is_encrypted_and_the_passive_reply_decrypted(pg, monkeypatch) -> None:
    seen, cfg = _capture(monkeypatch), pg.extensions["pointsbot"].settings.wecom
    resp = pg.test_client().post("/playground/api/send", json={"platform": "wecom", "user": "lijun", "text": "额度"})
    req = seen[0]
    encrypt = ElementTree.fromstring(req.body).findtext("Encrypt")
    assert req.params["msg_signature"] == signing.sha1_signature(cfg["token"], req.params["timestamp"],
                                                                 req.params["nonce"], encrypt)
    inner, receive_id = signing.aes_decrypt(cfg["encoding_aes_key"], encrypt)
    assert receive_id == cfg["corp_id"] and "<FromUserName><![CDATA[lijun]]>" in inner
    reply = resp.get_json()["reply"]
    assert reply["msgtype"] == "text" and "额度" in reply["content"]


def test_wecom_click_is_a_template_card_event_answered_with_update_button(pg, monkeypatch) -> None:
    seen, cfg = _capture(monkeypatch), pg.extensions["pointsbot"].settings.wecom
    resp = pg.test_client().post("/playground/api/click", json={"platform": "wecom", "user": "zhangsan",
                                                                "key": "帮助", "task_id": "task-1"})
    inner, _ = signing.aes_decrypt(cfg["encoding_aes_key"], ElementTree.fromstring(seen[0].body).findtext("Encrypt"))
    assert "<Event><![CDATA[template_card_event]]></Event>" in inner and "<EventKey><![CDATA[帮助]]>" in inner
    assert resp.get_json()["reply"]["msgtype"] == "update_button"


def test_fake_api_answers_like_the_platforms_and_records_messages(pg) -> None:
    c, s = pg.test_client(), pg.extensions["pointsbot"].settings
    assert c.get("/playground/fake/wecom/cgi-bin/gettoken?corpid=x&corpsecret=y").get_json()["errcode"] == 40001
    token = c.get("/playground/fake/wecom/cgi-bin/gettoken",
                  query_string={"corpid": s.wecom["corp_id"], "corpsecret": s.wecom["secret"]}).get_json()["access_token"]
    assert c.post("/playground/fake/wecom/cgi-bin/message/send?access_token=bad", json={}).get_json()["errcode"] == 40014
    card = {"touser": "zhangsan|lijun", "msgtype": "template_card", "agentid": 1,
            "template_card": {"card_type": "button_interaction", "task_id": "t-9", "main_title": {"title": "确认兑换"},
                              "button_list": [{"text": "确认", "key": "确认兑换 R1"}]}}
    sent = c.post(f"/playground/fake/wecom/cgi-bin/message/send?access_token={token}", json=card).get_json()
    assert sent["errcode"] == 0 and sent["response_code"]
    dt = c.post("/playground/fake/dingtalk/v1.0/oauth2/accessToken",
                json={"appKey": s.dingtalk["app_key"], "appSecret": s.dingtalk["app_secret"]}).get_json()["accessToken"]
    msg = {"robotCode": "r", "userIds": ["hanmei"], "msgKey": "sampleText", "msgParam": '{"content":"你好"}'}
    assert c.post("/playground/fake/dingtalk/v1.0/robot/oToMessages/batchSend", json=msg).status_code == 401
    ok = c.post("/playground/fake/dingtalk/v1.0/robot/oToMessages/batchSend", json=msg,
                headers={"x-acs-dingtalk-access-token": dt})
    assert ok.status_code == 200 and ok.get_json()["processQueryKey"]
    got = c.get("/playground/api/messages?platform=wecom&user=lijun&after=0").get_json()["messages"]
    assert [m["body"]["template_card"]["task_id"] for m in got] == ["t-9"]
    got = c.get("/playground/api/messages?platform=dingtalk&user=hanmei&after=0").get_json()["messages"]
    assert got[0]["body"]["msgParam"] == '{"content":"你好"}'
    later = c.get(f"/playground/api/messages?platform=dingtalk&user=hanmei&after={got[0]['seq']}").get_json()
    assert later["messages"] == []


def test_simulated_approval_and_leaver_go_through_the_event_callbacks(pg) -> None:
    c, bot = pg.test_client(), pg.extensions["pointsbot"]
    res = c.post("/playground/api/simulate/approval", json={"platform": "dingtalk", "user": "zhangsan", "rule": "全勤"})
    assert res.get_json()["status"] == 200 and res.get_json()["ok"] is True
    res = c.post("/playground/api/simulate/approval", json={"platform": "wecom", "user": "zhangsan", "rule": "季度绩效"})
    assert res.get_json()["status"] == 200
    res = c.post("/playground/api/simulate/leave", json={"platform": "dingtalk", "user": "pengbo"})
    assert res.get_json()["ok"] is True
    with bot.db.session_scope() as s:
        assert s.scalar(select(func.count(ApprovalInstance.id))) >= 1
        assert s.scalar(select(Employee.status).where(Employee.wecom_userid == "pengbo")) == "left"


@pytest.mark.parametrize("body", [{}, {"platform": "qq", "user": "a", "text": "b"},
                                  {"platform": "wecom", "user": "", "text": "b"},
                                  {"platform": "wecom", "user": "a", "text": "x" * 3000}])
def test_bad_input_is_400(pg, body: dict[str, Any]) -> None:
    assert pg.test_client().post("/playground/api/send", json=body).status_code == 400


# ---- the browser: make run, then a person clicking through the page ----------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, port: int) -> Path:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for old, new in [("port = 8000", f"port = {port}"), ("127.0.0.1:8000", f"127.0.0.1:{port}"),
                     ('url = "sqlite:///var/pointsbot.db"', f'url = "sqlite:///{tmp / "demo.db"}"')]:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, Path]]:
    """``make run``'s three steps as subprocesses: migrate, demo data, devserver (web + scheduler)."""
    port = _free_port()
    env = {**os.environ, "POINTSBOT_CONFIG": str(_config(tmp_path, port))}
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    for step in (["db", "upgrade"], ["demo-data"]):
        done = subprocess.run([*flask, *step], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    log = open(tmp_path / "devserver.log", "w")
    proc = subprocess.Popen([sys.executable, "devserver.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("devserver did not start:\n" + (tmp_path / "devserver.log").read_text()[-3000:])
        yield base, tmp_path / "demo.db"
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # our own process group: devserver, flask run, scheduler
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def browser(tmp_path, monkeypatch) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("headless Chromium not installed: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager fetch a browser or driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,860",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--lang=zh-CN"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


class Page:
    """The playground as a person uses it."""

    def __init__(self, driver: Any, base: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.base, self.by = driver, base, By
        self.wait = WebDriverWait(driver, 30, poll_frequency=0.2)

    def open(self, platform: str, user: str) -> None:
        self.d.get(f"{self.base}/playground?platform={platform}&user={user}")
        self.wait.until(lambda d: d.find_element(self.by.ID, "user").get_attribute("value") == user)

    def bot_messages(self) -> list[Any]:
        return self.d.find_elements(self.by.CSS_SELECTOR, ".convo:not([hidden]) .msg.bot .bubble")

    def send(self, text: str) -> str:
        before = len(self.bot_messages())
        box = self.d.find_element(self.by.ID, "input")
        box.clear()
        box.send_keys(text)
        self.d.find_element(self.by.ID, "send").click()
        self.wait.until(lambda d: len(self.bot_messages()) > before)
        return self.bot_messages()[-1].text

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        self.d.save_screenshot(str(path))
        return path


def _ledger(db: Path, sql: str, *args: Any) -> Any:
    with sqlite3.connect(db) as conn:
        row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def _balance(db: Path, employee_no: str) -> int:
    return int(_ledger(db, "SELECT a.balance FROM accounts a JOIN employees e ON e.id = a.employee_id "
                           "WHERE a.kind = 'wallet' AND e.employee_no = ?", employee_no))


def _numbers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\d+", text.replace(",", ""))}


@pytest.mark.slow
def test_playground_in_headless_chromium(server, browser) -> None:
    base, db = server
    page = Page(browser, base)

    # An employee on WeCom: balance, redeem, confirm with the card's button.
    page.open("wecom", "zhangsan")
    assert _balance(db, "1002") in _numbers(page.send("积分"))
    page.send("兑换 course")
    button = page.wait.until(lambda d: next(iter(d.find_elements(
        page.by.CSS_SELECTOR, ".convo:not([hidden]) .wc-card button[data-key^='确认兑换']")), None))
    ref = button.get_attribute("data-key").split()[-1]
    shown = len(page.bot_messages())
    button.click()
    page.wait.until(lambda d: not button.is_enabled())  # the passive update_button reply
    page.wait.until(lambda d: len(page.bot_messages()) > shown)  # the result, delivered by the outbox
    order = int(ref.lstrip("R"))
    page.wait.until(lambda d: _ledger(db, "SELECT hold_txn_id FROM orders WHERE id = ?", order) is not None)
    shutil.copyfile(page.shot("playground-wecom-redeem.png"), SHOTS / "playground.png")

    # HR on DingTalk fulfils it.
    page.open("dingtalk", "hanmei")
    page.send(f"发放 {ref}")
    page.wait.until(lambda d: _ledger(db, "SELECT decided_at FROM orders WHERE id = ?", order) is not None)
    page.shot("playground-dingtalk-hr-fulfil.png")

    # A manager on DingTalk awards points.
    before = _balance(db, "1002")
    page.open("dingtalk", "lijun")
    page.send("奖励 zhangsan 50 帮助同事排查线上故障")
    page.wait.until(lambda d: _balance(db, "1002") == before + 50)
    page.shot("playground-dingtalk-award.png")

    # The employee sees the ledger's balance on the other platform too.
    page.open("dingtalk", "zhangsan")
    assert _balance(db, "1002") in _numbers(page.send("积分"))
    page.shot("playground-dingtalk-balance.png")

    # A manager awards someone who never opened the bot: the notice reaches them all the same.
    page.open("wecom", "lijun")
    page.send("奖励 linfeng 30 新人带教")
    page.open("wecom", "linfeng")
    page.wait.until(lambda d: any("新人带教" in m.text for m in page.bot_messages()))
    page.shot("playground-wecom-notice-never-wrote.png")

    # An employee unbinds WeCom; the next message finds the account unbound, not re-bound from the roster.
    page.open("wecom", "wangwu")
    page.send("解绑")
    confirm = page.wait.until(lambda d: next(iter(d.find_elements(
        page.by.CSS_SELECTOR, ".convo:not([hidden]) .wc-card button[data-key^='确认解绑']")), None))
    shown = len(page.bot_messages())
    confirm.click()
    page.wait.until(lambda d: len(page.bot_messages()) > shown)
    page.wait.until(lambda d: _ledger(db, "SELECT status FROM bindings WHERE platform = 'wecom' "
                                          "AND platform_user_id = 'wangwu'") == "unbound")
    assert "还没有绑定" in page.send("积分")
    page.shot("playground-wecom-unbind.png")

    # Two HR people get the order; one rejects it with a preset reason; the other's card shows the outcome.
    page.open("wecom", "zhangsan")
    page.send("兑换 course")
    confirm = page.wait.until(lambda d: next(iter(b for b in d.find_elements(
        page.by.CSS_SELECTOR, ".convo:not([hidden]) .wc-card button[data-key^='确认兑换']") if b.is_enabled()), None))
    ref = confirm.get_attribute("data-key").split()[-1]
    confirm.click()
    page.wait.until(lambda d: _ledger(db, "SELECT status FROM orders WHERE id = ?", int(ref[1:])) == "awaiting_fulfilment")
    page.open("wecom", "hanmei")
    reject = page.wait.until(lambda d: next(iter(d.find_elements(
        page.by.CSS_SELECTOR, f".convo:not([hidden]) .wc-card button[data-key='拒绝订单 {ref} 库存不足']")), None))
    reject.click()
    page.wait.until(lambda d: _ledger(db, "SELECT note FROM orders WHERE id = ?", int(ref[1:])) == "库存不足")
    page.open("wecom", "fengxue")
    card = page.wait.until(lambda d: next(iter(d.find_elements(
        page.by.XPATH, f"//div[contains(@class,'wc-card')][.//button[contains(@data-key,'发放 {ref}')]]")), None))
    page.wait.until(lambda d: "已由 韩梅 拒绝" in card.text and not any(b.is_enabled() for b in
                                                                  card.find_elements(page.by.TAG_NAME, "button")))
    page.shot("playground-wecom-card-closed.png")
    page.open("wecom", "zhangsan")
    page.wait.until(lambda d: any("库存不足" in m.text and "拒绝" in m.text for m in page.bot_messages()))

    # At phone width (400 px) the page is one column, without a horizontal scroll bar.
    page.d.set_window_size(400, 860)
    page.open("wecom", "zhangsan")
    assert page.d.execute_script("return document.documentElement.scrollWidth") <= 400
    assert "积分" in page.send("积分")
    page.shot("playground-phone.png")

    # While the server is unreachable the one-second poll backs off instead of filling the console with errors.
    page.d.execute_script("window.__polls = 0; window.fetch = () => { window.__polls += 1; "
                          "return Promise.reject(new TypeError('offline')); };")
    time.sleep(7)
    assert page.d.execute_script("return window.__polls") <= 4  # 1 s, 2 s, 4 s…, not seven in seven seconds
