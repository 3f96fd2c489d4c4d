"""The callback dialer: at slot time it claims due callbacks (a database lease, so one
node dials each), writes the attempt, then places the call through Asterisk.

- ``agent_first``: a ready agent of the skill is reserved and rung with the screen-pop
  (the original question; also on the agent leg as IVR_* variables and X-IVR-* SIP
  headers); once they answer, the customer is dialled and both are bridged.
- ``customer_first``: the customer is dialled and, once they answer, put at the front
  of the skill's queue (QUEUE_PRIO) with the contact's context for the agent.

No answer or busy: another attempt later within the slot, then an SMS with the link to
book again. Every attempt and outcome is on the callback (``attempts``) and the contact
id ties it to the original call.

Exactly once: the attempt (and its channel id, unique per attempt) is written under the
lease before the originate. A node that dies mid-dial leaves an attempt without an
outcome; the node that claims the row after the lease ran out never repeats that
attempt: if Asterisk still has its channel it waits, otherwise the attempt counts as
made (``interrupted``) and the ordinary retry rule applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from ivr.domain.callbacks import (
    AttemptOutcome,
    CallbackRecord,
    CallbackStatus,
    NextStep,
    SlotPolicy,
    after_attempt,
)
from ivr.domain.centre import CentreSnapshot
from ivr.domain.model import as_language
from ivr.domain.ports import Clock, LegResult, Messenger, OutboundCalls, PortError, ScreenPop
from ivr.domain.prompts import render
from ivr.logs import mask_text
from ivr.storage.callbacks import LeaseLost, SqlCallbackBook

log = logging.getLogger(__name__)

_BUSY = {17}
_NO_ANSWER = {16, 18, 19, 21, 31}


def outcome_of(leg: LegResult) -> AttemptOutcome:
    """A failed leg's Q.850 cause as an attempt outcome."""
    if leg.cause in _BUSY:
        return "busy"
    if leg.cause in _NO_ANSWER:
        return "no_answer"
    return "unreachable"


def customer_leg_of(channel_id: str) -> str:
    """The customer's leg of an attempt. Neither leg id may be a prefix of the other:
    Asterisk looks channels up by name prefix, and an originate whose id prefixes a
    live channel's is refused (409, seen on the rig)."""
    return f"{channel_id}-c"


class AgentReserver(Protocol):
    """Picks a ready agent of a skill and keeps them for one callback."""

    async def reserve(self, skill: str, language: str) -> str | None:
        """The agent's interface (``PJSIP/agent1``), or None when nobody is ready."""

    async def release(self, interface: str) -> None:
        """The callback is over (connected or not)."""


@dataclass(frozen=True, slots=True)
class DialerSettings:
    """From Settings: who we are, where customers are dialled, how long things take."""

    node: str
    endpoint: str = "PJSIP/{number}@trunk"
    ring_s: float = 30.0
    lease_s: float = 60.0
    poll_s: float = 5.0
    max_talk_s: float = 3600.0
    priority: int = 10
    batch: int = 10


