"""The FastAGI entry through the rig: Asterisk's AGI() runs the real CallFlow with the real
recogniser (Whisper), the real matcher and the demo CRM, and the agent's phone rings."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import pytest

from ivr.app import build_node
from ivr.cli.demo_cmd import demo_moment
from ivr.cli.serve_cmd import rig_settings
from ivr.clock import PinnedClock
from ivr.config import load_settings
from ivr.domain.model import Outcome, Scenario
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing.app import running_app
from ivr.testing.rig import Rig
from ivr.testing.sipcaller import SippAgent, read_ulaw_wav, synthesize_utterance
from ivr.testing.turncaller import Turn, TurnCaller
from ivr.web.app import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CALLER = "+31655556666"  # Hannah Lee in the demo CRM: identified by caller ID
SAID = "I have a question about my invoice"


async def test_agi_entry_asks_understands_and_hands_off_with_context(rig: Rig,
                                                                    tmp_path: Path) -> None:
    """Dialling 601 (agi-entry): greeted by name, asked, heard by Whisper, routed to billing;
    the billing agent's INVITE carries the session and intent; the contact is complete."""
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=True)
    engine.dispose()
    port = free_port()
    settings = replace(rig_settings(load_settings(env_file=None, environ={}), rig),
                       database_url=url, data_dir=tmp_path, web_port=port,
                       public_url=f"http://127.0.0.1:{port}")
    agents = [SippAgent(rig, n) for n in (1, 2)]  # the billing queue's members
    for agent in agents:
        await agent.start()
    ready = asyncio.Event()
    try:
        async with running_app(settings, clock=PinnedClock(demo_moment())) as app:
            node = build_node(app)
            task = asyncio.create_task(node.run(ready))
            try:
                async with asyncio.timeout(120):
                    await ready.wait()
                # AGI has no barge-in: the caller speaks once the question has been played
                # and RECORD FILE takes its answer (no prompt lengths learned in advance).
                audio = await asyncio.to_thread(synthesize_utterance, SAID, "en")
                caller = TurnCaller(rig.ports.sip, from_number=CALLER, dialed="601",
                                    ready=lambda: any(c.awaiting_input
                                                      for c in node.agi_route.channels
                                                      if c.caller.number == CALLER))
                call = await caller.run([Turn(speech=read_ulaw_wav(audio), label="question")],
                                        stay_s=25.0, max_call_s=60.0, leave=lambda: bool(
                                            [i for a in agents for i in a.invites()
                                             if CALLER in i.get("from", "")]))
                (channel,) = [c for c in node.agi_route.channels
                              if c.caller.number == CALLER]
                contact = None
                for _ in range(50):
                    contact = await app.contacts.get(channel.session_id)
                    if contact is not None and contact.ended_at is not None:
                        break
                    await asyncio.sleep(0.1)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        invites = [i for a in agents for i in a.invites() if CALLER in i.get("from", "")]
    finally:
        for agent in agents:
            await agent.stop()
    assert call.answered, call.error
    assert contact is not None
    assert contact.intent == "invoice_question", contact.transcript
    assert contact.scenario is Scenario.AGENT and contact.outcome is Outcome.AGENT
    assert contact.question and "invoice" in contact.question.lower()
    assert any(t.startswith("ivr: Hello Hannah") for t in contact.transcript)
    assert invites, "the billing agent was not rung"
    assert invites[0]["x-ivr-session"] == channel.session_id
    assert invites[0]["x-ivr-intent"] == "invoice_question"
    assert invites[0]["x-ivr-queue"] == "ivr-billing"
