"""Phase 4, a person or a goodbye: the hand-off to an agent queue (with opening
hours respected and the screen-pop context), the close, and the fail-safe path
every unexpected error takes."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ivr.domain.flow.context import Call
from ivr.domain.flow.events import ActionTaken, Concluded, Decided, HandedOff
from ivr.domain.flow.states import STEP_OF, State
from ivr.domain.model import Outcome, RouteDecision, Scenario, Step
from ivr.domain.ports import CallerHungUp

log = logging.getLogger(__name__)


async def handoff(call: Call) -> State:
    spec = call.dialogue.spec
    decision = call.journal.decision
    if decision is None or decision.scenario is not Scenario.AGENT:
        decision = await call.ports.router.escalate(
            call.request(spec), call.dialogue.escalate_reason or "escalation")
        decision = replace(decision, question=call.journal.contact.question,
                           session_id=call.journal.contact.id)
        await call.emit(Decided(decision))
    sensitive = bool(spec and spec.sensitive)
    opening = await call.ports.knowledge.opening("voice", call.now())
    if not opening.is_open and not sensitive:
        nxt = ""
        if opening.next_open is not None:
            n = call.local(opening.next_open)
            nxt = call.text("next_open", date=call.say_date(n), time=f"{n:%H:%M}")
        await call.say("closed", next_open=nxt)
        await call.emit(Concluded(Outcome.CLOSED_HOURS))
        await call.step(Step.HANDOFF, result="closed", skill=decision.skill,
                        reason=opening.reason)
        return State.CLOSE
    if sensitive:
        await call.say("transfer_sensitive")
    elif spec is not None and spec.name != "speak_to_agent":
        await call.say("transfer", label=spec.label_for(call.language))
    else:
        await call.say("transfer_generic")
    decision = replace(decision, transcript=call.transcript())
    await call.emit(ActionTaken(f"handoff:{decision.skill}"))
    await call.emit(Concluded(Outcome.AGENT))
    await call.emit(HandedOff(decision, screen_context(call, decision)))
    await call.step(Step.HANDOFF, skill=decision.skill, queue=decision.queue,
                    priority=decision.priority, reason=decision.reason)
    await call.channel.hand_off(decision)
    return State.DONE


def screen_context(call: Call, decision: RouteDecision) -> dict[str, Any]:
    """What the agent's screen pops with: question, transcript, routing, customer."""
    c = call.journal.customer
    return {
        "session": call.journal.contact.id,
        "question": call.journal.contact.question,
        "intent": decision.intent,
        "scenario": decision.scenario.value,
        "skill": decision.skill,
        "priority": decision.priority,
        "reason": decision.reason,
        "transcript": list(decision.transcript),
        "customer": None if c is None else {
            "id": c.id, "customer_no": c.customer_no, "name": c.name, "tier": c.tier,
            "region": c.region, "language": c.language,
        },
    }


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
