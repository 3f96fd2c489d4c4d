"""Online, then by phone: a question asked on the web or in chat (``POST /api/contacts``)
is waiting for this caller, found by their number (GREET) or by the code they key after
``*`` at the question (ASK). The caller is not asked again: "You were asking about your
invoice; I'm putting you through", and the agent's screen-pop carries the online text
(the contact's question). A wrong or expired code is said plainly, asked once more,
then the normal question follows.
"""

from __future__ import annotations

import logging

from ivr.domain.flow.context import Call
from ivr.domain.flow.events import QuestionHeard, Understood
from ivr.domain.flow.states import State
from ivr.domain.model import OnlineContact, Step
from ivr.domain.ports import PortError

log = logging.getLogger(__name__)

CODE_KEY = "*"  # at the open question: "I have a code"
CODE_DIGITS = 6
CODE_TRIES = 2


async def waiting_by_number(call: Call) -> bool:
    """Whether an online question waits for the caller's number (kept for ONLINE)."""
    number = call.channel.caller.number
    if call.ports.online is None or not number:
        return False
    try:
        found = await call.ports.online.waiting_for(number)
    except PortError as exc:  # no lookup is the normal question, not a failed call
        log.warning("online contacts unavailable: %s", exc)
        return False
    call.dialogue.online = found
    return found is not None


async def online(call: Call) -> State:
    found = call.dialogue.online
    via = "number"
    if found is None:
        via = "code"
        found = await _keyed(call)
        if found is None:
            return State.ASK
    spec = call.ports.catalogue.spec(found.intent)
    call.dialogue.spec = spec
    await call.emit(QuestionHeard(found.text))
    await call.emit(Understood(found.intent, 1.0, f"online:{via}"))
    await call.step(Step.INTENT, intent=found.intent, via=f"online:{via}",
                    online_contact=found.contact_id)
    label = spec.label_for(call.language) if spec is not None else call.text("your_question")
    await call.say("online_context", label=label)
    try:
        if call.ports.online is not None:
            await call.ports.online.claim(found, call.journal.contact.id)
    except PortError as exc:  # the caller still goes through; the code may work twice
        log.warning("online contact %s not claimed: %s", found.contact_id, exc)
    call.dialogue.escalate_reason = "asked online first"
    return State.HANDOFF


async def _keyed(call: Call) -> OnlineContact | None:
    """The code, asked up to CODE_TRIES times; None (said so) when none works."""
    for attempt in range(1, CODE_TRIES + 1):
        digits = (await call.collect("online_code_ask", max_digits=CODE_DIGITS) or "").strip()
        found = None
        if digits.isdigit() and call.ports.online is not None:
            try:
                found = await call.ports.online.by_code(digits)
            except PortError as exc:
                log.warning("online contacts unavailable: %s", exc)
        if found is not None:
            return found
        await call.step(Step.INTENT, via="online:code", result="wrong_code", attempt=attempt)
        await call.say("online_code_wrong" if attempt < CODE_TRIES else "online_code_give_up")
    return None
