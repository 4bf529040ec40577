"""The HR console in headless Chromium, against the demo company (``make run``'s steps, as the playground test)."""
from __future__ import annotations

import re

import pytest
from selenium.webdriver.support.ui import Select

from tests.e2e.test_playground import Page, _balance, _ledger, browser, server  # noqa: F401  (fixtures)


@pytest.mark.slow
def test_console_login_by_link_in_headless_chromium(server, browser) -> None:  # noqa: F811
    """The HR console through a real browser: the playground's login button issues a link, 进入后台 posts it,
    an employee's page shows the ledger's balance, and nothing was loaded from anywhere but the app."""
    base, db = server
    page = Page(browser, base)
    page.d.get(f"{base}/playground")
    page.wait.until(lambda d: d.find_elements(page.by.CSS_SELECTOR, "#console-logins a.chip"))
    href = page.d.find_element(page.by.CSS_SELECTOR, "#console-logins a.chip").get_attribute("href")
    assert href.endswith("/playground/console/hanmei")
    page.d.get(href)
    page.wait.until(lambda d: d.find_elements(page.by.ID, "enter"))
    page.shot("console-login.png")
    page.d.find_element(page.by.ID, "enter").click()
    page.wait.until(lambda d: "/console/people" in d.current_url)
    box = page.d.find_element(page.by.NAME, "q")
    box.send_keys("张三")
    box.submit()
    page.wait.until(lambda d: "q=" in d.current_url)
    page.shot("console-people.png")
    page.d.find_element(page.by.LINK_TEXT, "张三").click()
    page.wait.until(lambda d: d.find_elements(page.by.ID, "available"))
    assert int(page.d.find_element(page.by.ID, "available").text) == _balance(db, "1002")
    page.shot("console-person.png")
    loaded = page.d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(base) for url in loaded), loaded
    assert _ledger(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'console_login'") == 1

    # An employee orders and appeals in chat; HR fulfils the order and denies the appeal in the console.
    page.open("wecom", "zhangsan")
    page.send("兑换 course")
    confirm = page.wait.until(lambda d: next(iter(b for b in d.find_elements(
        page.by.CSS_SELECTOR, ".convo:not([hidden]) .wc-card button[data-key^='确认兑换']") if b.is_enabled()), None))
    order = int(confirm.get_attribute("data-key").split()[-1][1:])
    confirm.click()
    page.wait.until(lambda d: _ledger(db, "SELECT status FROM orders WHERE id = ?", order) == "awaiting_fulfilment")
    appeal = int(re.search(r"A(\d+)", page.send("申诉 - 上月全勤积分未到账")).group(1))
    page.d.get(f"{base}/console/orders")
    page.wait.until(lambda d: d.find_elements(page.by.ID, f"order-{order}"))[0].click()
    page.shot("console-orders.png")
    page.d.find_element(page.by.ID, "bulk-fulfil").click()
    page.wait.until(lambda d: "批量处理结果" in d.page_source)
    assert _ledger(db, "SELECT status FROM orders WHERE id = ?", order) == "fulfilled"
    page.d.get(f"{base}/console/appeals")
    page.wait.until(lambda d: d.find_elements(page.by.ID, f"deny-{appeal}"))[0].click()
    page.wait.until(lambda d: f"申诉 A{appeal} 已驳回" in d.page_source)
    page.shot("console-appeals.png")
    assert _ledger(db, "SELECT status FROM appeals WHERE id = ?", appeal) == "denied"

    # The exports and bulk-award pages render in the browser, from the app alone.
    page.d.get(f"{base}/console/exports")
    page.wait.until(lambda d: d.find_elements(page.by.ID, "export-ledger-xlsx"))
    page.shot("console-exports.png")
    page.d.get(f"{base}/console/awards")
    page.wait.until(lambda d: d.find_elements(page.by.ID, "csv-file"))
    page.shot("console-awards.png")

    # HR puts the course on a limit of one a quarter; the employee's next 商城 shows it.
    page.d.get(f"{base}/console/catalog/item/course")
    page.wait.until(lambda d: d.find_elements(page.by.ID, "save-item"))
    page.d.find_element(page.by.NAME, "limit").send_keys("1")
    Select(page.d.find_element(page.by.NAME, "limit_period")).select_by_value("quarter")
    page.shot("console-catalog-item.png")
    page.d.find_element(page.by.ID, "save-item").click()
    page.wait.until(lambda d: d.find_elements(page.by.ID, "catalog-file"))
    page.shot("console-catalog.png")
    assert _ledger(db, "SELECT limit_count || ' ' || limit_period FROM items WHERE sku = 'course'") == "1 quarter"
    page.open("wecom", "zhangsan")
    assert "每季度限兑 1 个" in page.send("商城")

    # HR adds gift-card codes, shown back as counts only; the donations page totals the demo's donations.
    page.d.get(f"{base}/console/catalog/item/ecard50")
    page.wait.until(lambda d: d.find_elements(page.by.ID, "upload-codes"))
    free = int(page.d.find_element(page.by.ID, "codes-free").text)
    page.d.find_element(page.by.NAME, "codes").send_keys("DEMO-NEW1-AAAA\nDEMO-NEW2-BBBB")
    page.shot("console-catalog-codes.png")
    page.d.find_element(page.by.ID, "upload-codes").click()
    page.wait.until(lambda d: "卡密上传结果" in d.page_source)
    assert f"现在可兑换 {free + 2} 个" in page.d.page_source and "DEMO-NEW" not in page.d.page_source
    page.d.get(f"{base}/console/donations")
    page.wait.until(lambda d: d.find_elements(page.by.ID, "donations-xlsx"))
    assert "希望工程" in page.d.find_element(page.by.ID, "donations").text
    page.shot("console-donations.png")

    # HR sets the performance rule's base to the articles' 129; the employee's next 规则 shows version 2.
    page.d.get(f"{base}/console/rules")
    page.wait.until(lambda d: d.find_elements(page.by.ID, "rules-file"))
    page.shot("console-rules.png")
    page.d.find_element(page.by.LINK_TEXT, "季度绩效").click()
    page.wait.until(lambda d: d.find_elements(page.by.ID, "save-rule"))
    box = page.d.find_element(page.by.NAME, "base_points")
    box.clear()
    box.send_keys("129")
    page.d.find_element(page.by.ID, "announce").click()
    page.shot("console-rule.png")
    page.d.find_element(page.by.ID, "save-rule").click()
    page.wait.until(lambda d: d.find_elements(page.by.ID, "rules-file"))
    assert "第 2 版" in page.d.find_element(page.by.ID, "rules").text
    page.d.get(f"{base}/console/budgets")
    page.wait.until(lambda d: d.find_elements(page.by.ID, "budgets"))
    page.shot("console-budgets.png")
    page.open("wecom", "zhangsan")
    assert "≥90: 142（110%）" in page.send("规则")
    loaded = page.d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(url.startswith(base) for url in loaded), loaded
