"""The supervisor console's outages panel in a real headless Chromium: a supervisor posts
an outage with the form, a surge alert is pushed live with its pending announcement,
and confirming it from the alert makes it active."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, async_playwright, expect

from ivr.domain.surge import SurgeConfig, SurgeDetector
from ivr.outages.alerts import SupervisorAlerts
from ivr.outages.surge import SurgeService, SurgeSettings
from ivr.storage.outages import SqlOutageBoard
from ivr.testing.web import DEMO_PASSWORD, WebCore, cheap_passwords
from ivr.web.app import create_web_app, free_port, web_server

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()


async def test_post_outage_and_confirm_a_pushed_surge(core: WebCore, browser: Browser) -> None:
    """Form -> row in the table; 30 fault calls -> alert with Confirm -> active."""
    alerts = SupervisorAlerts()
    service = SurgeService(SurgeDetector(SurgeConfig()), SqlOutageBoard(core.engine),
                           SurgeSettings(auto_activate=False), alerts=alerts)
    core.alerts = alerts  # type: ignore[attr-defined]
    core.surge = service  # type: ignore[attr-defined]
    web = create_web_app(core, passwords=cheap_passwords())
    port = free_port()
    async with web_server(web, "127.0.0.1", port):
        base = f"http://127.0.0.1:{port}"
        page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})
                      ).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{base}/login")
        await page.fill("input[name=username]", "super")
        await page.fill("input[name=password]", DEMO_PASSWORD)
        await page.click("button[type=submit]")
        await expect(page.locator("#surge-state")).to_contain_text("learning")
        form = page.locator("#outage-form")
        await form.locator("input[name=regions]").fill("Haarlem")
        await form.locator("input[name=en]").fill("No TV signal in Haarlem until 18:00.")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#outages")).to_contain_text("No TV signal in Haarlem")
        start = datetime.now(UTC) - timedelta(minutes=4)
        for i in range(30):
            await service.record_call(start + timedelta(seconds=i * 8), "Arnhem",
                                      "report_fault")
        await service.drain()
        alert = page.locator("#surge-alerts li[data-state=started]")
        await expect(alert).to_contain_text("Arnhem")
        await alert.locator("button[data-action=confirm]").click()
        outage = alert.get_attribute("data-outage")
        row = page.locator(f"#outages tr[data-outage='{await outage}']")
        await expect(row).to_have_attribute("data-status", "active")
        assert errors == []
