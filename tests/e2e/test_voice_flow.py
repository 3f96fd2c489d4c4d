"""The real product end to end: SIPp callers speak to Asterisk 22, the node runs the real
CallFlow (Whisper ASR, real matcher, SQLite CRM, Twilio sandbox) and agents answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from ivr.cli.demo_cmd import demo_moment
from ivr.cli.voice_call import VoiceCallSpec, run_voice_calls
from ivr.clock import PinnedClock
from ivr.config import load_settings
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing.app import running_app
from ivr.testing.rig import Rig
from ivr.testing.sipcaller import SippAgent, answered
from ivr.web.app import create_web_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_scenarios_through_asterisk_with_agent_and_screenpop(rig: Rig,
                                                                   tmp_path: Path) -> None:
    """S1, S2 and S4 calls at once: right scenario from real speech, response timings
    recorded, the S4 agent leg carries the session and the screen-pop shows the call."""
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=True)
    engine.dispose()
    settings = replace(load_settings(env_file=None, environ={}), database_url=url,
                       data_dir=tmp_path, api_token="e2e-token",
                       no_input_timeout_s=3.0)  # keeps the keypad-fallback call short
    clock = PinnedClock(demo_moment())
    agents = [SippAgent(rig, n) for n in (1, 2)]  # the billing queue's members
    specs = [
        VoiceCallSpec(say="where is my order", from_number="+447700900123"),
        VoiceCallSpec(say="I am moving house and need to change my address",
                      from_number="+447700900456"),
        # Stays on the line until the billing agent has answered (screen-pop below),
        # then leaves (it used to hold the line for all 40 s).
        VoiceCallSpec(say="I have a question about my invoice", from_number="+31655556666",
                      hangup_after_s=40, leave_when=answered(agents, "+31655556666", 2)),
        # Stays until the IVR hangs up after the chat link (the test caller otherwise hangs
        # up after the IVR's first reply). The limit counts from the start of the call,
        # and David first hears his region's outage message: 30 s was too short in CI.
        VoiceCallSpec(say="the app keeps crashing on my phone", from_number="+31611112222",
                      hangup_after_s=55),
        # Says nothing twice: the keypad menu comes, key 2 = invoice question (billing).
        VoiceCallSpec(say="", from_number="+447700900999", dtmf="2", silent_turns=2),
    ]
    for agent in agents:
        await agent.start()
    try:
        reports = await run_voice_calls(settings, specs, concurrent=True, rig=rig, clock=clock,
                                        hangup_after_s=55.0)
    finally:
        for agent in agents:
            await agent.stop()
    by_number = {r.spec.from_number: r for r in reports}
    for r in reports:
        assert r.contact is not None, (r.spec, r.error)
    order = by_number["+447700900123"].contact
    link = by_number["+447700900456"].contact
    billing = by_number["+31655556666"].contact
    assert order and order.intent == "order_status" and order.scenario and \
        order.scenario.value == "S1"
    assert any("B 7 7 7 3 1" in t for t in order.transcript)  # real order data was spoken
    assert link and link.intent == "address_change" and link.action == "link:address_change:sms"
    assert billing and billing.intent == "invoice_question" and billing.skill == "billing"
    assert billing.outcome is not None and billing.outcome.value == "agent"
    chat = by_number["+31611112222"].contact
    assert chat and chat.intent == "tech_support_app" and chat.outcome is not None
    assert chat.outcome.value == "chat", (chat.dropped_at, chat.transcript,
                                          [(s.step.value, s.detail) for s in chat.steps])
    keypad = by_number["+447700900999"].contact
    assert keypad and keypad.intent == "invoice_question", keypad
    assert any(s.step.value == "keypad" for s in keypad.steps)
    assert all(r.response_ms for r in reports if r.spec.say), "no end-of-speech timing"
    invites = [inv for agent in agents for inv in agent.invites()]
    sessions = {{k.lower(): v for k, v in inv.items()}.get("x-ivr-session") for inv in invites}
    assert billing.id in sessions, invites
    async with running_app(settings) as app:
        transport = httpx.ASGITransport(app=create_web_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://ivr") as web:
            pop = (await web.get(f"/api/contacts/{billing.id}",
                                 headers={"Authorization": "Bearer e2e-token"})).json()
    assert pop["customer"]["name"] == "Hannah Lee"
    assert any("invoice" in line for line in pop["transcript"])
