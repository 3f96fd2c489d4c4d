"""CallFlow: one caller's dialogue, as an explicit state machine over the ports.

identify (CLI) -> greet -> [key in customer number] -> proactive message ->
open question -> understand -> [confirm | keypad menu] -> decide -> act
(S1 answer + "was this helpful?", S2 self-service link, S3 chat link, S4 agent)
-> close. Every transition is written to the contact record. Any failure of a
port (database down, messenger broken...) sends the caller to a human; the
caller is never dropped by the IVR itself.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ivr.domain.model import (
    Caller,
    Contact,
    ContactChannel,
    ContactSnapshot,
    Customer,
    IntentMatch,
    IntentSpec,
    Language,
    Order,
    Outcome,
    Presentation,
    RouteDecision,
    Scenario,
    Step,
    StepRecord,
    Utterance,
)
from ivr.domain.ports import (
    CallChannel,
    CallerHungUp,
    Clock,
    ContactLog,
    CustomerDirectory,
    IntentCatalogue,
    IntentMatcher,
    KnowledgeBase,
    LinkBuilder,
    Messenger,
    Prompt,
    Router,
    ScreenPop,
)
from ivr.domain.prompts import MONTHS, STATUS_WORDS, WEEKDAYS, render, words

log = logging.getLogger(__name__)


class State(enum.Enum):
    IDENTIFY = "identify"
    GREET = "greet"
    KEY_IN = "key_in"
    PROACTIVE = "proactive"
    ASK = "ask"
    UNDERSTAND = "understand"
    CONFIRM = "confirm"
    KEYPAD = "keypad"
    DECIDE = "decide"
    AUTHENTICATE = "authenticate"
    ACT = "act"
    FEEDBACK = "feedback"
    HANDOFF = "handoff"
    CLOSE = "close"
    DONE = "done"


# Which contact step a state belongs to: a caller who hangs up in a state
# "dropped off" at that step.
STEP_OF: dict[State, Step] = {
    State.IDENTIFY: Step.IDENTIFICATION,
    State.GREET: Step.GREETING,
    State.KEY_IN: Step.IDENTIFICATION,
    State.PROACTIVE: Step.PROACTIVE,
    State.ASK: Step.QUESTION,
    State.UNDERSTAND: Step.INTENT,
    State.CONFIRM: Step.CONFIRM,
    State.KEYPAD: Step.KEYPAD,
    State.DECIDE: Step.SCENARIO,
    State.AUTHENTICATE: Step.IDENTIFICATION,
    State.ACT: Step.ACTION,
    State.FEEDBACK: Step.FEEDBACK,
    State.HANDOFF: Step.HANDOFF,
    State.CLOSE: Step.CLOSE,
    State.DONE: Step.CLOSE,
}

FALLBACK_SKILL = "general"


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Dialogue tuning, taken from Settings by the composition root."""

    default_language: Language = "en"
    timezone: str = "Europe/Amsterdam"
    no_input_timeout_s: float = 6.0
    digit_timeout_s: float = 8.0
    max_reprompts: int = 1
    confirm_below: float = 0.6
    reject_below: float = 0.35
    # Intents that disclose account data and need a PIN when the caller was not
    # identified by their own number (keyed-in customer numbers can be guessed).
    pin_protected: frozenset[str] = frozenset({"order_status", "invoice_question",
                                               "payment_arrears"})
    always_pin: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FlowResult:
    """What happened, for the caller of ``CallFlow.run`` (CLI table, tests, metrics)."""

    outcome: Outcome
    decision: RouteDecision | None
    contact: ContactSnapshot


@dataclass(slots=True)
class _CallState:
    """Per-call mutable state, owned by the flow (one instance per call)."""

    language: Language
    customer: Customer | None = None
    identified_by: str | None = None  # "cli" | "customer_no"
    authenticated: bool = False
    question: str | None = None
    utterance: Utterance | None = None
    match: IntentMatch | None = None
    spec: IntentSpec | None = None
    decision: RouteDecision | None = None
    orders: Sequence[Order] = ()
    no_input: int = 0
    misunderstood: int = 0
    keypad_tries: int = 0
    keypad_digit: str | None = None
    escalate_reason: str = ""


