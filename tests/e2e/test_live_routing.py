"""Smart routing on the live state of a real Asterisk: SIPp callers talk to the IVR,
SIPp agents answer, Kanaal follows app_queue over AMI and decides every hand-off."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ivr.app import App
from ivr.cli.demo_cmd import demo_moment
from ivr.cli.voice_call import VoiceCallSpec, VoiceLine, voice_node
from ivr.clock import PinnedClock
from ivr.config import Settings, load_settings
from ivr.contact_centre.service import ContactCentre
from ivr.domain.model import (
    Contact,
    ContactChannel,
    Outcome,
    RouteRequest,
    Scenario,
)
from ivr.domain.smart_routing import RoutingPolicy, expected_wait_s
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.telephony.ami.events import AgentConnect, QueueCallerJoin
from ivr.testing.centre import clear_queue_members
from ivr.testing.rig import Rig
from ivr.testing.sipcaller import SippAgent

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INVOICE = "I have a question about my invoice"
HANNAH, BOB, DAVID = "+31655556666", "+447700900123", "+31611112222"  # standard, std, platinum
FRANK = "+447700900456"  # gold, London: called nobody today before the repeat test


def seeded(tmp_path: Path, **over: object) -> Settings:
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=False)  # agents log in through the membership service
    engine.dispose()
    return replace(load_settings(env_file=None, environ={}), database_url=url,
                   data_dir=tmp_path, **over)  # type: ignore[arg-type]


async def until(pred: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Poll live state (it changes on AMI events; there is nothing to await)."""
    async with asyncio.timeout(timeout_s):
        for _ in itertools.count():
            if pred():
                return
            await asyncio.sleep(0.1)


def centre_of(line: VoiceLine) -> ContactCentre:
    centre = line.node.centre
    assert centre is not None, "live routing is on by default"
    return centre


async def staff(centre: ContactCentre, *codes: str) -> None:
    """Only these agents logged in, in Asterisk and in the live state."""
    await clear_queue_members(centre.ami)
    for code in codes:
        await centre.membership.login(code)
    snap = centre.feed.snapshot
    await until(lambda: sum(v.logged_in() for v in snap().skills.values()) >= len(codes)
                and snap().skill("billing").logged_in() == sum(
                    1 for c in codes if c in ("1001", "1002")))


async def test_nobody_logged_in_hears_an_alternative_and_is_never_queued(
        rig: Rig, tmp_path: Path) -> None:
    """No billing agent (nor overflow) logged in: the caller is told so and gets the chat
    link; app_queue never sees them join a queue."""
    settings = seeded(tmp_path)
    async with voice_node(settings, rig=rig, clock=PinnedClock(demo_moment()),
                          hangup_after_s=40) as line:
        centre = centre_of(line)
        await staff(centre)
        await until(lambda: centre.feed.snapshot().skill("general").logged_in() == 0)
        with centre.ami.subscribe(QueueCallerJoin) as joins:
            report = await line.place(VoiceCallSpec(INVOICE, HANNAH))
            joined = await joins.get(within_s=0.5)
    c = report.contact
    assert c is not None, report.error
    assert c.intent == "invoice_question", c.transcript
    assert c.outcome is Outcome.CHAT and c.scenario is Scenario.CHAT
    assert any("none of our colleagues for" in t for t in c.transcript), c.transcript
    assert joined is None, f"the caller was queued: {joined}"


async def _priority_calls(line: VoiceLine, agent1: SippAgent) -> dict[str, object]:
    """C0 keeps the only billing agent busy; a standard caller, then a platinum one,
    queue behind; when C0 ends the platinum caller is answered first."""
    centre = centre_of(line)
    t0 = time.monotonic()
    with centre.ami.subscribe(AgentConnect, QueueCallerJoin) as connects:
        # Timeline (s): C0 is with the agent from ~23 and ends at 65; the standard
        # caller is routed ~30 (agent busy by then) and queues; the platinum caller
        # (later, and told about an outage first) queues ~36. Both must be waiting when
        # C0 ends, and outlast the caller served before them.
        first = asyncio.create_task(line.place(VoiceCallSpec(INVOICE, HANNAH,
                                                             hangup_after_s=65)))
        await asyncio.sleep(15)
        normal = asyncio.create_task(line.place(VoiceCallSpec(INVOICE, BOB,
                                                              hangup_after_s=120)))
        await asyncio.sleep(3)
        gold = asyncio.create_task(line.place(VoiceCallSpec(INVOICE, DAVID,
                                                            hangup_after_s=80)))
        reports = await asyncio.gather(first, normal, gold)
        holds = []
        joins = []
        while (ev := await connects.get(within_s=0.2)) is not None:
            if isinstance(ev, AgentConnect):
                holds.append((ev.caller_id_num, ev.hold_time))
            elif isinstance(ev, QueueCallerJoin):
                joins.append((ev.caller_id_num, ev.position, ev.variables.get("QUEUE_PRIO")))
    print(f"\njoins (caller, position, QUEUE_PRIO): {joins}; connects (caller, hold s): "
          f"{holds}; took {time.monotonic() - t0:.0f}s")
    order = [i.get("from", "") for i in agent1.invites()]
    return {"reports": reports, "order": order, "holds": holds}


