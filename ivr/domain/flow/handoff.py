"""Phase 4, a person or a goodbye: the hand-off to an agent queue (with opening
hours respected and the screen-pop context), the close, and the fail-safe path
every unexpected error takes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ivr.domain.csat import surveyed
from ivr.domain.flow.callback import offer_callback
from ivr.domain.flow.context import Call
from ivr.domain.flow.events import ActionTaken, Concluded, Decided, HandedOff, Identified
from ivr.domain.flow.states import STEP_OF, State
from ivr.domain.model import (
    ContactSnapshot,
    OpeningStatus,
    Outcome,
    RouteDecision,
    Scenario,
    Step,
)
from ivr.domain.ports import CallerHungUp

log = logging.getLogger(__name__)
# The intent of a caller who asks to be called back: slots at once, no yes/no first.
CALLBACK_INTENT = "callback_request"


async def handoff(call: Call) -> State:
    spec = call.dialogue.spec
    decision = await _agent_decision(call)
    sensitive = bool(spec and spec.sensitive)
    if spec is not None and spec.name == CALLBACK_INTENT:
        booked = await offer_callback(call, decision, why="asked", ask=False)
        if booked is not None:
            return booked
    opening = await call.ports.knowledge.opening("voice", call.now())
    if not opening.is_open and not sensitive:
        return await _closed(call, decision, opening)
    if decision.unstaffed:
        return await _unstaffed(call, decision)
    if decision.alternatives and not sensitive:
        offered = await _offer_on_long_wait(call, decision)
        if offered is not None:
            return offered
    if not sensitive and decision.expected_wait_s is not None and _long_wait(call, decision):
        booked = await offer_callback(call, decision, why="long_wait",
                                      wait=wait_phrase(call, decision.expected_wait_s))
        if booked is not None:
            return booked
    await _announce(call, decision)
    survey = surveyed(decision.skill, call.cfg.csat_voice_skills)
    if survey:
        await call.say("csat_notice")
    decision = replace(decision, transcript=call.transcript(), survey=survey)
    await call.emit(ActionTaken(f"handoff:{decision.skill}"))
    await call.emit(Concluded(Outcome.AGENT))
    await call.emit(HandedOff(decision, screen_context(call, decision)))
    await call.step(Step.HANDOFF, skill=decision.skill, queue=decision.queue,
                    priority=decision.priority, reason=decision.reason,
                    position=decision.position, expected_wait_s=decision.expected_wait_s)
    await call.channel.hand_off(decision)
    return State.DONE


async def _agent_decision(call: Call) -> RouteDecision:
    """The Router's agent decision: the one made in DECIDE, or an escalation now."""
    decision = call.journal.decision
    if decision is not None and decision.scenario is Scenario.AGENT:
        return decision
    decision = await call.ports.router.escalate(
        call.request(call.dialogue.spec), call.dialogue.escalate_reason or "escalation")
    decision = replace(decision, question=call.journal.contact.question,
                       session_id=call.journal.contact.id)
    await call.emit(Decided(decision))
    return decision


async def _closed(call: Call, decision: RouteDecision, opening: OpeningStatus) -> State:
    """Outside opening hours: say when we are back, and goodbye."""
    nxt = ""
    if opening.next_open is not None:
        n = call.local(opening.next_open)
        nxt = call.text("next_open", date=call.say_date(n), time=f"{n:%H:%M}")
    await call.say("closed", next_open=nxt)
    booked = await offer_callback(call, decision, why="closed")
    if booked is not None:
        return booked
    await call.emit(Concluded(Outcome.CLOSED_HOURS))
    await call.step(Step.HANDOFF, result="closed", skill=decision.skill, reason=opening.reason)
    return State.CLOSE


async def _announce(call: Call, decision: RouteDecision) -> None:
    """What the caller hears before the queue: the transfer, then position and wait."""
    spec = call.dialogue.spec
    if spec is not None and spec.sensitive:
        await call.say("transfer_sensitive")
    elif spec is not None and spec.name != "speak_to_agent":
        await call.say("transfer", label=spec.label_for(call.language))
    else:
        await call.say("transfer_generic")
    if decision.position is not None and decision.expected_wait_s:
        await call.say("queue_position", position=decision.position,
                       wait=wait_phrase(call, decision.expected_wait_s))