class CallFlow:
    """Runs one call. Construct one per call; ``run()`` never raises (bar cancellation)."""

    def __init__(
        self,
        channel: CallChannel,
        *,
        directory: CustomerDirectory,
        knowledge: KnowledgeBase,
        catalogue: IntentCatalogue,
        matcher: IntentMatcher,
        router: Router,
        contacts: ContactLog,
        messenger: Messenger,
        links: LinkBuilder,
        clock: Clock,
        config: FlowConfig,
        screenpop: ScreenPop | None = None,
        contact_channel: ContactChannel = ContactChannel.VOICE,
    ) -> None:
        self._ch = channel
        self._directory = directory
        self._kb = knowledge
        self._catalogue = catalogue
        self._matcher = matcher
        self._router = router
        self._contacts = contacts
        self._messenger = messenger
        self._links = links
        self._clock = clock
        self._cfg = config
        self._tz = ZoneInfo(config.timezone)
        self._screenpop = screenpop
        self._s = _CallState(language=config.default_language)
        caller = channel.caller
        self.contact = Contact(
            id=channel.session_id,
            channel=contact_channel,
            caller=caller.number or caller.raw or "withheld",
            started_at=clock.now(),
            language=config.default_language,
        )
        self._state = State.IDENTIFY
        self._handlers: dict[State, Callable[[], Awaitable[State]]] = {
            State.IDENTIFY: self._identify,
            State.GREET: self._greet,
            State.KEY_IN: self._key_in,
            State.PROACTIVE: self._proactive,
            State.ASK: self._ask,
            State.UNDERSTAND: self._understand,
            State.CONFIRM: self._confirm,
            State.KEYPAD: self._keypad,
            State.DECIDE: self._decide,
            State.AUTHENTICATE: self._authenticate,
            State.ACT: self._act,
            State.FEEDBACK: self._feedback,
            State.HANDOFF: self._handoff,
            State.CLOSE: self._close,
        }

    @property
    def state(self) -> State:
        return self._state

    # ------------------------------------------------------------------ driver

    async def run(self) -> FlowResult:
        try:
            while self._state is not State.DONE:
                self._state = await self._handlers[self._state]()
        except CallerHungUp:
            self.contact.dropped_at = STEP_OF[self._state]
            if self.contact.outcome is None:
                self.contact.outcome = Outcome.ABANDONED
            log.info("caller hung up during %s", self._state.value)
        except Exception as exc:  # any port failure: fail safe to a human
            log.exception("call flow failed in %s; sending caller to a human", self._state.value)
            await self._fail_safe(exc)
        finally:
            self.contact.ended_at = self._clock.now()
            await self._save()
        return FlowResult(
            outcome=self.contact.outcome or Outcome.ABANDONED,
            decision=self._s.decision,
            contact=self.contact.snapshot(),
        )

    async def _fail_safe(self, exc: Exception) -> None:
        failed_in = STEP_OF[self._state]
        self._record(Step.HANDOFF, reason="system_error", error=type(exc).__name__,
                     failed_in=failed_in.value)
        decision = RouteDecision(
            scenario=Scenario.AGENT,
            skill=FALLBACK_SKILL,
            queue=FALLBACK_SKILL,
            priority=1,
            reason=f"system error in {failed_in.value}: {type(exc).__name__}",
            intent=self._s.spec.name if self._s.spec else None,
            question=self._s.question,
            transcript=tuple(self.contact.transcript),
            customer=self._s.customer,
            session_id=self.contact.id,
        )
        self._s.decision = decision
        self.contact.scenario = Scenario.AGENT
        self.contact.skill = FALLBACK_SKILL
        self.contact.action = f"handoff:{FALLBACK_SKILL}"
        self.contact.outcome = Outcome.ERROR_TO_AGENT
        try:
            await self._ch.say(render("system_problem", self._s.language))
            await self._ch.hand_off(decision)
        except CallerHungUp:
            self.contact.dropped_at = Step.HANDOFF
            self.contact.outcome = Outcome.ABANDONED
        except Exception:
            # The channel itself is broken; the dialplan's safety net takes over.
            log.exception("hand-off after failure also failed")

    # ----------------------------------------------------------------- helpers

    def _record(self, step: Step, **detail: Any) -> None:
        self.contact.steps.append(StepRecord(step=step, at=self._clock.now(), detail=detail))

    async def _save(self) -> None:
        """Persist a snapshot; a failing contact log must never hurt the call."""
        try:
            await self._contacts.save(self.contact.snapshot())
        except Exception:
            log.exception("could not save contact %s", self.contact.id)

    async def _step(self, step: Step, **detail: Any) -> None:
        self._record(step, **detail)
        await self._save()

    def _p(self, key: str, **params: object) -> Prompt:
        return render(key, self._s.language, **params)

    async def _say(self, key: str, **params: object) -> None:
        prompt = self._p(key, **params)
        self.contact.transcript.append(f"ivr: {prompt.text}")
        await self._ch.say(prompt)

    async def _listen(self, key: str | None, **params: object) -> Utterance | None:
        prompt = self._p(key, **params) if key else None
        if prompt is not None:
            self.contact.transcript.append(f"ivr: {prompt.text}")
        utterance = await self._ch.listen(
            prompt,
            timeout_s=self._cfg.no_input_timeout_s,
            phrases=self._catalogue.phrases(self._s.language),
        )
        if utterance is not None:
            heard = utterance.text or f"[keypad {utterance.dtmf}]"
            self.contact.transcript.append(f"caller: {heard}")
        return utterance

    async def _collect(self, prompt: Prompt, *, max_digits: int, secret: bool = False
                       ) -> str | None:
        """Keypad entry; prompt and keys go into the transcript (PINs masked)."""
        self.contact.transcript.append(f"ivr: {prompt.text}")
        digits = await self._ch.collect_digits(prompt, max_digits=max_digits,
                                               timeout_s=self._cfg.digit_timeout_s)
        shown = ("*" * len(digits) if secret else digits) if digits else "-"
        self.contact.transcript.append(f"caller: [keys {shown}]")
        return digits

    def _set_language(self, language: Language) -> None:
        self._s.language = language
        self.contact.language = language

    def _local(self, at: datetime) -> datetime:
        return at.astimezone(self._tz) if at.tzinfo else at.replace(tzinfo=self._tz)

    def _say_date(self, d: datetime | Any) -> str:
        lang = self._s.language
        return f"{WEEKDAYS[lang][d.weekday()]} {d.day} {MONTHS[lang][d.month - 1]}"

    def _classify_reply(self, u: Utterance | None) -> str:
        """'yes' | 'no' | 'agent' | 'none' | 'other' for a short answer."""
        if u is None:
            return "none"
        if u.dtmf:
            return {"1": "yes", "2": "no", "0": "agent"}.get(u.dtmf[0], "other")
        text = f" {_normalise(u.text)} "
        lang = self._s.language
        if any(f" {w} " in text for w in words("agent_words", lang)):
            return "agent"
        # "no" wins over "yes" in "no thanks, not really"; check it first.
        if any(f" {w} " in text for w in words("no_words", lang)):
            return "no"
        if any(f" {w} " in text for w in words("yes_words", lang)):
            return "yes"
        return "other"

    # ------------------------------------------------------------------ states

    async def _identify(self) -> State:
        caller: Caller = self._ch.caller
        if caller.presentation is Presentation.VALID and caller.number:
            customer = await self._directory.find_by_number(caller.number)
            if customer is not None:
                self._s.customer = customer
                self._s.identified_by = "cli"
                self.contact.customer_id = customer.id
                self._set_language(customer.language)
                await self._step(Step.IDENTIFICATION, method="cli", customer_id=customer.id)
                return State.GREET
            await self._step(Step.IDENTIFICATION, method="cli", result="unknown_number")
        else:
            await self._step(Step.IDENTIFICATION, method="cli",
                             result=caller.presentation.value)
        return State.GREET

    async def _greet(self) -> State:
        c = self._s.customer
        if c is not None:
            await self._say("greeting_named", name=c.name.split()[0])
        else:
            await self._say("greeting")
        await self._step(Step.GREETING, personal=c is not None)
        return State.PROACTIVE if c is not None else State.KEY_IN

    async def _key_in(self) -> State:
        for attempt in range(2):
            digits = await self._collect(self._p("ask_customer_no"), max_digits=10)
            digits = (digits or "").strip("#*")
            if not digits or not digits.isdigit():
                await self._step(Step.IDENTIFICATION, method="customer_no", result="skipped")
                return State.ASK
            customer = await self._directory.find_by_customer_no(digits)
            if customer is not None:
                self._s.customer = customer
                self._s.identified_by = "customer_no"
                self.contact.customer_id = customer.id
                self._set_language(customer.language)
                await self._step(Step.IDENTIFICATION, method="customer_no",
                                 customer_id=customer.id)
                return State.PROACTIVE
            await self._step(Step.IDENTIFICATION, method="customer_no", result="not_found",
                             attempt=attempt + 1)
            await self._say("customer_no_unknown")
        return State.ASK

    async def _proactive(self) -> State:
        c = self._s.customer
        assert c is not None
        now = self._clock.now()
        said: list[str] = []
        self._s.orders = await self._directory.orders(c.id)
        in_transit = [o for o in self._s.orders if o.status == "in_transit"]
        # Seed 004: tell the caller what the CRM already knows before they ask.
        # Order details are only volunteered to callers identified by their own number.
        if in_transit and self._s.identified_by == "cli":
            order = max(in_transit, key=lambda o: o.eta or now.date())
            await self._say("proactive_order", **self._order_params(order))
            said.append(f"order:{order.order_no}")
        for outage in await self._kb.outages(c.region, now):
            await self._say("proactive_outage", message=outage.message(self._s.language))
            said.append(f"outage:{outage.id}")
        if said:
            await self._step(Step.PROACTIVE, told=said)
        return State.ASK

    async def _ask(self) -> State:
        key = "ask_question" if self._s.no_input == 0 and self._s.misunderstood == 0 \
            else "ask_question_again"
        u = await self._listen(key)
        if u is None:
            self._s.no_input += 1
            await self._step(Step.QUESTION, result="no_input", count=self._s.no_input)
            if self._s.no_input + self._s.misunderstood > self._cfg.max_reprompts:
                return State.KEYPAD
            return State.ASK
        if u.dtmf and not u.text:
            # Caller went for the keypad straight away: honour it.
            self._s.keypad_digit = u.dtmf[0]
            await self._step(Step.QUESTION, result="dtmf", digit=u.dtmf[0])
            return State.KEYPAD
        self._s.utterance = u
        if self._s.question is None:
            self._s.question = u.text
            self.contact.question = u.text
        await self._step(Step.QUESTION, text=u.text, asr_confidence=round(u.confidence, 3))
        return State.UNDERSTAND

    async def _understand(self) -> State:
        u = self._s.utterance
        assert u is not None
        match = await self._matcher.match(u.text, self._s.language)
        self._s.match = match
        best = match.best
        if self._classify_reply(u) == "agent" and (best is None or best.confidence < 0.9):
            spec = self._catalogue.spec("speak_to_agent")
            if spec is not None:
                return await self._accept(spec, 1.0, via="agent_words")
        if best is None or match.out_of_scope or best.confidence < self._cfg.reject_below:
            self._s.misunderstood += 1
            await self._step(Step.INTENT, result="not_understood",
                             best=best.intent if best else None,
                             confidence=round(best.confidence, 3) if best else None,
                             count=self._s.misunderstood)
            if self._s.no_input + self._s.misunderstood > self._cfg.max_reprompts:
                return State.KEYPAD
            return State.ASK
        spec = self._catalogue.spec(best.intent)
        if spec is None:
            raise LookupError(f"matcher returned unknown intent {best.intent!r}")
        if best.confidence < self._cfg.confirm_below and not spec.sensitive:
            self._s.spec = spec
            return State.CONFIRM
        return await self._accept(spec, best.confidence, via="speech")

    async def _accept(self, spec: IntentSpec, confidence: float, *, via: str) -> State:
        self._s.spec = spec
        self.contact.intent = spec.name
        self.contact.confidence = round(confidence, 3)
        await self._step(Step.INTENT, intent=spec.name, confidence=round(confidence, 3), via=via)
        return State.DECIDE

    async def _confirm(self) -> State:
        spec = self._s.spec
        assert spec is not None and self._s.match is not None
        u = await self._listen("confirm_intent", label=spec.label_for(self._s.language))
        reply = self._classify_reply(u)
        await self._step(Step.CONFIRM, intent=spec.name, reply=reply)
        best = self._s.match.best
        if reply == "yes":
            return await self._accept(spec, best.confidence if best else 0.0, via="confirmed")
        if reply == "agent":
            agent = self._catalogue.spec("speak_to_agent")
            if agent is not None:
                return await self._accept(agent, 1.0, via="agent_words")
        if u is not None and reply == "other" and u.text:
            # The caller rephrased instead of answering yes/no: understand that.
            self._s.utterance = u
            self._s.spec = None
            return State.UNDERSTAND
        self._s.spec = None
        self._s.misunderstood += 1
        if self._s.no_input + self._s.misunderstood > self._cfg.max_reprompts:
            return State.KEYPAD
        return State.ASK

    async def _keypad(self) -> State:
        menu = list(self._catalogue.keypad_menu())
        by_digit = {s.keypad: s for s in menu if s.keypad}
        digit = self._s.keypad_digit
        self._s.keypad_digit = None
        while digit is None or digit not in by_digit:
            if self._s.keypad_tries >= 2:
                break
            self._s.keypad_tries += 1
            options = " ".join(
                self._p("keypad_option", label=s.label_for(self._s.language), digit=s.keypad).text
                for s in menu if s.keypad
            )
            got = await self._collect(self._p("keypad_menu", options=options), max_digits=1)
            digit = (got or "")[:1] or None
            await self._step(Step.KEYPAD, digit=digit, attempt=self._s.keypad_tries)
        if digit is not None and digit in by_digit:
            return await self._accept(by_digit[digit], 1.0, via=f"keypad:{digit}")
        # Not understood by voice nor keypad: a person will sort it out.
        self._s.escalate_reason = "not understood"
        spec = self._catalogue.spec("speak_to_agent")
        if spec is not None:
            return await self._accept(spec, 0.0, via="fallback")
        return State.HANDOFF

    async def _decide(self) -> State:
        spec = self._s.spec
        assert spec is not None
        decision = await self._router.route(
            spec=spec, customer=self._s.customer, at=self._clock.now(),
            language=self._s.language,
        )
        decision = replace(
            decision,
            question=self._s.question,
            transcript=tuple(self.contact.transcript),
            session_id=self.contact.id,
        )
        self._s.decision = decision
        self.contact.scenario = decision.scenario
        self.contact.skill = decision.skill
        await self._step(Step.SCENARIO, scenario=decision.scenario.value, skill=decision.skill,
                         priority=decision.priority, reason=decision.reason)
        if self._needs_pin(spec, decision):
            return State.AUTHENTICATE
        return State.ACT

    def _needs_pin(self, spec: IntentSpec, decision: RouteDecision) -> bool:
        c = self._s.customer
        if c is None or not c.has_pin or self._s.authenticated:
            return False
        if decision.scenario is Scenario.AGENT:
            return False  # the agent verifies identity themselves
        if spec.name in self._cfg.always_pin:
            return True
        return spec.name in self._cfg.pin_protected and self._s.identified_by != "cli"

    async def _authenticate(self) -> State:
        c = self._s.customer
        assert c is not None
        for attempt in range(3):
            pin = await self._collect(self._p("ask_pin"), max_digits=4, secret=True)
            if pin and pin.isdigit() and await self._directory.verify_pin(c.id, pin):
                self._s.authenticated = True
                await self._step(Step.IDENTIFICATION, method="pin", result="ok")
                return State.ACT
            await self._step(Step.IDENTIFICATION, method="pin", result="failed",
                             attempt=attempt + 1)
            if attempt < 2:
                await self._say("pin_wrong")
        self._s.escalate_reason = "pin failed"
        return State.HANDOFF

    async def _act(self) -> State:
        decision = self._s.decision
        spec = self._s.spec
        assert decision is not None and spec is not None
        if decision.scenario is Scenario.ANSWER:
            return await self._act_answer(spec)
        if decision.scenario is Scenario.SELF_SERVICE:
            return await self._act_link(spec, chat=False)
        if decision.scenario is Scenario.CHAT:
            status = await self._kb.chat_status(self._clock.now())
            if not status.available:
                self._s.escalate_reason = "chat unavailable"
                await self._step(Step.ACTION, action="chat_unavailable", open=status.is_open,
                                 active=status.active, capacity=status.capacity)
                return State.HANDOFF
            return await self._act_link(spec, chat=True)
        return State.HANDOFF

    # S1 -----------------------------------------------------------------------
    async def _act_answer(self, spec: IntentSpec) -> State:
        ref = spec.answer_ref or f"kb:{spec.name}"
        kind, _, key = ref.partition(":")
        lang = self._s.language
        c = self._s.customer
        if kind == "crm" and key == "order_status":
            if c is None:
                await self._say("order_needs_identification")
                self._s.escalate_reason = "order status for unidentified caller"
                return State.HANDOFF
            orders = self._s.orders or await self._directory.orders(c.id)
            recent = sorted(orders, key=lambda o: (o.is_open, o.eta or datetime.min.date()),
                            reverse=True)
            if not recent:
                await self._say("no_orders")
            else:
                await self._say("order_status", **self._order_params(recent[0]))
            detail = recent[0].order_no if recent else "none"
        elif kind == "crm" and key == "outage":
            outages = await self._kb.outages(c.region if c else None, self._clock.now())
            if not outages:
                await self._say("outage_none")
            for o in outages:
                await self._say("outage_info", message=o.message(lang))
            detail = ",".join(str(o.id) for o in outages) or "none"
        else:
            template = await self._kb.answer(key, lang)
            if template is None:
                self._s.escalate_reason = f"no answer for {key}"
                await self._step(Step.ACTION, action="answer_missing", key=key)
                return State.HANDOFF
            params = await self._answer_params(c)
            await self._say("answer", text=template.format_map(_Missing(params)))
            detail = key
        self.contact.action = f"answer:{spec.name}"
        await self._step(Step.ACTION, action="answer", intent=spec.name, detail=detail)
        return State.FEEDBACK

    async def _answer_params(self, c: Customer | None) -> dict[str, str]:
        now = self._clock.now()
        voice = await self._kb.opening("voice", now)
        lang = self._s.language
        if voice.is_open and voice.closes_at is not None:
            closes = self._local(voice.closes_at).strftime("%H:%M")
            today = {"en": f"We are open now, until {closes}.",
                     "nl": f"We zijn nu open, tot {closes} uur."}[lang]
        elif voice.next_open is not None:
            nxt = self._local(voice.next_open)
            today = {"en": f"We are closed now; we open again {self._say_date(nxt)} at "
                           f"{nxt:%H:%M}.",
                     "nl": f"We zijn nu gesloten; we zijn weer open op {self._say_date(nxt)} "
                           f"om {nxt:%H:%M} uur."}[lang]
        else:
            today = ""
        return {"today_status": today, "name": c.name if c else "",
                "customer_no": c.customer_no if c else ""}

    def _order_params(self, order: Order) -> dict[str, str]:
        lang = self._s.language
        status = STATUS_WORDS.get(order.status, {}).get(lang, order.status)
        eta = ""
        if order.eta is not None and order.is_open:
            eta = {"en": f" and should arrive on {self._say_date(order.eta)}",
                   "nl": f" en wordt naar verwachting {self._say_date(order.eta)} bezorgd"}[lang]
        return {"order_no": " ".join(order.order_no), "status": status, "eta_phrase": eta}

    async def _feedback(self) -> State:
        u = await self._listen("was_helpful")
        reply = self._classify_reply(u)
        await self._step(Step.FEEDBACK, reply=reply)
        if reply in ("no", "agent"):
            self._s.escalate_reason = "answer did not help"
            return State.HANDOFF
        if reply == "yes":
            await self._say("glad_to_help")
        self.contact.outcome = Outcome.SELF_SERVED
        return State.CLOSE

    # S2 / S3 ------------------------------------------------------------------
    async def _act_link(self, spec: IntentSpec, *, chat: bool) -> State:
        c = self._s.customer
        to = self._ch.caller.number
        if to is None and c is not None and c.numbers:
            to = c.numbers[0]
        if to is None:
            self._s.escalate_reason = "no number to send a link to"
            await self._step(Step.ACTION, action="link_impossible", reason="no number")
            return State.HANDOFF
        channel = c.preferred_channel if c is not None else "sms"
        key = spec.link_key or ("chat" if chat else spec.name)
        url = self._links.link(key, self.contact.id)
        body = _link_body(spec.label_for(self._s.language), url, self._s.language, chat)
        receipt = await self._messenger.send_link(
            to=to, channel=channel, body=body, contact_id=self.contact.id,
            language=self._s.language,
        )
        if not receipt.ok:
            await self._step(Step.ACTION, action="link_failed", channel=channel,
                             error_code=receipt.error_code, permanent=receipt.permanent)
            await self._say("link_failed")
            self._s.escalate_reason = f"link failed ({receipt.error_code or receipt.error})"
            return State.HANDOFF
        channel_word = "WhatsApp" if receipt.channel == "whatsapp" else "SMS"
        self.contact.action = f"{'chat' if chat else 'link'}:{key}:{receipt.channel}"
        await self._step(Step.ACTION, action="chat_link" if chat else "link", key=key,
                         channel=receipt.channel, message_id=receipt.message_id)
        if chat:
            await self._say("chat_link_sent", channel=channel_word)
            self.contact.outcome = Outcome.CHAT
            return State.CLOSE
        u = await self._listen("link_sent", channel=channel_word)
        reply = self._classify_reply(u)
        await self._step(Step.FEEDBACK, reply=reply)
        if reply in ("agent", "yes"):
            self._s.escalate_reason = "caller wants an agent after link"
            return State.HANDOFF
        self.contact.outcome = Outcome.LINK_SENT
        return State.CLOSE

    # S4 -----------------------------------------------------------------------
    async def _handoff(self) -> State:
        spec = self._s.spec
        decision = self._s.decision
        if decision is None or decision.scenario is not Scenario.AGENT:
            decision = await self._escalated_decision(spec, decision)
        self._s.decision = decision
        self.contact.scenario = Scenario.AGENT
        self.contact.skill = decision.skill
        sensitive = bool(spec and spec.sensitive)
        opening = await self._kb.opening("voice", self._clock.now())
        if not opening.is_open and not sensitive:
            nxt = ""
            if opening.next_open is not None:
                n = self._local(opening.next_open)
                nxt = {"en": f"We are available again {self._say_date(n)} from {n:%H:%M}.",
                       "nl": f"We zijn weer bereikbaar op {self._say_date(n)} vanaf "
                             f"{n:%H:%M} uur."}[self._s.language]
            await self._say("closed", next_open=nxt)
            self.contact.outcome = Outcome.CLOSED_HOURS
            await self._step(Step.HANDOFF, result="closed", skill=decision.skill,
                             reason=opening.reason)
            return State.CLOSE
        if sensitive:
            await self._say("transfer_sensitive")
        elif spec is not None and spec.name != "speak_to_agent":
            await self._say("transfer", label=spec.label_for(self._s.language))
        else:
            await self._say("transfer_generic")
        decision = replace(decision, transcript=tuple(self.contact.transcript))
        self._s.decision = decision
        self.contact.action = f"handoff:{decision.skill}"
        self.contact.outcome = Outcome.AGENT
        await self._step(Step.HANDOFF, skill=decision.skill, queue=decision.queue,
                         priority=decision.priority, reason=decision.reason)
        if self._screenpop is not None:
            try:
                await self._screenpop.publish(self.contact.id, self._screen_context(decision))
            except Exception:
                log.exception("screen-pop publish failed; the agent can still fetch it")
        await self._ch.hand_off(decision)
        return State.DONE

    async def _escalated_decision(
        self, spec: IntentSpec | None, current: RouteDecision | None
    ) -> RouteDecision:
        reason = self._s.escalate_reason or "escalation"
        if spec is not None:
            agent_spec = replace(spec, scenario=Scenario.AGENT)
            routed = await self._router.route(spec=agent_spec, customer=self._s.customer,
                                              at=self._clock.now(), language=self._s.language)
            routed = replace(routed, reason=f"{routed.reason}; {reason}")
        else:
            routed = RouteDecision(scenario=Scenario.AGENT, skill=FALLBACK_SKILL,
                                   queue=FALLBACK_SKILL, reason=reason,
                                   customer=self._s.customer)
        return replace(routed, question=self._s.question, transcript=tuple(self.contact.transcript),
                       session_id=self.contact.id)

    def _screen_context(self, decision: RouteDecision) -> dict[str, Any]:
        c = self._s.customer
        return {
            "session": self.contact.id,
            "question": self._s.question,
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

    async def _close(self) -> State:
        await self._say("goodbye")
        await self._step(Step.CLOSE, outcome=self.contact.outcome.value
                         if self.contact.outcome else None)
        await self._ch.hang_up()
        return State.DONE


class _Missing(dict[str, str]):
    """format_map helper: unknown placeholders stay empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


def _normalise(text: str) -> str:
    return re.sub(r"[^\w' ]+", " ", text.lower()).strip()


def _link_body(label: str, url: str, language: Language, chat: bool) -> str:
    if chat:
        return {"en": f"Kanaal: continue your question about {label} in our live chat: {url}",
                "nl": f"Kanaal: zet uw vraag over {label} voort in onze live chat: {url}"}[language]
    return {"en": f"Kanaal: arrange {label} yourself here: {url} (link valid for 24 hours)",
            "nl": f"Kanaal: regel {label} direct zelf via {url} (link 24 uur geldig)"}[language]
