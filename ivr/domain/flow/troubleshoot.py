"""Guided troubleshooting inside ACT: walk the intent's script (ivr.domain.troubleshoot).

Each question is asked as a yes/no (words, or keys 1/2) or keypad question; every
answer is kept. A *solved* step ends the call self-served; a *handoff* step, an
"agent" answer, or a question not answered twice goes to an agent, and the answers
travel with the call: in the escalation reason the screen-pop shows, in the
transcript, and in the contact's ACTION step.
"""

from __future__ import annotations

from ivr.domain.flow.context import Call
from ivr.domain.flow.events import ActionTaken, Concluded
from ivr.domain.flow.states import State
from ivr.domain.model import Outcome, Step
from ivr.domain.troubleshoot import MAX_STEPS, Script, ScriptStep

_TRIES = 2  # a question not answered (or not understood) twice goes to a person


async def _ask(call: Call, step: ScriptStep) -> str | None:
    """The next step's id for the caller's answer; None: hand over (agent, no answer)."""
    for _ in range(_TRIES):
        u = await call.listen("answer", text=step.say(call.language))
        if step.kind == "keys":
            digit = (u.dtmf or "")[:1] if u is not None else ""
            if digit == "0":
                return None
            if digit in step.keys:
                return step.keys[digit]
            continue
        reply = call.classify_reply(u)
        if reply == "agent":
            return None
        if reply in ("yes", "no"):
            return step.yes if reply == "yes" else step.no
    return None


def _answer_note(step: ScriptStep, next_id: str | None) -> str:
    if next_id is None:
        return f"{step.note}: no answer"
    if step.kind == "yesno":
        return f"{step.note}: {'yes' if next_id == step.yes else 'no'}"
    digit = next(d for d, target in step.keys.items() if target == next_id)
    return f"{step.note}: {digit}"


async def troubleshoot(call: Call, script: Script) -> State:
    """Run ``script`` (and any it continues in) to solved or hand-off."""
    answers: list[str] = []
    current, sid = script, script.start
    for _ in range(MAX_STEPS):
        step = current.steps[sid]
        if step.kind == "goto" and step.goto is not None:
            current = call.ports.scripts.script(step.goto)
            sid = current.start
            continue
        if step.kind == "solved":
            await call.say("answer", text=step.say(call.language))
            await call.emit(ActionTaken(f"troubleshoot:{current.name}:solved"))
            await call.step(Step.ACTION, action="troubleshoot_solved", script=current.name,
                            answers=answers)
            await call.emit(Concluded(Outcome.SELF_SERVED))
            return State.CLOSE
        if step.kind == "handoff":
            await call.say("answer", text=step.say(call.language))
            break
        nxt = await _ask(call, step)
        answers.append(_answer_note(step, nxt))
        if nxt is None:
            break
        sid = nxt
    call.dialogue.escalate_reason = (f"troubleshooting {current.name}: " + "; ".join(answers))
    await call.emit(ActionTaken(f"troubleshoot:{current.name}:handoff"))
    await call.step(Step.ACTION, action="troubleshoot_handoff", script=current.name,
                    answers=answers)
    return State.HANDOFF