def wait_phrase(call: Call, seconds: float) -> str:
    """'less than a minute' or 'about N minutes' in the caller's language."""
    if seconds < 60:
        return call.text("wait_under_minute")
    return call.text("wait_minutes", minutes=max(1, round(seconds / 60)))


async def _unstaffed(call: Call, decision: RouteDecision) -> State:
    """Nobody can take the call: never a queue nobody serves; offer what can help."""
    spec = call.dialogue.spec
    label = spec.label_for(call.language) if spec else call.text("your_question")
    await call.say("no_agents", label=label)
    nxt = await _alternative(call, decision)
    if nxt is not None:
        return nxt
    booked = await offer_callback(call, decision, why="unstaffed")
    if booked is not None:
        return booked
    await call.say("try_later")
    await call.emit(Concluded(Outcome.NO_AGENT))
    await call.step(Step.HANDOFF, result="unstaffed", skill=decision.skill,
                    reason=decision.reason)
    return State.CLOSE


async def _offer_on_long_wait(call: Call, decision: RouteDecision) -> State | None:
    """A long expected wait: ask whether a link would serve the caller better."""
    if not _usable(call, decision) or decision.expected_wait_s is None:
        return None
    u = await call.listen("long_wait_offer", wait=wait_phrase(call, decision.expected_wait_s))
    reply = call.classify_reply(u)
    await call.step(Step.HANDOFF, offer="alternative", reply=reply,
                    expected_wait_s=round(decision.expected_wait_s))
    if reply != "yes":
        return None
    return await _alternative(call, decision)


def _long_wait(call: Call, decision: RouteDecision) -> bool:
    desk = call.ports.callbacks
    wait = decision.expected_wait_s
    return desk is not None and wait is not None and wait >= desk.offer_wait_s


def _usable(call: Call, decision: RouteDecision) -> list[Scenario]:
    """The alternatives this call can take, in the Router's order, each tried once."""
    spec = call.dialogue.spec
    tried = call.dialogue.alternatives_tried
    usable: list[Scenario] = []
    for alt in decision.alternatives:
        if alt == "chat" and Scenario.CHAT not in tried:
            usable.append(Scenario.CHAT)
        elif alt == "self_service" and spec is not None and spec.link_key \
                and Scenario.SELF_SERVICE not in tried:
            usable.append(Scenario.SELF_SERVICE)
    return usable


async def _alternative(call: Call, decision: RouteDecision) -> State | None:
    """Switch the decision to the first usable alternative and act on it (S3 or S2)."""
    for scenario in _usable(call, decision):
        if scenario is Scenario.CHAT:
            status = await call.ports.knowledge.chat_status(call.now())
            if not status.available:
                call.dialogue.alternatives_tried.add(scenario)
                continue
            await call.say("offer_chat")
        else:
            await call.say("offer_self_service")
        call.dialogue.alternatives_tried.add(scenario)
        await call.emit(Decided(replace(decision, scenario=scenario)))
        await call.step(Step.SCENARIO, scenario=scenario.value, skill=decision.skill,
                        reason="alternative: nobody available" if decision.unstaffed
                        else "alternative: long wait")
        return State.ACT
    return None


async def queue_exit(call: Call) -> State:
    """A queued caller pressed the exit key: a callback, a link or chat instead of waiting.

    The contact goes on (question, intent and transcript are the ones from before
    the queue). With nothing to send for this question the caller goes back into
    the queue: leaving never ends a call that still needs a person.
    """
    contact = call.journal.contact
    spec = call.ports.catalogue.spec(contact.intent) if contact.intent else None
    call.dialogue.spec = spec
    number = call.channel.caller.number
    if number is not None and call.journal.customer is None:
        customer = await call.ports.directory.find_by_number(number)
        if customer is not None:
            await call.emit(Identified(customer, "cli"))
    await call.step(Step.HANDOFF, result="left_queue", intent=contact.intent)
    await call.say("queue_left")
    decision = await call.ports.router.escalate(call.request(spec), "caller left the queue")
    decision = replace(decision, question=contact.question, session_id=contact.id,
                       alternatives=("self_service", "chat"))
    # A callback first (the key left the queue for one), then a link or chat.
    nxt = await offer_callback(call, decision, why="left_queue")
    if nxt is None:
        nxt = await _alternative(call, decision)
    if nxt is not None:
        return nxt
    await call.say("queue_back")
    await call.emit(Decided(replace(decision, alternatives=())))
    return State.HANDOFF