async def test_live_routing_split_priority_position_repeat_and_resync(
        rig: Rig, tmp_path: Path) -> None:
    """On live AMI state: 100 decisions split 70/30 exactly; a platinum caller who calls
    after a standard one is answered first, both hear position and expected wait; a
    repeat caller reaches their previous agent; AMI dropped mid-call resyncs, nothing lost."""
    # Overflow only after 10 minutes: this test wants callers to wait for billing.
    settings = seeded(tmp_path, overflow_after_s=600.0)
    agents = {n: SippAgent(rig, n) for n in (1, 2, 3)}
    for agent in agents.values():
        await agent.start()
    try:
        async with voice_node(settings, rig=rig, clock=PinnedClock(demo_moment()),
                              hangup_after_s=40) as line:
            centre = centre_of(line)
            await staff(centre, "1001", "1003")  # billing: only 1001; general: 1001 + 1003
            app: App = line.node.app
            # --- load split: the Router's decisions on the live state -------------------
            spec = app.catalogue.spec("speak_to_agent")
            assert spec is not None and spec.skill == "general"
            sides = Counter()
            for _ in range(100):
                d = await app.router.route(RouteRequest(spec=spec, customer=None,
                                                        at=app.clock.now(), language="en"))
                sides[d.side] += 1
            assert abs(sides["own"] - 70) <= 2 and abs(sides["partner"] - 30) <= 2, sides
            # --- priority, position and expected wait -------------------------------------
            got = await _priority_calls(line, agents[1])
            # --- repeat caller + AMI dropped mid-call ----------------------------------
            await centre.membership.login("1002")  # billing 3: not the best-skilled
            await until(lambda: centre.feed.snapshot().skill("billing").ready() == 2)
            yesterday = app.clock.now() - timedelta(days=1)
            await app.contacts.save(Contact(
                id="earlier-frank", channel=ContactChannel.VOICE, caller=FRANK,
                started_at=yesterday, language="en", customer_id=6,
                intent="invoice_question").snapshot())
            assert await centre.directory.record_agent("earlier-frank", "PJSIP/agent2")
            resyncs = centre.feed.resyncs
            repeat = asyncio.create_task(line.place(VoiceCallSpec(INVOICE, FRANK,
                                                                  hangup_after_s=30)))
            await asyncio.sleep(4)
            await centre.ami.close_connection()  # AMI gone for a moment, mid-call
            repeat_report = await repeat
            assert centre.feed.resyncs > resyncs, "no resync after the AMI drop"
    finally:
        for agent in agents.values():
            await agent.stop()
    first, normal, gold = got["reports"]  # type: ignore[misc]
    for r in (first, normal, gold):
        assert r.contact is not None and r.contact.outcome is Outcome.AGENT, (r.spec, r.error)
    order = got["order"]
    assert len(order) == 3 and DAVID in order[1] and BOB in order[2], (
        order, [(r.spec.from_number, r.contact.skill, r.contact.steps[-1].detail)
                for r in (first, normal, gold)])
    want = expected_wait_s(1, 0, 1, RoutingPolicy().default_aht_s)
    assert want is not None
    for r in (normal, gold):
        said = " ".join(r.contact.transcript)
        assert "You are number 1 in line" in said, said
        assert f"about {round(want / 60)} minutes" in said, said
    print(f"\nannounced wait {want:.0f}s; actual holds (caller, s): {got['holds']}")
    rc = repeat_report.contact
    assert rc is not None and rc.outcome is Outcome.AGENT, repeat_report.error
    frank_at_2 = [i for i in agents[2].invites() if FRANK in i.get("from", "")]
    assert frank_at_2 and frank_at_2[-1]["x-ivr-session"] == rc.id, agents[2].invites()
