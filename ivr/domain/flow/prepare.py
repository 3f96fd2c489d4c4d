"""Answers prepared while the caller speaks (#14 item 2).

The dynamic answers whose data is known once the caller is identified (opening hours
today, a known customer's latest order) are looked up and, on an audio channel,
synthesised into the prompt cache in the background while the greeting plays and the
caller asks their question. When the intent is understood, the answer's lookups (the
opening hours took ~110 ms at load 10, in a database thread) and its synthesis are
already done: the reply is requested at once. The work is one task per call, bounded
(``PREPARE_LIMIT_S``), cancelled when the call ends; a failure only means the answer is
looked up and synthesised when it is said, as before. A prepared answer is used only
while fresh (``PREPARE_FRESH_S``: the opening status of a call that lasts past closing
time is looked up again).

Prompts whose words come from the catalogue alone (the transfer naming the topic, the
confirmation question, the keypad menu, the link prompts, the troubleshooting steps) are
the same for every caller: ``catalogue_prompts`` lists them, and a node synthesises the
missing ones into its prompt cache when it starts, so the first caller to need one does
not wait for the voice (~200 ms of flite for a sentence on this machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from ivr.domain.flow.context import Call
from ivr.domain.flow.identify import order_params
from ivr.domain.model import Customer, Language, Order
from ivr.domain.ports import IntentCatalogue, Prompt, PromptWarmer
from ivr.domain.prompts import CHANNEL_WORDS, keypad_options, render
from ivr.domain.troubleshoot import ScriptBook

log = logging.getLogger(__name__)

PREPARE_LIMIT_S = 10.0
PREPARE_FRESH_S = 60.0
OPENING_HOURS = "kb:opening_hours"
ORDER_STATUS = "crm:order_status"


@dataclass(frozen=True, slots=True)
class Ready:
    """A prepared answer: its prompt, the contact step's detail, and when it was made."""

    prompt: Prompt
    detail: str
    at: datetime
    customer_id: int | None  # whose data it holds (None: nobody's)


def start(call: Call) -> None:
    """Prepare the answers for this caller in the background (once per call)."""
    if call.preparing is None:
        call.preparing = asyncio.create_task(_prepare(call), name="prepare-answers")


async def stop(call: Call) -> None:
    """The call is over: cancel what is still being prepared."""
    task, call.preparing = call.preparing, None
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def ready(call: Call, ref: str) -> Ready | None:
    """The prepared answer for ``ref`` (an intent's answer_ref) if done and fresh."""
    got = call.ready.get(ref)
    if got is None or (call.now() - got.at).total_seconds() > PREPARE_FRESH_S:
        return None
    c = call.journal.customer
    if got.prompt.language != call.language or got.customer_id != (c.id if c else None):
        return None  # the caller was identified (or changed language) since
    return got


async def _prepare(call: Call) -> None:
    try:
        async with asyncio.timeout(PREPARE_LIMIT_S):
            customer = call.journal.customer
            if customer is not None:
                await _warm(call, ORDER_STATUS, await _order_status(call, customer))
            await _warm(call, OPENING_HOURS, await _opening_hours(call, customer))
    except Exception as exc:  # only a head start: the answer is made when said
        log.info("answers not prepared ahead: %s", exc)


async def _warm(call: Call, ref: str, got: Ready | None) -> None:
    if got is None:
        return
    if isinstance(call.channel, PromptWarmer):
        await call.channel.prepare(got.prompt)
    call.ready[ref] = got


async def latest_order(call: Call, c: Customer) -> Order | None:
    """The order a caller asking about "my order" means: an open one first, then the
    latest expected; None without orders."""
    orders = call.dialogue.orders or await call.ports.directory.orders(c.id)
    return max(orders, key=lambda o: (o.is_open, o.eta or date.min), default=None)


async def _order_status(call: Call, c: Customer) -> Ready | None:
    at = call.now()
    order = await latest_order(call, c)
    if order is None:
        return None
    return Ready(call.prompt("order_status", **order_params(call, order)),
                 order.order_no, at, c.id)


async def _opening_hours(call: Call, c: Customer | None) -> Ready | None:
    at = call.now()
    key = OPENING_HOURS.partition(":")[2]
    template = await call.ports.knowledge.answer(key, call.language)
    if template is None:
        return None
    params = await answer_params(call, c)
    return Ready(call.prompt("answer", text=fill(template, params)), key, at,
                 c.id if c else None)


def fill(template: str, params: dict[str, str]) -> str:
    """The answer's text: ``template`` with ``params`` (unknown placeholders empty)."""
    return template.format_map(_Missing(params))


async def answer_params(call: Call, c: Customer | None) -> dict[str, str]:
    voice = await call.ports.knowledge.opening("voice", call.now())
    if voice.is_open and voice.closes_at is not None:
        today = call.text("today_open", closes=f"{call.local(voice.closes_at):%H:%M}")
    elif voice.next_open is not None:
        nxt = call.local(voice.next_open)
        today = call.text("today_closed", date=call.say_date(nxt), time=f"{nxt:%H:%M}")
    else:
        today = ""
    return {"today_status": today, "name": c.name if c else "",
            "customer_no": c.customer_no if c else ""}


class _Missing(dict[str, str]):
    """format_map helper: unknown placeholders stay empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


def catalogue_prompts(catalogue: IntentCatalogue, scripts: ScriptBook,
                      languages: Iterable[Language]) -> list[Prompt]:
    """Every prompt the flow renders from the catalogue alone, most used first: the
    transfer naming each topic, the link prompts, the troubleshooting steps, the
    confirmation question per topic, the keypad menu (each once per language)."""
    out: list[Prompt] = []
    specs = list(catalogue.all_specs())
    for lang in languages:
        out += [render("transfer", lang, label=s.label_for(lang)) for s in specs
                if not s.sensitive and s.name != "speak_to_agent"]
        out += [render(key, lang, channel=word) for word in CHANNEL_WORDS.values()
                for key in ("link_sent", "chat_link_sent")]
        out += [render("answer", lang, text=text) for script in scripts.scripts.values()
                for step in script.steps.values() if (text := step.say(lang))]
        out += [render("confirm_intent", lang, label=s.label_for(lang)) for s in specs]
        menu = [s for s in catalogue.keypad_menu() if s.keypad]
        if menu:
            out.append(render("keypad_menu", lang, options=keypad_options(menu, lang)))
    # One file per (language, text): a label shared by two intents is made once.
    seen: set[tuple[str, str]] = set()
    unique: list[Prompt] = []
    for p in out:
        if (p.language, p.text) not in seen:
            seen.add((p.language, p.text))
            unique.append(p)
    return unique
