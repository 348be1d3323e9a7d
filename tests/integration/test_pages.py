"""The agent lookup page and the ops page in a real headless Chromium (Debian's package)."""

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from streams.reader import OutputReader
from streams.runner import WorkerProcess
from streams.topics import TopicNames
from tests.conftest import API_TOKEN, Publisher
from tests.factories import application_dict, cancellation_dict

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


async def test_agent_page_finds_a_customer(
        tag: str, worker: WorkerProcess, publisher: Publisher, outputs: OutputReader,
        names: TopicNames, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium)"
    customer = f"{tag}-page"
    await publisher.send(names.cancellations, cancellation_dict(customer, penalty_krw=121500))
    await publisher.send(names.applications,
                         application_dict(customer, applied_at="2026-01-20T10:00:00+09:00"))
    await outputs.wait_for(lambda: outputs.values(
        names.refunds, lambda v: v["customer_id"] == customer), what="refund")
    url = f"http://127.0.0.1:{worker.settings.web_port}"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page()
        await page.goto(f"{url}/agent")
        await page.fill("#token", API_TOKEN)
        await page.fill("#customer", customer)
        await page.click("button[type=submit]")
        await page.wait_for_selector("#result:not([hidden])")
        assert await page.text_content("#r-customer") == customer
        assert await page.text_content("#r-eligible") == "예"
        assert await page.text_content("#r-refund") == "121,500원"
        assert await page.text_content("#r-application") == "환급 예정"
        assert await page.text_content("#r-payout") == "2026-02-05"
        assert await page.text_content("#r-name") == "김*수"
        await page.screenshot(path=str(tmp_path / "agent.png"), full_page=True)

        await page.fill("#customer", f"{tag}-nobody")
        await page.click("button[type=submit]")
        await page.wait_for_function("document.getElementById('error').textContent !== ''")
        assert "찾을 수 없습니다" in await page.text_content("#error")
        await page.fill("#token", "wrong")
        await page.click("button[type=submit]")
        await page.wait_for_function(
            "document.getElementById('error').textContent.includes('토큰')")

        await page.goto(f"{url}/ops")
        await page.wait_for_function(
            "document.querySelectorAll('#rounds tbody tr').length === 3")
        decisions = await page.text_content("#waiver_decisions")
        assert "eligible" in decisions
        await page.screenshot(path=str(tmp_path / "ops.png"), full_page=True)
        await browser.close()
    assert (tmp_path / "agent.png").stat().st_size > 1000
    assert (tmp_path / "ops.png").stat().st_size > 1000
