"""The callback dialer on real SQLite with a scripted telephony fake: agent-first rings
the agent (screen-pop and SIP headers carry the question) then the customer and
bridges; customer-first queues the customer with priority; no answer retries within
the slot and then texts; nobody ready retries soon without dialling; an attempt left by
a dead node is never dialled again; a process killed mid-attempt is not re-dialled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ivr.callbacks.dialer import CallbackDialer, DialerSettings
from ivr.domain.callbacks import (
    CallbackDraft,
    CallbackRecord,
    CallbackStatus,
    SlotPolicy,
    candidate_starts,
)
from ivr.domain.ports import LegResult
from ivr.storage.callbacks import SqlCallbackBook
from ivr.storage.db import make_engine, upgrade
from ivr.testing.fakes import FakeMessenger, FakeScreenPop

POLICY = SlotPolicy(slot_s=600, lead_s=60, max_attempts=2, retry_s=120,
                    strategy={"tech": "customer_first"})
QUESTION = "my invoice is twice as high as last month"


@dataclass
class ScriptedCalls:
    """OutboundCalls that answers per endpoint as scripted (cause 0 = answered)."""

    causes: dict[str, list[int]] = field(default_factory=dict)
    rung: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    bridged: list[list[str]] = field(default_factory=list)
    queued: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    live: set[str] = field(default_factory=set)

    async def ring(self, channel_id: str, endpoint: str, *, timeout_s: float,
                   variables: dict[str, str]) -> LegResult:
        self.rung.append((channel_id, endpoint, variables))
        cause = (self.causes.get(endpoint) or [0]).pop(0) if self.causes.get(endpoint) else 0
        return LegResult(cause == 0, cause)

    async def bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        self.bridged.append(list(channel_ids))

    async def to_queue(self, channel_id: str, variables: dict[str, str]) -> None:
        self.queued.append((channel_id, variables))

    async def until_hangup(self, channel_ids: Sequence[str], bridge_id: str | None,
                           max_s: float) -> None:
        return None

    async def hang_up(self, channel_id: str) -> None:
        self.live.discard(channel_id)

    async def alive(self, channel_id: str) -> bool:
        return channel_id in self.live


@dataclass
class OneAgent:
    agent: str | None = "PJSIP/agent1"
    held: list[str] = field(default_factory=list)

    async def reserve(self, skill: str, language: str) -> str | None:
        if self.agent:
            self.held.append(self.agent)
        return self.agent

    async def release(self, interface: str) -> None:
        self.held.remove(interface)


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.at


@dataclass
class Bench:
    url: str
    clock: Clock = field(default_factory=Clock)
    calls: ScriptedCalls = field(default_factory=ScriptedCalls)
    agents: OneAgent = field(default_factory=OneAgent)
    messenger: FakeMessenger = field(default_factory=FakeMessenger)
    pops: FakeScreenPop = field(default_factory=FakeScreenPop)

    def __post_init__(self) -> None:
        self.book = SqlCallbackBook(make_engine(self.url), now=self.clock.now)

    def dialer(self, node: str = "n1") -> CallbackDialer:
        return CallbackDialer(
            self.book, POLICY, self.calls,
            settings=DialerSettings(node=node, endpoint="PJSIP/{number}@trunk", lease_s=30),
            clock=self.clock, messenger=self.messenger, screenpop=self.pops,
            manage_link=lambda cid: f"https://k.example/cb/{cid}", agents=self.agents)

    def booked(self, skill: str = "billing") -> CallbackRecord:
        start = candidate_starts(self.clock.at, POLICY, 1)[0]
        cb = self.book.book_sync(CallbackDraft(
            contact_id="contact-1", number="+31302345678", language="nl", skill=skill,
            slot_start=start, slot_end=start + timedelta(seconds=POLICY.slot_s),
            question=QUESTION, intent="invoice_question"), policy=POLICY, cap=5)
        self.clock.at = start + timedelta(seconds=1)
        return cb

    async def claim(self, node: str = "n1") -> CallbackRecord:
        (cb,) = await self.book.claim_due(node, lease_s=30)
        return cb


def bench(tmp_path: Path) -> Bench:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    return Bench(url)


async def test_agent_first_rings_the_agent_with_the_question_then_the_customer(
        tmp_path: Path) -> None:
    """Agent rung first (pop + X-IVR-Question header), then the customer; bridged; done."""
    b = bench(tmp_path)
    b.booked()
    done = await b.dialer().serve(await b.claim())
    assert done.status is CallbackStatus.DONE and done.outcome == "connected"
    (a,) = done.attempts
    assert a.outcome == "connected" and a.agent == "PJSIP/agent1" and a.ended_at is not None
    (agent_leg, agent_ep, agent_vars), (cust_leg, cust_ep, _) = b.calls.rung
    assert agent_ep == "PJSIP/agent1" and cust_ep == "PJSIP/+31302345678@trunk"
    assert agent_vars["PJSIP_HEADER(add,X-IVR-Question)"] == QUESTION
    assert agent_vars["__IVR_SESSION"] == "contact-1"
    assert agent_leg == f"{a.channel_id}-a" and cust_leg == f"{a.channel_id}-c"
    assert b.calls.bridged == [[agent_leg, cust_leg]]
    assert b.pops.published["contact-1"]["question"] == QUESTION
    assert b.agents.held == []  # released


async def test_customer_first_queues_the_answered_customer_with_priority(
        tmp_path: Path) -> None:
    """Strategy per skill: tech is customer-first -> no agent leg, queued at priority."""
    b = bench(tmp_path)
    b.booked("tech")
    done = await b.dialer().serve(await b.claim())
    assert done.status is CallbackStatus.DONE
    assert [ep for _, ep, _ in b.calls.rung] == ["PJSIP/+31302345678@trunk"]
    (_, variables), = b.calls.queued
    assert variables == {"IVR_QUEUE": "tech", "QUEUE_PRIO": "10"}


async def test_no_answer_retries_in_the_slot_then_texts(tmp_path: Path) -> None:
    """No answer -> retry 2 minutes later; busy on the last attempt -> failed + SMS."""
    b = bench(tmp_path)
    b.booked()
    b.calls.causes["PJSIP/+31302345678@trunk"] = [19, 17]
    first = await b.dialer().serve(await b.claim())
    assert first.status is CallbackStatus.RETRY and first.outcome == "no_answer"
    assert first.next_attempt_at == b.clock.at + timedelta(seconds=120)
    assert await b.book.claim_due("n1", lease_s=30) == []  # not due yet
    b.clock.at = first.next_attempt_at
    second = await b.dialer().serve(await b.claim())
    assert second.status is CallbackStatus.FAILED
    assert [x.outcome for x in second.attempts] == ["no_answer", "busy"]
    (sms,) = b.messenger.sent
    assert sms["to"] == "+31302345678" and "https://k.example/cb/" in sms["body"]


async def test_nobody_ready_retries_soon_without_dialling(tmp_path: Path) -> None:
    """Agent-first with no ready agent: nothing is dialled, no attempt is used up."""
    b = bench(tmp_path)
    b.booked()
    b.agents.agent = None
    rec = await b.dialer().serve(await b.claim())
    assert rec.status is CallbackStatus.RETRY and rec.outcome == "agent_unavailable"
    assert rec.attempts == () and b.calls.rung == []
    assert rec.next_attempt_at == b.clock.at + timedelta(seconds=30)


async def test_dead_nodes_attempt_is_never_dialled_again(tmp_path: Path) -> None:
    """Node n1 wrote attempt 1 and died. While its channel is up, n2 dials nothing; once
    gone, attempt 1 counts (interrupted) and the retry comes later, under a new id."""
    b = bench(tmp_path)
    cb = b.booked()
    mine = await b.claim("n1")
    a1 = await b.book.start_attempt(mine.id, "n1", lease_s=30)
    b.calls.live.add(f"{a1.channel_id}-c")  # n1's dial is still ringing in Asterisk
    b.clock.at += timedelta(seconds=31)
    rec = await b.dialer("n2").serve(await b.claim("n2"))
    assert b.calls.rung == [] and rec.attempts[-1].outcome is None
    b.calls.live.clear()
    b.clock.at = rec.next_attempt_at
    rec = await b.dialer("n2").serve(await b.claim("n2"))
    assert b.calls.rung == [] and rec.status is CallbackStatus.RETRY
    assert rec.attempts[-1].outcome == "interrupted"
    b.clock.at = rec.next_attempt_at
    rec = await b.dialer("n2").serve(await b.claim("n2"))
    assert rec.status is CallbackStatus.DONE and rec.id == cb.id
    assert {ch for ch, _, _ in b.calls.rung} == {rec.attempts[1].channel_id + "-c",
                                                 rec.attempts[1].channel_id + "-a"}
    assert rec.attempts[1].channel_id != a1.channel_id


_CHILD = """
import sys, time
from ivr.storage.callbacks import SqlCallbackBook
from ivr.storage.db import make_engine
book = SqlCallbackBook(make_engine(sys.argv[1]))
(cb,) = book.claim_due_sync("doomed", lease_s=2)
book.start_attempt_sync(cb.id, "doomed", lease_s=2)
print(cb.id, flush=True)
time.sleep(60)  # "dialling" when it is killed
"""


def _book_and_kill_a_dialling_process(url: str, policy: SlotPolicy) -> str:
    """Book a callback due now; a child process claims it, writes attempt 1 and is
    SIGKILLed while "dialling". Returns the callback id."""
    book = SqlCallbackBook(make_engine(url))
    start = candidate_starts(datetime.now(UTC), policy, 1)[0]
    book.book_sync(CallbackDraft(contact_id="c", number="+31302345678", language="nl",
                                 skill="billing", slot_start=start,
                                 slot_end=start + timedelta(minutes=10)), policy=policy, cap=1)
    book.engine.dispose()
    time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 0.05)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert child.stdout is not None
    cid = child.stdout.readline().strip()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return cid


class _Wall:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def test_process_killed_mid_attempt_is_not_redialled(tmp_path: Path) -> None:
    """A real process claims, writes attempt 1 and is SIGKILLed mid-dial; a second claimer
    gets nothing while the lease lives, then takes over: attempt 1 is settled as
    interrupted and nothing is dialled at once (the retry comes retry_s later)."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    policy = SlotPolicy(slot_s=1, lead_s=0, retry_s=30)
    cid = await asyncio.to_thread(_book_and_kill_a_dialling_process, url, policy)
    book = SqlCallbackBook(make_engine(url))
    assert await book.claim_due("n2", lease_s=30) == []  # the dead node's lease still runs
    await asyncio.sleep(2.1)
    calls = ScriptedCalls()
    dialer = CallbackDialer(book, policy, calls, settings=DialerSettings(node="n2"),
                            clock=_Wall(), messenger=FakeMessenger(), screenpop=FakeScreenPop(),
                            manage_link=str, agents=OneAgent())
    (cb,) = await book.claim_due("n2", lease_s=30)
    assert cb.id == cid and cb.attempts[0].node == "doomed"
    rec = await dialer.serve(cb)
    assert calls.rung == [] and rec.attempts[0].outcome == "interrupted"
    assert rec.status is CallbackStatus.RETRY and len(rec.attempts) == 1
    book.engine.dispose()
