"""Phase 3, do something for the caller: the Router's decision, then the scenario
(S1 answer + "did that help?", S2 self-service link, S3 chat link; S4 goes to
the hand-off phase)."""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from ivr.domain.flow import prepare
from ivr.domain.flow.context import Call
from ivr.domain.flow.events import ActionTaken, Concluded, Decided
from ivr.domain.flow.identify import order_params
from ivr.domain.flow.states import State
from ivr.domain.flow.troubleshoot import troubleshoot
from ivr.domain.model import Customer, IntentSpec, Outcome, Scenario, Step
from ivr.domain.prompts import channel_word


async def decide(call: Call) -> State:
    spec = call.dialogue.spec
    assert spec is not None, "DECIDE follows an accepted intent"
    request = call.request(spec)
    decision = await call.ports.router.route(request)
    if not call.dialogue.identify_tried and call.ports.router.needs_identity(request, decision):
        return State.KEY_IN
    decision = replace(decision, question=call.journal.contact.question,
                       transcript=call.transcript(), session_id=call.journal.contact.id)
    await call.emit(Decided(decision))
    await call.step(Step.SCENARIO, scenario=decision.scenario.value, skill=decision.skill,
                    priority=decision.priority, reason=decision.reason)
    if call.ports.router.needs_pin(request, decision):
        return State.AUTHENTICATE
    return State.ACT


async def act(call: Call) -> State:
    decision = call.journal.decision
    spec = call.dialogue.spec
    assert decision is not None and spec is not None, "ACT follows a decision"
    match decision.scenario:
        case Scenario.ANSWER:
            return await answer(call, spec)
        case Scenario.SELF_SERVICE:
            return await send_link(call, spec, chat=False)
        case Scenario.CHAT:
            status = await call.ports.knowledge.chat_status(call.now())
            if not status.available:
                call.dialogue.escalate_reason = "chat unavailable"
                await call.step(Step.ACTION, action="chat_unavailable", open=status.is_open,
                                active=status.active, capacity=status.capacity)
                return State.HANDOFF
            return await send_link(call, spec, chat=True)
        case Scenario.AGENT:
            return State.HANDOFF
        case _:
            assert_never(decision.scenario)


# S1 ---------------------------------------------------------------------------

async def answer(call: Call, spec: IntentSpec) -> State:
    script = call.ports.scripts.for_intent(spec.name)
    if script is not None:  # a guided diagnosis instead of one sentence
        return await troubleshoot(call, script)
    ref = spec.answer_ref or f"kb:{spec.name}"
    kind, _, key = ref.partition(":")
    c = call.journal.customer
    if kind == "crm" and key == "order_status":
        if c is None:
            await call.say("order_needs_identification")
            call.dialogue.escalate_reason = "order status for unidentified caller"
            return State.HANDOFF
        detail = await _say_order_status(call, c)
    elif kind == "crm" and key == "outage":
        outages = await call.ports.knowledge.outages(c.region if c else None, call.now())
        if not outages:
            await call.say("outage_none")
        for o in outages:
            await call.say("outage_info", message=o.message(call.language))
        detail = ",".join(str(o.id) for o in outages) or "none"
    elif (got := prepare.ready(call, ref)) is not None:
        # Looked up and synthesised while the caller spoke: said at once.
        await call.say_prompt(got.prompt)
        detail = got.detail
    else:
        template = await call.ports.knowledge.answer(key, call.language)
        if template is None:
            call.dialogue.escalate_reason = f"no answer for {key}"
            await call.step(Step.ACTION, action="answer_missing", key=key)
            return State.HANDOFF
        params = await prepare.answer_params(call, c)
        await call.say("answer", text=prepare.fill(template, params))
        detail = key
    await call.emit(ActionTaken(f"answer:{spec.name}"))
    await call.step(Step.ACTION, action="answer", intent=spec.name, detail=detail)
    return State.FEEDBACK


async def _say_order_status(call: Call, c: Customer) -> str:
    got = prepare.ready(call, prepare.ORDER_STATUS)
    if got is not None:  # looked up and synthesised while the caller spoke
        await call.say_prompt(got.prompt)
        return got.detail
    order = await prepare.latest_order(call, c)
    if order is None:
        await call.say("no_orders")
        return "none"
    await call.say("order_status", **order_params(call, order))
    return order.order_no


async def feedback(call: Call) -> State:
    u = await call.listen("was_helpful")
    reply = call.classify_reply(u)
    await call.step(Step.FEEDBACK, reply=reply)
    if reply in ("no", "agent"):
        call.dialogue.escalate_reason = "answer did not help"
        return State.HANDOFF
    if reply == "yes":
        await call.say("glad_to_help")
    await call.emit(Concluded(Outcome.SELF_SERVED))
    return State.CLOSE


# S2 / S3 ----------------------------------------------------------------------

async def send_link(call: Call, spec: IntentSpec, *, chat: bool) -> State:
    c = call.journal.customer
    to = call.channel.caller.number
    if to is None and c is not None and c.numbers:
        to = c.numbers[0]
    if to is None:
        call.dialogue.escalate_reason = "no number to send a link to"
        await call.step(Step.ACTION, action="link_impossible", reason="no number")
        return State.HANDOFF
    channel = c.preferred_channel if c is not None else "sms"
    key = spec.link_key or ("chat" if chat else spec.name)
    contact_id = call.journal.contact.id
    url = call.ports.links.link(key, contact_id)
    body = call.text("sms_chat" if chat else "sms_self_service",
                     label=spec.label_for(call.language), url=url)
    receipt = await call.ports.messenger.send_link(
        to=to, channel=channel, body=body, contact_id=contact_id, language=call.language)
    if not receipt.ok:
        await call.step(Step.ACTION, action="link_failed", channel=channel,
                        error_code=receipt.error_code, permanent=receipt.permanent)
        await call.say("link_failed")
        call.dialogue.escalate_reason = f"link failed ({receipt.error_code or receipt.error})"
        return State.HANDOFF
    await call.emit(ActionTaken(f"{'chat' if chat else 'link'}:{key}:{receipt.channel}"))
    await call.step(Step.ACTION, action="chat_link" if chat else "link", key=key,
                    channel=receipt.channel, message_id=receipt.message_id)
    if chat:
        # The chat is the outcome even if the caller hangs up during the offer below.
        await call.emit(Concluded(Outcome.CHAT))
    # After a chat link too the caller may still wait for a colleague on the phone.
    u = await call.listen("chat_link_sent" if chat else "link_sent",
                          channel=channel_word(receipt.channel))
    reply = call.classify_reply(u)
    await call.step(Step.FEEDBACK, reply=reply)
    if reply in ("agent", "yes"):
        call.dialogue.escalate_reason = (f"caller wants an agent after "
                                         f"{'chat link' if chat else 'link'}")
        return State.HANDOFF
    await call.emit(Concluded(Outcome.CHAT if chat else Outcome.LINK_SENT))
    return State.CLOSE
