"""The agent desktop and supervisor console in a real headless Chromium (Debian's package),
against the real web app on uvicorn: sign-in, live screen-pop, wrap-up, live wallboard,
roles, CSRF and the sign-in rate limit."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect

from ivr.cli.demo_cmd import demo_moment
from ivr.contact_centre.remote import RemoteCentres
from ivr.contact_centre.service import ContactCentre
from ivr.domain.centre import CentreKind
from ivr.domain.model import IntentSpec, RouteRequest, Scenario
from ivr.storage.desk import SqlDeskStore
from ivr.testing.fake_ami import FakeAmiServer
from ivr.testing.web import DEMO_PASSWORD, CallScript, WebCore, book_demo_callback, play_call
from ivr.web.app import free_port, web_server

pytestmark = pytest.mark.browser

# Debian's chromium: `playwright install` would download a browser, which fails here.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ANNA = CallScript("1001", "my internet keeps dropping", "internet_down", 0.87, "technical",
                  pin_verified=True, priority=5, reason="gold customer, outage region")


@pytest.fixture
async def base_url(web: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    async with web_server(web, "127.0.0.1", port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def centre_url(centre_web: FastAPI) -> AsyncIterator[str]:
    """The web app of a node with a (FakeAmiServer-backed) contact centre, served."""
    port = free_port()
    async with web_server(centre_web, "127.0.0.1", port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()


async def new_page(browser: Browser, width: int = 1400, height: int = 1000,
                   ) -> tuple[Page, list[str]]:
    """A page in a fresh browser context, and the console errors it logs (CSP, JS)."""
    size: ViewportSize = {"width": width, "height": height}
    page = await (await browser.new_context(viewport=size)).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


async def sign_in(page: Page, base_url: str, username: str,
                  password: str = DEMO_PASSWORD) -> None:
    await page.goto(f"{base_url}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def _until(pred: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll live state that changes on AMI events (there is nothing to await)."""
    async with asyncio.timeout(timeout_s):
        for _ in itertools.count():  # a for loop: ruff's ASYNC110 wants no sleep-while
            if pred():
                return
            await asyncio.sleep(0.02)


def real_errors(errors: list[str]) -> list[str]:
    # The agents API (queue state) is another module; its absence is shown on the page.
    return [e for e in errors if "404" not in e]


async def test_agent_gets_screen_pop_and_saves_wrapup(browser: Browser, base_url: str,
                                                      core: WebCore) -> None:
    """An agent signs in, the hand-off pops on screen with everything the IVR learnt, and
    the wrap-up lands on the contact. A POST without the CSRF token is refused."""
    book_demo_callback(core, "billing", "why is my bill so high")  # agent1's skill
    book_demo_callback(core, "logistics", "where is my parcel")  # not one of hers
    page, errors = await new_page(browser)
    await sign_in(page, base_url, "agent1")
    await expect(page).to_have_url(f"{base_url}/agent")
    await expect(page.get_by_test_id("who")).to_contain_text("agent1")
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#waiting")).to_be_visible()
    await expect(page.locator("#callbacks")).to_contain_text("why is my bill so high")
    await expect(page.locator("#callbacks")).not_to_contain_text("where is my parcel")
    session = await play_call(core, ANNA)
    await expect(page.locator("#question")).to_have_text("my internet keeps dropping")
    await expect(page.locator("#customer-name")).to_have_text("Anna de Vries")
    await expect(page.locator("#intent")).to_have_text("internet_down")
    await expect(page.locator("#confidence")).to_have_text("87 %")
    await expect(page.locator("#pin")).to_have_text("PIN verified")
    await expect(page.locator("#priority")).to_have_text("priority 5")
    await expect(page.locator("#outage")).to_contain_text("Utrecht")
    await expect(page.locator("#orders")).to_contain_text("A12345")
    await expect(page.locator("#timeline")).to_contain_text("internet_down")  # all channels
    await expect(page.locator("#transcript")).to_contain_text("my internet keeps dropping")
    await page.select_option("#wrapup-code", "escalated")
    await page.fill("#wrapup-note", "engineer visit booked")
    await page.click("#wrapup button[type=submit]")
    await expect(page.locator("#wrapup-result")).to_have_text("saved: Escalated")
    assert SqlDeskStore(core.engine).wrapup(session) == ("escalated", "engineer visit booked")
    assert real_errors(errors) == []
    status = await page.evaluate(
        """async (s) => (await fetch('/api/contacts/' + s + '/wrapup', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'code=resolved'})).status""", session)
    assert status == 403
    assert SqlDeskStore(core.engine).wrapup(session) == ("escalated", "engineer visit booked")


