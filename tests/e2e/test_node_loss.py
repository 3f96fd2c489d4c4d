"""A node killed with SIGKILL mid-call: the caller reaches a human within the lease.

Before the lease, a caller whose node died stayed in ``Stasis()`` in silence until
they hung up (the websocket just goes quiet; Asterisk keeps the channel in the app).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from pathlib import Path

import pytest

from ivr.clock import SystemClock
from ivr.domain.model import Outcome
from ivr.storage.db import make_engine, upgrade
from ivr.storage.repositories import SqlContactLog
from ivr.storage.seed import seed_demo
from ivr.telephony.ami.app_lost import AppLostCloser
from ivr.testing.centre import clear_queue_members, rig_ami
from ivr.testing.node_process import node_env, start_node_process
from ivr.testing.rig import Rig
from ivr.testing.sipcaller import SippAgent, place_call, synthesize_utterance

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LEASE_S = 4.0


async def start_node(tmp_path: Path, rig: Rig) -> asyncio.subprocess.Process:
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=True)  # the node logs the rig's agents in on connect
    engine.dispose()
    return await start_node_process(url, node_env(rig, IVR_ARI_LEASE_S=str(LEASE_S)))


async def agent1_in_fallback_queue(rig: Rig) -> None:
    """Agent 1 in ivr-general (the fallback queue), as the node's login put it."""
    async with rig_ami(rig) as ami, asyncio.timeout(30):
        for _ in itertools.count():  # nothing to await: poll Asterisk's own view
            members = (await ami.queue_status()).members
            if any(m.queue == "ivr-general" and m.interface == "PJSIP/agent1"
                   for m in members):
                return
            await asyncio.sleep(0.3)


async def test_caller_reaches_a_human_within_the_lease_after_kill_9(
        rig: Rig, tmp_path: Path) -> None:
    """SIGKILL the node while the caller is in the IVR dialogue: the caller's channel
    leaves Stasis when the lease runs out and agent 1 rings with X-IVR-Fallback:
    app_lost, within the lease plus a few seconds; the caller was never dropped."""
    async with rig_ami(rig) as ami:
        await clear_queue_members(ami)
    node = await start_node(tmp_path, rig)
    killed_at = 0.0
    async with SippAgent(rig, 1) as agent:
        try:
            await agent1_in_fallback_queue(rig)
            audio = await asyncio.to_thread(
                synthesize_utterance, "I have a question about my invoice")
            call = asyncio.create_task(place_call(
                rig, audio, "+31655556666", dialed="100", hangup_after_s=40,
                audio_delay_s=6.0))
            await asyncio.sleep(5)  # the IVR is greeting / asking: the call is in Stasis
            node.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            await node.wait()
            invite = await agent.wait_for_invite(timeout_s=LEASE_S + 15)
            reached_s = time.monotonic() - killed_at
            result = await call
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
    print(f"\nnode killed; agent rang {reached_s:.1f}s later (lease {LEASE_S:.0f}s); "
          f"caller: {result}")
    assert invite.get("x-ivr-fallback") == "app_lost", invite
    assert reached_s <= LEASE_S + 5
    assert result.answered
    # Nobody was left to write the outcome: the dialplan's T path noted the session in
    # AstDB, and a node on this Asterisk (the closer it runs) closes the record from it.
    contacts = SqlContactLog(make_engine(f"sqlite:///{tmp_path / 'kanaal.db'}"))
    session = invite.get("x-ivr-session", "")
    left = await contacts.get(session)
    assert left is not None and left.outcome is None and left.steps, left
    async with rig_ami(rig) as ami:
        closer = AppLostCloser(ami, contacts, clock=SystemClock())
        assert any(n.session_id == session for n in await closer.notes())
        assert session in await closer.sweep()
        assert not any(n.session_id == session for n in await closer.notes())
    closed = await contacts.get(session)
    assert closed is not None and closed.outcome is Outcome.ERROR_TO_AGENT, closed
    assert closed.steps[-1].detail["reason"] == "app_lost", closed.steps[-1]
