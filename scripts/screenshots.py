"""Screenshots of the agent desktop and the supervisor console for the docs.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Builds a throw-away demo database (demo CRM, demo users), plays a few calls through
the real contact journal and observers, runs a real contact centre against a
FakeAmiServer (agents logged in, one paused, one on a call, callers waiting), serves
the real web app on a free loopback port and photographs both pages with Debian's
headless chromium (no `playwright install`: it would download a browser). The
supervisor console is shot at 1366 px wide, the width it is laid out for.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from playwright.async_api import Page, ViewportSize, async_playwright, expect

from ivr.config import load_settings
from ivr.contact_centre.remote import RemoteCentres
from ivr.contact_centre.service import ContactCentre
from ivr.domain.centre import DeviceState
from ivr.domain.model import Outcome, Step
from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.db import make_engine, upgrade
from ivr.storage.desk import SqlDeskStore
from ivr.storage.seed import seed_demo
from ivr.testing.fake_ami import FakeAmiServer
from ivr.testing.live_centre import fake_centre
from ivr.testing.web import (
    DEMO_PASSWORD,
    CallScript,
    WebCore,
    add_demo_users,
    book_demo_callback,
    cheap_passwords,
    play_call,
    web_core,
)
from ivr.web.app import create_web_app, free_port, web_server

CALLS = (
    CallScript("1008", "I have a question about my invoice", "invoice_question", 0.93,
               "billing"),
    CallScript("1002", "where is my order", "order_status", 0.97, "general",
               outcome=Outcome.SELF_SERVED),
    CallScript("1005", "ik wil mijn abonnement opzeggen", "cancel_contract", 0.88,
               "retention", priority=2),
    CallScript(None, "euh", "unknown", 0.21, "general", outcome=Outcome.ABANDONED,
               dropped_at=Step.QUESTION),
)
# skill -> (who answered, seconds queued, seconds talked)
ANSWERED = {"billing": ("PJSIP/agent1", 14, 260), "retention": ("PJSIP/agent3", 35, 410)}
POP = CallScript("1001", "my internet keeps dropping since this morning", "internet_down",
                 0.87, "technical", pin_verified=True, priority=5,
                 reason="gold customer; outage in the caller's region")


async def staff(centre: ContactCentre, ami: FakeAmiServer) -> None:
    """A busy moment: three agents in their queues (one paused, one on a call) and
    callers waiting, all through the real membership service and AMI events."""
    for code in ("1001", "1002", "1003"):
        await centre.membership.login(code)
    await centre.membership.pause("1002", "coaching")
    await ami.member_status("PJSIP/agent1", DeviceState.INUSE, in_call=True)
    await ami.caller_join("ivr-billing", "1700.1", caller_id="+31201234567")
    await ami.caller_join("ivr-complaints", "1700.2", caller_id="+31301234567", priority=3)
    await ami.caller_join("ivr-general-partner", "1700.3", caller_id="+31611111111")


async def sign_in(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")


SECOND_ASTERISK = {
    "stale_s": 0.0, "in_sync": True,
    "queues": {"tech": {"waiting": 2, "longest_wait_s": 48.0, "by_priority": [[0, 2]]}},
    "skills": {
        "general": {"logged_in": 3, "staffed": 3, "ready": 1, "busy": 2, "paused": 0,
                    "wrap_up": 0, "aht_s": 312.0, "aht_samples": 41},
        "tech": {"logged_in": 2, "staffed": 2, "ready": 0, "busy": 2, "paused": 0,
                 "wrap_up": 0, "aht_s": 455.0, "aht_samples": 17}}}


async def shoot(core: WebCore, base: str, out: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True)
        size: ViewportSize = {"width": 1400, "height": 1050}
        agent = await (await browser.new_context(viewport=size)).new_page()
        book_demo_callback(core, "billing", "I was charged twice for November",
                           name="Bob Smith")
        book_demo_callback(core, "general", "please call me about moving house",
                           name="Anna de Vries")
        await sign_in(agent, base, "agent1")
        await expect(agent.locator("#live")).to_have_text("live")
        await play_call(core, POP)
        await expect(agent.locator("#confidence")).to_have_text("87 %")
        await agent.select_option("#wrapup-code", "escalated")
        await agent.fill("#wrapup-note", "Engineer visit booked for tomorrow morning.")
        await agent.screenshot(path=str(out / "agent.png"), full_page=True)
        laptop: ViewportSize = {"width": 1366, "height": 768}
        supervisor = await (await browser.new_context(viewport=laptop)).new_page()
        await sign_in(supervisor, base, "super")
        await expect(supervisor.locator("#calls")).to_have_text(str(len(CALLS) + 1))
        await expect(supervisor.locator("#recent")).to_contain_text("Anna de Vries")
        await expect(supervisor.locator("#sync")).to_have_text("in sync with Asterisk")
        await expect(supervisor.locator("#queues")).to_contain_text("complaints")
        await expect(supervisor.locator("#agents")).to_contain_text("paused (coaching)")
        await expect(supervisor.locator("#split-general")).to_have_value("70")
        await expect(supervisor.locator("#chart-times svg")).to_contain_text("retention")
        await expect(supervisor.locator("#agents tr[data-code='1001'] td").nth(5)).to_have_text("1")
        await supervisor.screenshot(path=str(out / "supervisor.png"), full_page=True)
        await browser.close()


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'kanaal.db'}"
        upgrade(url)
        engine = make_engine(url)
        seed_demo(engine)
        engine.dispose()
        settings = replace(load_settings(env_file=None, environ={}), database_url=url,
                           data_dir=Path(tmp))
        core = web_core(settings)
        add_demo_users(core.engine, cheap_passwords())
        agents = SqlAgentDirectory(core.engine)
        for script in CALLS:
            session = await play_call(core, script)
            if script.outcome is Outcome.AGENT:
                SqlDeskStore(core.engine).save_wrapup(session, "resolved", None)
                # What the live centre records from AMI (AgentConnect, AgentComplete):
                # who answered, the queue wait and the talk time, for reports and the
                # Agents panel's calls today.
                interface, wait_s, talk_s = ANSWERED[script.skill]
                await agents.record_agent(session, interface, wait_s=wait_s)
                await agents.record_talk(session, talk_s)
        port = free_port()
        async with fake_centre(core.engine, settings) as (centre, ami):
            await staff(centre, ami)
            # A second Asterisk's queues, as its node would broadcast them
            core.remote_centres.deliver(RemoteCentres.message(
                "http://10.20.0.12:8088", SECOND_ASTERISK))
            web = create_web_app(core, passwords=cheap_passwords(), centre=centre)
            async with web_server(web, "127.0.0.1", port):
                await shoot(core, f"http://127.0.0.1:{port}", out)
        core.engine.dispose()
    print(f"wrote {out / 'agent.png'} and {out / 'supervisor.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    target = parser.parse_args().out
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(target))