def _screen(*, session: str, question: str | None, intent: str | None, scenario: Scenario,
            skill: str | None, priority: int, reason: str | None, transcript: Sequence[str],
            verified: bool, customer: dict[str, Any] | None,
            decision: RouteDecision | None = None) -> dict[str, Any]:
    """The one shape of a screen-pop, live or from a saved record: the desktop and the
    hub read these keys, so both builders below go through here."""
    return {
        "session": session, "question": question, "intent": intent,
        "scenario": scenario.value, "skill": skill, "priority": priority, "reason": reason,
        "position": decision.position if decision else None,
        "expected_wait_s": decision.expected_wait_s if decision else None,
        "preferred_agent": decision.preferred_agent if decision else None,
        "side": decision.side if decision else None,
        "verified": verified, "transcript": list(transcript), "customer": customer,
    }


def screen_context(call: Call, decision: RouteDecision) -> dict[str, Any]:
    """What the agent's screen pops with: question, transcript, routing, customer."""
    c = call.journal.customer
    return _screen(
        session=call.journal.contact.id, question=call.journal.contact.question,
        intent=decision.intent, scenario=decision.scenario, skill=decision.skill,
        priority=decision.priority, reason=decision.reason, transcript=decision.transcript,
        verified=call.journal.authenticated or call.journal.identified_by == "cli",
        customer=None if c is None else {
            "id": c.id, "customer_no": c.customer_no, "name": c.name, "tier": c.tier,
            "region": c.region, "language": c.language,
        }, decision=decision)


def saved_screen(contact: ContactSnapshot, *, reason: str, scenario: Scenario,
                 skill: str | None, priority: int) -> dict[str, Any]:
    """The screen of a caller whose node stopped serving them (adopted by a standby, or
    queued by the dialplan after the lease ran out): :func:`screen_context`'s shape,
    from the saved record alone, so the agent still sees the question and transcript."""
    return _screen(
        session=contact.id, question=contact.question, intent=contact.intent,
        scenario=scenario, skill=skill, priority=priority, reason=reason,
        transcript=contact.transcript, verified=False,
        customer=None if contact.customer_id is None else {"id": contact.customer_id})


async def close(call: Call) -> State:
    await call.say("goodbye")
    outcome = call.journal.contact.outcome
    await call.step(Step.CLOSE, outcome=outcome.value if outcome else None)
    await call.channel.hang_up()
    return State.DONE


async def fail_safe(call: Call, state: State, exc: Exception) -> bool:
    """Any port failure: tell the caller, hand them to a human, keep the record.

    Returns False when the caller hung up during the fail-safe hand-off.
    """
    failed_in = STEP_OF[state]
    spec = call.dialogue.spec
    decision = call.ports.router.fail_safe(
        f"system error in {failed_in.value}: {type(exc).__name__}",
        session_id=call.journal.contact.id, customer=call.journal.customer,
        intent=spec.name if spec else None)
    decision = replace(decision, question=call.journal.contact.question,
                       transcript=call.transcript())
    await call.step(Step.HANDOFF, reason="system_error", error=type(exc).__name__,
                    failed_in=failed_in.value)
    await call.emit(ActionTaken(f"handoff:{decision.skill}"))
    await call.emit(Concluded(Outcome.ERROR_TO_AGENT))
    await call.emit(HandedOff(decision, screen_context(call, decision)))
    try:
        await call.channel.say(call.prompt("system_problem"))
        await call.channel.hand_off(decision)
    except CallerHungUp:
        return False
    except Exception:
        # The channel itself is broken; the dialplan's safety net takes over.
        log.exception("hand-off after failure also failed")
    return True