class CallbackDialer:
    """Claims due callbacks and calls them back (run as one task per node)."""

    def __init__(self, book: SqlCallbackBook, policy: SlotPolicy, calls: OutboundCalls, *,
                 settings: DialerSettings, clock: Clock, messenger: Messenger,
                 screenpop: ScreenPop, manage_link: Callable[[str], str],
                 agents: AgentReserver | None = None,
                 label_of: Callable[[str | None, str], str] | None = None) -> None:
        self._book = book
        self._policy = policy
        self._calls = calls
        self._s = settings
        self._clock = clock
        self._messenger = messenger
        self._screenpop = screenpop
        self._link = manage_link
        self._agents = agents
        self._label_of = label_of
        self._busy: set[str] = set()
        self.placed = 0

    async def run(self) -> None:
        """Poll for due callbacks until cancelled; each is served in its own task."""
        async with asyncio.TaskGroup() as tg:
            while True:
                await self.poll(tg)
                await asyncio.sleep(self._s.poll_s)

    async def poll(self, tg: asyncio.TaskGroup) -> int:
        """Claim what is due now and start serving it; returns how many were claimed."""
        free = self._s.batch - len(self._busy)
        if free <= 0:
            return 0
        try:
            due = await self._book.claim_due(self._s.node, lease_s=self._s.lease_s, limit=free)
        except PortError as exc:  # a database blip: the next poll tries again
            log.warning("callback claim failed: %s", exc)
            return 0
        for cb in due:
            self._busy.add(cb.id)
            tg.create_task(self._serve(cb), name=f"callback-{cb.id[:8]}")
        return len(due)

    async def _serve(self, cb: CallbackRecord) -> None:
        try:
            await self.serve(cb)
        except LeaseLost:
            log.warning("callback %s: lease lost, another node has it", cb.id)
        except Exception:  # never kill the dialer; the lease expires and it is retried
            log.exception("callback %s failed", cb.id)
        finally:
            self._busy.discard(cb.id)

    async def serve(self, cb: CallbackRecord) -> CallbackRecord:
        """One claimed callback: settle a dead node's attempt, or make the next attempt."""
        if cb.attempts and cb.attempts[-1].outcome is None:
            return await self._settle_interrupted(cb)
        now = self._clock.now()
        if now >= cb.draft.slot_end:  # nobody could dial during the whole slot
            return await self._finish(cb, "expired", NextStep(CallbackStatus.FAILED,
                                                              send_sms=True))
        agent = None
        if self._policy.strategy_for(cb.draft.skill) == "agent_first" and self._agents:
            agent = await self._agents.reserve(cb.draft.skill, cb.draft.language)
            if agent is None:
                return await self._finish(cb, "agent_unavailable", after_attempt(
                    "agent_unavailable", attempts=cb.attempt_count, now=now,
                    slot_end=cb.draft.slot_end, policy=self._policy))
        try:
            return await self._attempt(cb, agent)
        finally:
            if agent is not None and self._agents is not None:
                await self._agents.release(agent)

    async def _attempt(self, cb: CallbackRecord, agent: str | None) -> CallbackRecord:
        # Written (under the lease) before anything is dialled: see the module docstring.
        attempt = await self._book.start_attempt(cb.id, self._s.node, lease_s=self._s.lease_s)
        self.placed += 1
        log.info("callback %s attempt %d to %s (%s)", cb.id[:8], attempt.n,
                 mask_text(cb.draft.number), "agent first" if agent else "customer first")
        legs: list[str] = []
        renew = asyncio.create_task(self._renew(cb.id))
        try:
            if agent is not None:
                outcome = await self._agent_first(cb, attempt.channel_id, agent, legs)
            else:
                outcome = await self._customer_first(cb, attempt.channel_id)
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
        step = after_attempt(outcome, attempts=attempt.n, now=self._clock.now(),
                             slot_end=cb.draft.slot_end, policy=self._policy)
        record = await self._finish(cb, outcome, step, agent=agent)
        if legs:  # connected agent-first: stay until the conversation ends
            await self._calls.until_hangup(legs, f"{attempt.channel_id}-b", self._s.max_talk_s)
        return record

    async def _renew(self, callback_id: str) -> None:
        while True:
            await asyncio.sleep(self._s.lease_s / 3)
            with contextlib.suppress(PortError):
                await self._book.renew(callback_id, self._s.node, lease_s=self._s.lease_s)

    def _variables(self, cb: CallbackRecord, *, agent_leg: bool) -> dict[str, str]:
        d = cb.draft
        out = {"__IVR_SESSION": d.contact_id, "__IVR_CALLBACK": cb.id,
               "__IVR_INTENT": d.intent or "", "__IVR_SKILL": d.skill,
               "__IVR_SCENARIO": "callback", "IVR_LANG": d.language}
        if agent_leg:
            # The agent's phone sees who it is about before answering (headers), and the
            # channel carries the question for any desktop reading channel variables.
            question = _header_safe(d.question)
            out.update({"IVR_QUESTION": question,
                        "PJSIP_HEADER(add,X-IVR-Session)": d.contact_id,
                        "PJSIP_HEADER(add,X-IVR-Callback)": cb.id,
                        "PJSIP_HEADER(add,X-IVR-Question)": question})
        return out

    def _endpoint(self, number: str) -> str:
        return self._s.endpoint.format(number=number)

    async def _agent_first(self, cb: CallbackRecord, channel_id: str, agent: str,
                           legs: list[str]) -> AttemptOutcome:
        await self._screenpop.publish(cb.draft.contact_id, self._pop(cb, agent))
        agent_leg = f"{channel_id}-a"
        rang = await self._calls.ring(agent_leg, agent, timeout_s=self._s.ring_s,
                                      variables=self._variables(cb, agent_leg=True))
        if not rang.answered:
            return "agent_unavailable"
        customer_leg = customer_leg_of(channel_id)
        customer = await self._calls.ring(customer_leg, self._endpoint(cb.draft.number),
                                          timeout_s=self._s.ring_s,
                                          variables=self._variables(cb, agent_leg=False))
        if not customer.answered:
            await self._calls.hang_up(agent_leg)
            return outcome_of(customer)
        await self._calls.bridge(f"{channel_id}-b", [agent_leg, customer_leg])
        legs.extend((agent_leg, customer_leg))
        return "connected"

    async def _customer_first(self, cb: CallbackRecord, channel_id: str) -> AttemptOutcome:
        channel_id = customer_leg_of(channel_id)
        customer = await self._calls.ring(channel_id, self._endpoint(cb.draft.number),
                                          timeout_s=self._s.ring_s,
                                          variables=self._variables(cb, agent_leg=False))
        if not customer.answered:
            return outcome_of(customer)
        await self._screenpop.publish(cb.draft.contact_id, self._pop(cb, None))
        # Ahead of new callers: the customer was promised this time.
        prio = max(self._s.priority, cb.draft.priority)
        await self._calls.to_queue(channel_id, {"IVR_QUEUE": cb.draft.skill,
                                                "QUEUE_PRIO": str(prio)})
        return "connected"

    def _pop(self, cb: CallbackRecord, agent: str | None) -> dict[str, Any]:
        pop = cb.screen_context()
        pop["agent"] = agent
        pop["attempt"] = cb.attempt_count + 1
        return pop

    async def _settle_interrupted(self, cb: CallbackRecord) -> CallbackRecord:
        """The attempt of a node that died: never dialled again under any id while its
        channel lives; once gone it counts as made and the retry rule decides."""
        last = cb.attempts[-1]
        for leg in (customer_leg_of(last.channel_id), f"{last.channel_id}-a"):
            if await self._calls.alive(leg):
                log.info("callback %s: attempt %d of %s still up; not dialling", cb.id[:8],
                         last.n, last.node)
                return await self._book.postpone(
                    cb.id, self._s.node,
                    until=self._clock.now() + timedelta(seconds=self._s.lease_s))
        step = after_attempt("interrupted", attempts=last.n, now=self._clock.now(),
                             slot_end=cb.draft.slot_end, policy=self._policy)
        return await self._finish(cb, "interrupted", step)

    async def _finish(self, cb: CallbackRecord, outcome: str, step: NextStep, *,
                      agent: str | None = None) -> CallbackRecord:
        record = await self._book.finish_attempt(cb.id, self._s.node, outcome=outcome,
                                                 step=step, agent=agent)
        if step.send_sms:
            await self._missed_sms(record)
        return record

    async def _missed_sms(self, cb: CallbackRecord) -> None:
        d = cb.draft
        lang = as_language(d.language)
        label = self._label_of(d.intent, lang) if self._label_of else \
            render("your_question", lang).text
        body = render("sms_callback_missed", lang, label=label, url=self._link(cb.id)).text
        try:
            receipt = await self._messenger.send_link(to=d.number, channel="sms", body=body,
                                                      contact_id=d.contact_id, language=lang)
            if not receipt.ok:
                log.warning("callback %s: missed-call SMS refused (%s)", cb.id[:8],
                            receipt.error_code)
        except PortError as exc:
            log.warning("callback %s: missed-call SMS not sent: %s", cb.id[:8], exc)


def _header_safe(text: str, limit: int = 200) -> str:
    """Printable ASCII only (SIP headers and Asterisk variable syntax), no commas."""
    clean = "".join(ch if 32 <= ord(ch) < 127 and ch not in ",;\\\"" else " " for ch in text)
    return " ".join(clean.split())[:limit]


class CentreAgentReserver:
    """Ready agents from the live centre state (AMI); one callback per agent at a time on
    this node. Another node may pick the same agent in the same instant: their phone is
    then busy, the ring fails and that callback retries shortly (agent_unavailable)."""

    def __init__(self, snapshot: Callable[[], CentreSnapshot]) -> None:
        self._snapshot = snapshot
        self._held: set[str] = set()

    async def reserve(self, skill: str, language: str) -> str | None:
        view = self._snapshot().skill(skill)
        ready = [a for a in view.ready_agents if a.interface not in self._held]
        speaks = [a for a in ready if language in a.languages] or ready
        if not speaks:
            return None
        pick: str = speaks[0].interface
        self._held.add(pick)
        return pick

    async def release(self, interface: str) -> None:
        self._held.discard(interface)
