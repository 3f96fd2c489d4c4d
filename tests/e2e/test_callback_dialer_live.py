"""Callbacks through the rig (test-accelerated 10 s slots, 25 s ahead): a caller asks to be called
back and picks the second slot by key; at that time the dialer (ARI originate) rings a
SIPp agent first, with the original question on the agent leg (X-IVR-Question) and in
the pushed screen-pop, then the SIPp customer, and bridges them. The callback record
shows the connected attempt."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ivr.cli.demo_cmd import demo_moment
from ivr.cli.voice_call import VoiceCallSpec, voice_node
from ivr.config import load_settings
from ivr.domain.callbacks import CallbackStatus
from ivr.domain.model import Outcome
from ivr.storage.callbacks import SqlCallbackBook
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing.centre import clear_queue_members
from ivr.testing.rig import Rig
from ivr.testing.sipcaller import SippAgent

pytestmark = [pytest.mark.e2e]

CALLER = "+447700900555"


class RunningFrom:
    """A clock that starts at a weekday 10:30 (the centre is open) and runs in real time."""

    def __init__(self, start: datetime) -> None:
        self._start, self._t0 = start, time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)


async def _pops(queue: asyncio.Queue[dict[str, Any]], sink: list[dict[str, Any]]) -> None:
    while True:
        sink.append(await queue.get())


async def test_caller_books_slot_two_and_agent_then_customer_are_called(
        rig: Rig, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=False)
    engine.dispose()
    customer = SippAgent(rig, 4)  # the customer's phone, reached over the "trunk"
    settings = replace(
        load_settings(env_file=None, environ={}), database_url=url, data_dir=tmp_path,
        callbacks=True,
        callback_slot_s=10.0, callback_lead_s=25.0, callback_capacity=("general=3",),
        callback_poll_s=0.5, callback_lease_s=15.0, callback_ring_s=10.0,
        callback_endpoint=f"PJSIP/caller/sip:{{number}}@127.0.0.1:{customer.port}",
        queue_announce_s=0.0)
    agent = SippAgent(rig, 1)
    await agent.start()
    await customer.start()
    pops: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        async with voice_node(settings, rig=rig, clock=RunningFrom(demo_moment()),
                              hangup_after_s=40) as line:
            centre = line.node.centre
            assert centre is not None and line.node.dialer is not None
            await clear_queue_members(centre.ami)
            await centre.membership.login("1001")
            reader = asyncio.create_task(_pops(line.node.app.screenpop.subscribe(), pops))
            report = await line.place(VoiceCallSpec(say="please call me back",
                                                    from_number=CALLER, dtmf="2"))
            c = report.contact
            assert c is not None, report.error
            details = [(s.step.value, s.detail) for s in c.steps]
            assert c.outcome is Outcome.CALLBACK, (c.transcript, details)
            book = SqlCallbackBook(make_engine(url))
            (cb,) = book.list_sync()
            assert cb.draft.number == CALLER and cb.draft.contact_id == c.id
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(50):
                    for _ in itertools.count():  # ruff's ASYNC110 wants no sleep-while
                        if book.get_sync(cb.id).status is CallbackStatus.DONE:
                            break
                        await asyncio.sleep(0.5)
            done = book.get_sync(cb.id)
            reader.cancel()
            for ch in await line.node.ari.channels():
                if ch.id.startswith("kanaal-cb-"):
                    with contextlib.suppress(Exception):
                        await line.node.ari.hangup(ch.id)
    finally:
        await agent.stop()
        await customer.stop()
    print(f"\ncallback e2e: {time.monotonic() - started:.1f} s; attempts {done.attempts}")
    assert done.status is CallbackStatus.DONE, done
    (attempt,) = done.attempts
    assert attempt.outcome == "connected" and attempt.agent == "PJSIP/agent1"
    assert attempt.started_at >= cb.draft.slot_start
    question = cb.draft.question
    assert "call me back" in question.lower()
    (agent_invite,) = agent.invites()
    assert agent_invite.get("x-ivr-question") == question
    assert agent_invite.get("x-ivr-session") == c.id
    (customer_invite,) = customer.invites()
    assert CALLER in customer_invite["request-uri"]
    popped = [p for p in pops if p.get("context", {}).get("callback") == cb.id]
    assert popped and popped[0]["context"]["question"] == question
    assert popped[0]["context"]["agent"] == "PJSIP/agent1"