async def test_supervisor_wallboard_follows_the_calls(browser: Browser, base_url: str,
                                                      core: WebCore) -> None:
    """The wallboard numbers change as calls end; the report charts, their CSV export and
    the contact list show them."""
    page, errors = await new_page(browser)
    await sign_in(page, base_url, "super")
    await expect(page).to_have_url(f"{base_url}/supervisor")
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#calls")).to_have_text("0")
    await expect(page.locator("#database")).to_have_text("up")
    await play_call(core, ANNA)
    await expect(page.locator("#calls")).to_have_text("1")
    await expect(page.locator("#handoffs-total")).to_have_text("1")
    await expect(page.locator("#handoffs")).to_contain_text("technical")
    await expect(page.locator("#intents")).to_contain_text("internet_down")
    await page.reload()
    # The report charts are SVG drawn in the page from the report API.
    await expect(page.locator("#chart-reasons svg")).to_contain_text("internet_down")
    await expect(page.locator("#chart-containment svg text.big")).to_have_text("0%")
    await expect(page.locator("#chart-times svg")).to_contain_text("technical (1)")
    await expect(page.locator("#chart-dropoff svg")).to_have_attribute(
        "aria-label", re.compile(r"handoff: reached 1, hung up there 0"))
    async with page.expect_download() as download:
        await page.click("#report-csv")
    path = await (await download.value).path()
    assert "by_intent,internet_down,contacts,1" in path.read_text().splitlines()
    await expect(page.locator("#recent")).to_contain_text("Anna de Vries")
    await expect(page.locator("#recent")).to_contain_text("technical")
    assert real_errors(errors) == []


async def test_agent_is_refused_the_supervisor_console(browser: Browser, base_url: str) -> None:
    """An agent who opens /supervisor gets a 403 page, not the console."""
    page, _ = await new_page(browser)
    await sign_in(page, base_url, "agent1")
    await expect(page).to_have_url(f"{base_url}/agent")
    response = await page.goto(f"{base_url}/supervisor")
    assert response is not None and response.status == 403
    await expect(page.get_by_test_id("error-message")).to_contain_text("supervisor role")


async def test_sign_in_rate_limit(browser: Browser, base_url: str) -> None:
    """Five wrong passwords, then even the right one is refused with 429 for a while."""
    page, _ = await new_page(browser)
    for _ in range(5):
        await sign_in(page, base_url, "agent1", "wrong-password")
        await expect(page.get_by_test_id("login-message")).to_have_text(
            "Wrong username or password.")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await sign_in(page, base_url, "agent1")
    assert (await answer.value).status == 429
    await expect(page.get_by_test_id("login-message")).to_contain_text("Too many failed")


