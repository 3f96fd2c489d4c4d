"""Phase 1, who is calling: caller ID, greeting, keyed-in customer number, what the
CRM already knows (proactive message), and the PIN when an action needs one."""

from __future__ import annotations

from ivr.domain.flow.context import Call
from ivr.domain.flow.events import Authenticated, Identified
from ivr.domain.flow.online import waiting_by_number
from ivr.domain.flow.outage_updates import offer_updates
from ivr.domain.flow.states import State
from ivr.domain.model import Customer, Order, Presentation, Step
from ivr.domain.prompts import STATUS_WORDS


async def identify(call: Call) -> State:
    caller = call.channel.caller
    if caller.presentation is Presentation.VALID and caller.number and not caller.cli_trusted:
        # A number from an untrusted source may be anyone's: the caller stays unknown
        # (asked for their customer number and PIN when an intent needs an account).
        await call.step(Step.IDENTIFICATION, method="cli", result="untrusted")
        return State.GREET
    if caller.presentation is Presentation.VALID and caller.number:
        customer = await call.ports.directory.find_by_number(caller.number)
        if customer is not None:
            await call.emit(Identified(customer, "cli"))
            await call.step(Step.IDENTIFICATION, method="cli", customer_id=customer.id)
            return State.GREET
        await call.step(Step.IDENTIFICATION, method="cli", result="unknown_number")
    else:
        await call.step(Step.IDENTIFICATION, method="cli", result=caller.presentation.value)
    return State.GREET


async def greet(call: Call) -> State:
    c = call.journal.customer
    if c is not None:
        await call.say("greeting_named", name=c.name.split()[0])
    else:
        await call.say("greeting")
    await call.step(Step.GREETING, personal=c is not None)
    # Asked online first (POST /api/contacts): put through with that question.
    if await waiting_by_number(call):
        return State.ONLINE
    # An unknown caller whose number locates them may still hear an outage there.
    known = c is not None or call.channel.caller.region is not None
    return State.PROACTIVE if known else State.ASK


async def key_in(call: Call) -> State:
    """Asked only after an intent that needs account data; DECIDE runs again either way."""
    call.dialogue.identify_tried = True
    for attempt in range(1, call.cfg.customer_no_tries + 1):
        digits = await call.collect("ask_customer_no", max_digits=call.cfg.customer_no_digits)
        digits = (digits or "").strip("#*")
        if not digits or not digits.isdigit():
            await call.step(Step.IDENTIFICATION, method="customer_no", result="skipped")
            return State.DECIDE
        customer = await call.ports.directory.find_by_customer_no(digits)
        if customer is not None:
            await call.emit(Identified(customer, "customer_no"))
            await call.step(Step.IDENTIFICATION, method="customer_no", customer_id=customer.id)
            return State.DECIDE
        await call.step(Step.IDENTIFICATION, method="customer_no", result="not_found",
                        attempt=attempt)
        await call.say("customer_no_unknown")
    return State.DECIDE


async def proactive(call: Call) -> State:
    c = call.journal.customer
    now = call.now()
    said: list[str] = []
    if c is not None:
        said += await _proactive_order(call, c)
    # Unknown callers: the region their number's area code gives (Caller.region).
    region = c.region if c is not None else call.channel.caller.region
    found = list(await call.ports.knowledge.outages(region, now)) if region else []
    for outage in found:
        await call.say("proactive_outage", message=outage.message(call.language))
        said.append(f"outage:{outage.id}")
    if said:
        await call.step(Step.PROACTIVE, told=said, region=region)
    if found:
        return await offer_updates(call, found[0])
    return State.ASK


async def _proactive_order(call: Call, c: Customer) -> list[str]:
    now = call.now()
    call.dialogue.orders = await call.ports.directory.orders(c.id)
    in_transit = [o for o in call.dialogue.orders if o.status == "in_transit"]
    # Seed 004: tell the caller what the CRM already knows before they ask.
    # Order details are only volunteered to callers identified by their own number.
    if in_transit and call.journal.identified_by == "cli":
        order = max(in_transit, key=lambda o: o.eta or now.date())
        await call.say("proactive_order", **order_params(call, order))
        return [f"order:{order.order_no}"]
    return []


async def authenticate(call: Call) -> State:
    c = call.journal.customer
    assert c is not None, "the Router asks for a PIN only from an identified customer"
    directory = call.ports.directory
    tries = call.cfg.pin_tries
    for attempt in range(1, tries + 1):
        if await directory.pin_locked(c.id):
            # Too many wrong PINs for this customer, in this call or earlier ones: no
            # more guessing over the phone; a person checks who is calling.
            await call.step(Step.IDENTIFICATION, method="pin", result="locked",
                            attempt=attempt)
            call.dialogue.escalate_reason = "pin locked (too many wrong PINs)"
            return State.HANDOFF
        pin = await call.collect("ask_pin", max_digits=call.cfg.pin_digits, secret=True)
        if pin and pin.isdigit() and await directory.verify_pin(c.id, pin):
            await call.emit(Authenticated("pin"))
            await call.step(Step.IDENTIFICATION, method="pin", result="ok")
            return State.ACT
        await call.step(Step.IDENTIFICATION, method="pin", result="failed", attempt=attempt)
        if attempt < tries:
            await call.say("pin_wrong")
    call.dialogue.escalate_reason = "pin failed"
    return State.HANDOFF


def order_params(call: Call, order: Order) -> dict[str, str]:
    """Spoken order number (digit by digit), status and arrival phrase."""
    lang = call.language
    status = STATUS_WORDS.get(order.status, {}).get(lang, order.status)
    eta = ""
    if order.eta is not None and order.is_open:
        eta = call.text("eta_phrase", date=call.say_date(order.eta))
    return {"order_no": " ".join(order.order_no), "status": status, "eta_phrase": eta}
