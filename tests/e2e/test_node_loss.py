"""A node killed with SIGKILL mid-call: the caller reaches a human within the lease.

Before the lease, a caller whose node died stayed in ``Stasis()`` in silence until
they hung up (the websocket just goes quiet; Asterisk keeps the channel in the app).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.telephony.ami import AmiClient
from ivr.testing.centre import clear_queue_members
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
    env = {**os.environ, "IVR_ARI_LEASE_S": str(LEASE_S), "IVR_LIVE_ROUTING": "true",
           "KANAAL_RIG_ROOT": str(rig.root), "KANAAL_RIG_SIP_PORT": str(rig.ports.sip),
           "KANAAL_RIG_HTTP_PORT": str(rig.ports.http), "KANAAL_RIG_AMI_PORT": str(rig.ports.ami),
           "KANAAL_RIG_AGI_PORT": str(rig.ports.agi),
           "KANAAL_RIG_AGENT_BASE_PORT": str(rig.ports.agent_base)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.testing.node_process", url,
        stdout=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None
    async with asyncio.timeout(300):  # a cold matcher cache trains first (CI)
        while (line := await proc.stdout.readline()) != b"READY\n":
            assert line, "the node process ended before it was ready"
    return proc


async def agent1_in_fallback_queue(rig: Rig) -> None:
    """Agent 1 in ivr-general (the fallback queue), as the node's login put it."""
    creds = rig.credentials
    ami = AmiClient("127.0.0.1", rig.ports.ami, username=creds.ami_user,
                    secret=creds.ami_password)
    task = asyncio.create_task(ami.run())
    try:
        await ami.wait_connected(10)
        async with asyncio.timeout(30):
            for _ in itertools.count():  # nothing to await: poll Asterisk's own view
                members = (await ami.queue_status()).members
                if any(m.queue == "ivr-general" and m.interface == "PJSIP/agent1"
                       for m in members):
                    return
                await asyncio.sleep(0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_caller_reaches_a_human_within_the_lease_after_kill_9(
        rig: Rig, tmp_path: Path) -> None:
    """SIGKILL the node while the caller is in the IVR dialogue: the caller's channel
    leaves Stasis when the lease runs out and agent 1 rings with X-IVR-Fallback:
    app_lost, within the lease plus a few seconds; the caller was never dropped."""
    creds = rig.credentials
    ami = AmiClient("127.0.0.1", rig.ports.ami, username=creds.ami_user,
                    secret=creds.ami_password)
    ami_task = asyncio.create_task(ami.run())
    await ami.wait_connected(10)
    await clear_queue_members(ami)
    ami_task.cancel()
    await asyncio.gather(ami_task, return_exceptions=True)
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