async def test_supervisor_runs_the_live_centre(browser: Browser, centre_url: str,
                                               live: tuple[ContactCentre, FakeAmiServer],
                                               core: WebCore) -> None:
    """With Asterisk's AMI (here FakeAmiServer) behind the node, at 1366x768: another
    Asterisk's queues (broadcast by its node) show below this one's; the supervisor logs
    agent 1001 in and pauses them from the Agents panel, the Queues panel
    follows, and the general load split moved to 60/40 with the keyboard is stored and
    followed by the next routing decisions."""
    centre, _ = live
    # Asterisk B's state as its node broadcasts it (ivr.contact_centre.remote)
    other = "http://10.0.0.2:8088"
    core.remote_centres.deliver(RemoteCentres.message(other, {
        "stale_s": 0.0, "in_sync": True, "queues": {"tech": {
            "waiting": 3, "longest_wait_s": 75.0, "by_priority": [[0, 3]]}},
        "skills": {"tech": {"logged_in": 2, "staffed": 2, "ready": 0, "busy": 2, "paused": 0,
                            "wrap_up": 0, "aht_s": None, "aht_samples": 0}}}))
    page, errors = await new_page(browser, 1366, 768)
    await sign_in(page, centre_url, "super")
    await expect(page).to_have_url(f"{centre_url}/supervisor")
    await expect(page.locator("#sync")).to_have_text("in sync with Asterisk")
    remote = page.locator(f"#other-centres [data-asterisk='{other}']")
    await expect(remote.locator("h3")).to_contain_text(f"Also on {other}")
    tech = remote.locator("tr[data-skill='tech'] td")
    await expect(tech.nth(3)).to_have_text("2")  # busy
    await expect(tech.nth(6)).to_have_text("3")  # waiting, nobody ready: flagged
    await expect(tech.nth(7)).to_have_text("1 min 15 s")
    await expect(tech.nth(6)).to_have_class(re.compile("hot"))
    agent = page.locator("#agents tr[data-code='1001']")
    await expect(agent).to_contain_text("logged out")
    await agent.get_by_role("button", name="Log in Sanne Visser").click()
    await expect(page.locator("#agents-result")).to_have_text("1001 logged in")
    await expect(agent.locator("td").nth(4)).to_contain_text("ready")  # live, from AMI
    await expect(agent.locator("td").nth(5)).to_have_text("0")  # calls today
    billing = page.locator("#queues tr[data-skill='billing'] td")
    await expect(billing.nth(1)).to_have_text("1")  # logged in
    await expect(billing.nth(2)).to_have_text("1")  # ready
    await agent.get_by_role("button", name="Pause Sanne Visser").click()
    await expect(agent).to_contain_text("paused (break)")
    await expect(billing.nth(4)).to_have_text("1")  # paused
    await expect(billing.nth(2)).to_have_text("0")

    split = page.locator("form[data-skill='general']")
    slider = split.get_by_role("slider")
    await expect(slider).to_have_value("70")
    await slider.focus()
    await page.keyboard.press("ArrowLeft")
    await page.keyboard.press("ArrowLeft")  # steps of 5
    await expect(split.locator("output")).to_have_text("own 60 % · partner 40 %")
    await page.keyboard.press("Tab")  # to Save
    await page.keyboard.press("Enter")
    await expect(split.locator(".split-note")).to_have_text("saved")
    await expect(split).to_contain_text("stored: 60 / 40")
    stored = await centre.directory.get_split("general")
    assert stored is not None and (stored.own_pct, stored.partner_pct) == (60, 40)
    assert real_errors(errors) == []  # Chromium's /favicon.ico request is a 404

    # The next calls follow the slider: with someone ready on both sides, 10 routing
    # decisions for `general` go exactly 6 to our own centre and 4 to the partner (the
    # smooth weighted round-robin is exact per window of 60:40 = 3:2).
    await centre.membership.resume("1001")
    await centre.membership.login("1003")  # Partner BV
    def both_sides_ready() -> bool:
        general = centre.feed.snapshot().skill("general")
        return general.ready(CentreKind.OWN) >= 1 and general.ready(CentreKind.PARTNER) >= 1

    await _until(both_sides_ready)
    spec = IntentSpec("speak_to_agent", Scenario.AGENT, "general", {"en": "an agent"})
    sides: Counter[str] = Counter()
    for _ in range(10):
        decision = await centre.router.route(RouteRequest(
            spec=spec, customer=None, at=demo_moment(), language="en"))
        sides[str(decision.side)] += 1
    assert sides == {"own": 6, "partner": 4}, sides


async def test_dutch_pages_fit_a_laptop_and_work_by_keyboard(
        browser: Browser, centre_url: str, live: tuple[ContactCentre, FakeAmiServer]) -> None:
    """At 1366x768: NL chosen in the top bar, a keyboard-only sign-in, the console and
    the agent desktop in Dutch (scripts too), nothing wider than the screen."""
    page, errors = await new_page(browser, 1366, 768)
    await page.goto(f"{centre_url}/login")
    await page.get_by_role("link", name="NL").click()
    await expect(page.locator("h1")).to_have_text("Aanmelden")
    await expect(page.locator("html")).to_have_attribute("lang", "nl")
    await page.keyboard.type("super")  # the username field has the focus
    await page.keyboard.press("Tab")
    await page.keyboard.type(DEMO_PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{centre_url}/supervisor")
    await expect(page.locator("#sync")).to_have_text("synchroon met Asterisk")
    await expect(page.locator("#reports-title")).to_have_text("Rapporten")
    await expect(page.locator("#agents tr[data-code='1001'] td").nth(4)).to_have_text("afgemeld")
    await expect(page.locator("#chart-reasons")).to_contain_text("geen contacten")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1366
    await page.goto(f"{centre_url}/agent")
    await expect(page.locator("#waiting")).to_contain_text("Wachten op een gesprek")
    await expect(page.locator("#live")).to_have_text("live")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1366
    assert real_errors(errors) == []
