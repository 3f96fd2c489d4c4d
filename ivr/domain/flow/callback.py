"""A callback in a time slot instead of waiting (or instead of nobody).

Offered when the caller asks (``callback_request``), when the expected wait is
long, when nobody is available for the skill, outside opening hours, and to a
caller who left the queue by key. The caller picks one of three slots by key or
voice; the booking carries the whole contact (question, intent, customer,
transcript) for the agent who calls back; an SMS confirms it with a signed link
to cancel or move it. Anything that fails here returns ``None``: the caller goes
on as without a callback (a queue or a goodbye), never dropped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from ivr.domain.callbacks import CallbackDraft, CallbackError, CallbackRecord, Slot, choose_slot
from ivr.domain.flow.context import Call
from ivr.domain.flow.events import ActionTaken, Concluded
from ivr.domain.flow.states import State
from ivr.domain.model import Outcome, RouteDecision, Step, Utterance
from ivr.domain.ports import PortError
from ivr.domain.prompts import words

log = logging.getLogger(__name__)


def callback_number(call: Call) -> str | None:
    """Where to call back: the caller's number, else the customer's first number."""
    number = call.channel.caller.number
    c = call.journal.customer
    if number is None and c is not None and c.numbers:
        number = c.numbers[0]
    return number


def slot_phrase(call: Call, slot: Slot) -> str:
    """'today at 14:30', 'tomorrow at 09:00' or 'on Monday 7 December at 10:00'."""
    local = call.local(slot.start)
    today = call.local(call.now()).date()
    time = f"{local:%H:%M}"
    if local.date() == today:
        return call.text("slot_today", time=time)
    if local.date() == today + timedelta(days=1):
        return call.text("slot_tomorrow", time=time)
    return call.text("slot_day", date=call.say_date(local.date()), time=time)


async def offer_callback(call: Call, decision: RouteDecision, *, why: str,
                         ask: bool = True, wait: str | None = None) -> State | None:
    """Offer and book a callback; ``State.CLOSE`` once booked, None to go on without.

    ``ask=False`` when the caller asked for it: straight to the slots. ``wait``: the
    expected wait in words, said with the offer.
    """
    desk = call.ports.callbacks
    number = callback_number(call)
    if desk is None or call.dialogue.callback_offered or number is None:
        return None
    call.dialogue.callback_offered = True
    try:
        slots = tuple(await desk.offer(decision.skill, call.now()))
    except PortError as exc:  # no offer is better than no call
        log.warning("callback slots unavailable: %s", exc)
        slots = ()
    if not slots:
        await call.step(Step.HANDOFF, offer="callback", result="no_slots", why=why,
                        skill=decision.skill)
        return None
    if ask:
        reply = call.classify_reply(await _ask(call, wait))
        await call.step(Step.HANDOFF, offer="callback", reply=reply, why=why)
        if reply != "yes":
            return None
    slot = await _pick(call, slots)
    if slot is None:
        await call.step(Step.HANDOFF, offer="callback", result="no_choice", why=why)
        return None
    record = await _book(call, decision, slot, number, why)
    if record is None:
        return None
    await _confirm(call, record, slot, number)
    return State.CLOSE


async def _ask(call: Call, wait: str | None) -> Utterance | None:
    if wait:
        return await call.listen("callback_offer_wait", wait=wait)
    return await call.listen("callback_offer")


def _ordinals(call: Call) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in words("slot_words", call.language):
        word, _, n = item.partition(":")
        out[word] = int(n)
    return out


async def _pick(call: Call, slots: tuple[Slot, ...]) -> Slot | None:
    """The caller's slot: by key 1-3 or by voice; asked at most twice."""
    choices = ", ".join(call.text("callback_choice", n=i, when=slot_phrase(call, s))
                        for i, s in enumerate(slots, 1))
    for attempt in range(2):
        if attempt:
            await call.say("callback_not_chosen")
        u = await call.listen("callback_slots", choices=choices)
        if u is None:
            continue
        slot = choose_slot(u.dtmf, u.text, slots, _ordinals(call))
        if slot is not None:
            return slot
    return None


async def _book(call: Call, decision: RouteDecision, slot: Slot, number: str,
                why: str) -> CallbackRecord | None:
    desk = call.ports.callbacks
    assert desk is not None
    contact = call.journal.contact
    c = call.journal.customer
    draft = CallbackDraft(
        contact_id=contact.id, number=number, language=call.language, skill=decision.skill,
        slot_start=slot.start, slot_end=slot.end, question=contact.question or "",
        intent=contact.intent or decision.intent, customer_id=c.id if c else None,
        customer_name=c.name if c else "", transcript=call.transcript(),
        priority=decision.priority, reason=why)
    try:
        return await desk.book(draft)
    except CallbackError as exc:  # taken meanwhile (another caller, another node)
        await call.say("callback_slot_gone")
        await call.step(Step.HANDOFF, offer="callback", result="slot_gone", error=str(exc))
        return None


async def _confirm(call: Call, record: CallbackRecord, slot: Slot, number: str) -> None:
    """SMS with the signed link, then the spoken confirmation; a failed SMS (Twilio down)
    keeps the booking and the caller simply is not told about the text."""
    desk = call.ports.callbacks
    assert desk is not None
    when = slot_phrase(call, slot)
    spec = call.dialogue.spec
    label = spec.label_for(call.language) if spec else call.text("your_question")
    body = call.text("sms_callback", when=when, label=label, url=desk.manage_link(record.id))
    c = call.journal.customer
    channel = c.preferred_channel if c is not None else "sms"
    try:
        receipt = await call.ports.messenger.send_link(
            to=number, channel=channel, body=body, contact_id=call.journal.contact.id,
            language=call.language)
        sent = receipt.ok
    except PortError as exc:
        log.warning("callback confirmation not sent: %s", exc)
        sent = False
    await call.emit(ActionTaken(f"callback:{record.draft.skill}"))
    await call.emit(Concluded(Outcome.CALLBACK))
    await call.step(Step.ACTION, action="callback", callback=record.id,
                    slot=slot.start.isoformat(), skill=record.draft.skill, sms=sent)
    await call.say("callback_booked", when=when,
                   sms=call.text("callback_sms_note") if sent else "")
