"""After an outage announcement: offer news by SMS/WhatsApp instead of waiting.

Seed 004: a caller who only rang about the outage should not wait for an agent to
hear what the announcement said. The offer doubles as the open question: a caller
who answers with their question goes straight on to understanding it, "agent" or 0
reaches a person, and silence or "no" asks the usual question.
"""

from __future__ import annotations

from ivr.domain.flow.context import Call
from ivr.domain.flow.events import ActionTaken, Concluded, QuestionHeard
from ivr.domain.flow.states import State
from ivr.domain.flow.understand import AGENT_INTENT, accept
from ivr.domain.model import Outage, Outcome, Step, Utterance
from ivr.domain.prompts import channel_word


def _channel(call: Call) -> tuple[str, str]:
    c = call.journal.customer
    channel = c.preferred_channel if c is not None else "sms"
    return channel, channel_word(channel)


async def offer_updates(call: Call, outage: Outage) -> State:
    """Offer news of ``outage``; the next state follows the caller's answer."""
    if call.channel.caller.number is None:
        return State.ASK  # withheld number: nothing to text
    _, word = _channel(call)
    u = await call.listen("outage_updates_offer", channel=word)
    reply = call.classify_reply(u)
    await call.step(Step.PROACTIVE, offer="outage_updates", outage=outage.id, reply=reply)
    if reply == "yes":
        return await _subscribe(call, outage)
    return await _go_on(call, u, reply)


async def _go_on(call: Call, u: Utterance | None, reply: str) -> State:
    """Not a yes: a person, the caller's question, or the usual open question."""
    if reply == "agent":
        agent = call.ports.catalogue.spec(AGENT_INTENT)
        if agent is not None:
            return await accept(call, agent, 1.0, via="agent_words")
    if u is not None and reply == "other" and u.text:
        call.dialogue.utterance = u
        await call.emit(QuestionHeard(u.text))
        await call.step(Step.QUESTION, text=u.text, asr_confidence=round(u.confidence, 3))
        return State.UNDERSTAND
    return State.ASK


async def _subscribe(call: Call, outage: Outage) -> State:
    to = call.channel.caller.number
    assert to is not None
    channel, word = _channel(call)
    contact_id = call.journal.contact.id
    await call.ports.knowledge.subscribe_outage(outage.id, number=to, channel=channel,
                                                language=call.language, contact_id=contact_id)
    body = call.text("sms_outage_updates", message=outage.message(call.language))
    receipt = await call.ports.messenger.send_link(to=to, channel=channel, body=body,
                                                   contact_id=contact_id, language=call.language)
    if not receipt.ok:
        # Still subscribed (the end notice may reach them); the caller goes on as usual.
        await call.step(Step.ACTION, action="outage_updates_failed", outage=outage.id,
                        error_code=receipt.error_code)
        await call.say("link_failed")
        return State.ASK
    await call.emit(ActionTaken(f"outage_updates:{outage.id}:{receipt.channel}"))
    await call.step(Step.ACTION, action="outage_updates", outage=outage.id,
                    channel=receipt.channel, message_id=receipt.message_id)
    u = await call.listen("outage_updates_sent", channel=word)
    reply = call.classify_reply(u)
    await call.step(Step.FEEDBACK, reply=reply)
    if reply in ("agent", "other", "yes"):
        return await _go_on(call, u, reply)
    await call.emit(Concluded(Outcome.LINK_SENT))
    return State.CLOSE
