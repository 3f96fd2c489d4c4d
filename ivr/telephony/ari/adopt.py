"""Callers left in ``Stasis()`` by a node that died: handed to a human with their context.

When a node takes over an Asterisk whose node died (ivr.storage.ownership), the dead
node's callers are still in the Stasis app, in silence: their StasisStart went to a
websocket that is gone and Asterisk never sends it again. On connecting, the new owner
lists the channels in its app that no call of its own holds and, for each, reads the
session the dead node labelled it with (``IVR_SESSION``, set at the call's start), reads
that contact as the dead node last saved it (it is saved after every step) and sends
the caller to a human: the skill the contact was heading for, else the fallback queue,
with the hand-off variables (so the agent leg carries the session, intent and
``X-IVR-Fallback: node_lost``), a screen-pop with the question and transcript, and the
contact record closed as handed to an agent.

Why a human rather than resuming the dialogue: the dead node's turn state (what was
just asked, a half-heard answer) was never stored, and a caller who has just heard
silence is better served by a person who sees what they said than by a repeated
question. The lease (IVR_ARI_LEASE_S) still backs this up: a caller nobody adopts
leaves Stasis when it runs out and gets a human from the dialplan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ivr.domain.flow.handoff import saved_screen
from ivr.domain.model import (
    ContactSnapshot,
    Outcome,
    RouteDecision,
    Step,
    StepRecord,
)
from ivr.domain.ports import Clock, ContactLog, PortError, ScreenPop
from ivr.telephony.ari.channel import in_app, is_helper_channel
from ivr.telephony.ari.client import AriClient, AriError
from ivr.telephony.ari.events import ChannelInfo
from ivr.telephony.handoff import handoff_variables

log = logging.getLogger(__name__)

REASON = "node_lost"
# (reason, session id, skill or None) -> a human queue
FailSafe = Callable[[str, str, str | None], RouteDecision]
# the contact as last saved -> the skill it was heading for (None: not known)
SkillOf = Callable[[ContactSnapshot], Awaitable[str | None]]
# (channel name, variables, (context, extension, priority)): set and send on at once
Mover = Callable[[str, Mapping[str, str], tuple[str, str, int]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Adopted:
    """One orphan and what became of it (for logs and tests)."""

    channel_id: str
    session_id: str
    queue: str
    had_contact: bool


class OrphanAdopter:
    """Finds the app's channels that no live call holds and hands them to a human."""

    def __init__(self, *, contacts: ContactLog, screenpop: ScreenPop, fail_safe: FailSafe,
                 clock: Clock, skill_of: SkillOf | None = None, move: Mover | None = None,
                 handoff_context: str = "ivr-handoff",
                 handoff_extension: str = "s", handoff_priority: int = 1) -> None:
        self._contacts = contacts
        self._screenpop = screenpop
        self._fail_safe = fail_safe
        self._clock = clock
        self._skill_of = skill_of
        self._move = move
        self._target = (handoff_context, handoff_extension, handoff_priority)
        self.adopted: list[Adopted] = []

    async def adopt(self, client: AriClient, is_ours: Callable[[str], bool]) -> list[Adopted]:
        """Hand every orphan of ``client``'s app to a human; returns those handed."""
        try:
            channels = await client.channels()
        except AriError as exc:
            log.warning("listing channels for orphans failed: %s", exc)
            return []
        mine = [ch for ch in channels if in_app(ch, client.app) and not is_ours(ch.id)]
        # Media legs first: quick, and independent of the callers' hand-offs. The callers
        # all at once: each may wait behind the prompt the dead node left playing, and
        # one by one the last caller would wait for everyone's prompts.
        done = [a for a in await asyncio.gather(
            *(self._try(client, ch) for ch in mine if is_helper_channel(ch))) if a]
        done += [a for a in await asyncio.gather(
            *(self._try(client, ch) for ch in mine if not is_helper_channel(ch))) if a]
        self.adopted.extend(done)
        return done

    async def _try(self, client: AriClient, ch: ChannelInfo) -> Adopted | None:
        try:
            return await self._adopt_one(client, ch)
        except AriError as exc:  # gone meanwhile, or the lease got there first
            log.info("orphan %s not adopted: %s", ch.id, exc)
            return None

    async def _adopt_one(self, client: AriClient, ch: ChannelInfo) -> Adopted:
        if is_helper_channel(ch):  # the dead call's media legs
            await client.hangup(ch.id)
            return Adopted(ch.id, "", "", False)
        session = await client.get_variable(ch.id, "IVR_SESSION") or ""
        contact = await self._contact(session)
        decision = self._fail_safe(REASON, session, await self._skill(contact))
        variables = handoff_variables(decision, session,
                                      contact.language if contact else None)
        variables["__IVR_FALLBACK"] = REASON
        await self._hand_on(client, ch, variables)
        log.warning("adopted orphan %s (session %s) from a lost node: to %s", ch.id,
                    session or "-", decision.queue)
        if contact is not None:
            await self._close(contact, decision)
        return Adopted(ch.id, session, decision.queue, contact is not None)

    async def _hand_on(self, client: AriClient, ch: ChannelInfo,
                       variables: Mapping[str, str]) -> None:
        """Over AMI when there is one: ARI's variable set and continue wait behind the
        prompt the dead node left playing (seen: 4 s more for 8 of 10 callers), AMI's
        Setvar and Redirect act at once and cut the prompt short."""
        if self._move is not None:
            try:
                await self._move(ch.name, variables, self._target)
                return
            except Exception as exc:  # AMI down or the action refused: ARI still works
                log.warning("moving orphan %s over AMI failed (%s); over ARI", ch.id, exc)
        for name, value in variables.items():
            await client.set_variable(ch.id, name, value)
        context, extension, priority = self._target
        await client.continue_in_dialplan(ch.id, context=context, extension=extension,
                                          priority=priority)

    async def _skill(self, contact: ContactSnapshot | None) -> str | None:
        if contact is None:
            return None
        if contact.skill or self._skill_of is None:
            return contact.skill
        try:  # never let a failed guess keep the caller from the general queue
            return await self._skill_of(contact)
        except Exception:  # the orphan still goes to a human, to the general queue
            log.exception("no skill for orphan contact %s", contact.id)
            return None

    async def _contact(self, session: str) -> ContactSnapshot | None:
        if not session:
            return None
        try:
            return await self._contacts.get(session)
        except PortError as exc:  # the caller still gets a human, without the record
            log.error("contact %s of an orphan unreadable: %s", session, exc)
            return None

    async def _close(self, contact: ContactSnapshot, decision: RouteDecision) -> None:
        """The record as the flow leaves a hand-off: outcome, skill, a hand-off step."""
        now = self._clock.now()
        detail = {"skill": decision.skill, "reason": REASON, "queue": decision.queue}
        done = replace(contact, outcome=Outcome.ERROR_TO_AGENT, skill=decision.skill,
                       ended_at=now, dropped_at=None,
                       steps=(*contact.steps, StepRecord(Step.HANDOFF, now, detail)))
        try:
            await self._contacts.save(done)
            await self._screenpop.publish(contact.id, _screen(done, decision))
        except PortError as exc:
            log.error("closing the contact of orphan %s failed: %s", contact.id, exc)


def _screen(contact: ContactSnapshot, decision: RouteDecision) -> dict[str, Any]:
    return saved_screen(contact, reason=REASON, scenario=decision.scenario,
                        skill=decision.skill, priority=decision.priority)
