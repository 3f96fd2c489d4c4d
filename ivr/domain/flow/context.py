"""What every handler works with: the ports, the journal and the dialogue's scratch.

The contact record (and who the caller is, what was decided) belongs to the
``ContactJournal``; ``Dialogue`` keeps only what the conversation needs between
turns and never goes into the record (counters, the last utterance).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from ivr.domain.flow.config import FlowConfig
from ivr.domain.flow.events import FlowEvent, Heard, Said, StepTaken
from ivr.domain.flow.journal import ContactJournal
from ivr.domain.model import (
    IntentMatch,
    IntentSpec,
    Language,
    OnlineContact,
    Order,
    RouteRequest,
    Scenario,
    Step,
    Utterance,
)
from ivr.domain.ports import (
    CallbackDesk,
    CallChannel,
    Clock,
    CustomerDirectory,
    IntentCatalogue,
    IntentMatcher,
    KnowledgeBase,
    LinkBuilder,
    Messenger,
    OnlineContacts,
    Prompt,
    Router,
    SurveyLog,
)
from ivr.domain.prompts import MONTHS, WEEKDAYS, render, words
from ivr.domain.troubleshoot import EMPTY_BOOK, ScriptBook

if TYPE_CHECKING:
    from ivr.domain.flow.prepare import Ready

Reply = Literal["yes", "no", "agent", "none", "other"]


@dataclass(frozen=True, slots=True)
class FlowPorts:
    """The outside world as the flow sees it (one set per node, shared by calls)."""

    directory: CustomerDirectory
    knowledge: KnowledgeBase
    catalogue: IntentCatalogue
    matcher: IntentMatcher
    router: Router
    messenger: Messenger
    links: LinkBuilder
    clock: Clock
    # Guided troubleshooting per technical intent (grammars/troubleshooting.yaml).
    scripts: ScriptBook = EMPTY_BOOK
    # Callbacks in time slots; None: never offered.
    callbacks: CallbackDesk | None = None
    # The after-call voice survey's answers (None: no survey is recorded).
    surveys: SurveyLog | None = None
    # Questions asked online that the caller follows up by phone (None: not offered).
    online: OnlineContacts | None = None


@dataclass(slots=True)
class Dialogue:
    """Per-turn scratch of one conversation (not part of the contact record)."""

    utterance: Utterance | None = None
    match: IntentMatch | None = None
    spec: IntentSpec | None = None
    orders: Sequence[Order] = ()
    no_input: int = 0
    misunderstood: int = 0
    keypad_tries: int = 0
    keypad_digit: str | None = None
    escalate_reason: str = ""
    # The customer number was asked once (KEY_IN); DECIDE never asks twice.
    identify_tried: bool = False
    # Alternatives to an agent already offered (chat, self-service): each once.
    alternatives_tried: set[Scenario] = field(default_factory=set)
    # A callback was offered (ivr.domain.flow.callback): never twice in one call.
    callback_offered: bool = False
    # An online question found for the caller's number (GREET -> ONLINE).
    online: OnlineContact | None = None
    # The language offered after the open question (None: no offer), and whether the caller's
    # language is settled (chosen, detected, or the first question went by).
    language_offered: Language | None = None
    language_settled: bool = False
    # The caller was told once that their language has no speech recognition.
    keypad_only_told: bool = False


class Call:
    """One call as the handlers see it: channel, ports, config, journal, scratch."""

    def __init__(self, channel: CallChannel, ports: FlowPorts, config: FlowConfig,
                 journal: ContactJournal) -> None:
        self.channel = channel
        self.ports = ports
        self.cfg = config
        self.journal = journal
        self.dialogue = Dialogue()
        # Answers prepared while the caller speaks (ivr.domain.flow.prepare): the task
        # doing it, and what is ready by answer_ref.
        self.preparing: asyncio.Task[None] | None = None
        self.ready: dict[str, Ready] = {}
        self._tz = ZoneInfo(config.timezone)

    # ---------------------------------------------------------------- record

    @property
    def language(self) -> Language:
        return self.journal.language

    def now(self) -> datetime:
        return self.ports.clock.now()

    async def emit(self, event: FlowEvent) -> None:
        await self.journal.emit(event)

    async def step(self, step: Step, **detail: Any) -> None:
        """Record a step of the contact (saved by the contact log observer)."""
        await self.emit(StepTaken(step=step, at=self.now(), detail=detail))

    def request(self, spec: IntentSpec | None) -> RouteRequest:
        """What the Router needs to know about this caller right now."""
        j = self.journal
        return RouteRequest(spec=spec, customer=j.customer, at=self.now(),
                            language=self.language, session_id=j.contact.id,
                            identified_by=j.identified_by, authenticated=j.authenticated,
                            caller_number=self.channel.caller.number)

    def transcript(self) -> tuple[str, ...]:
        return tuple(self.journal.contact.transcript)

    # ------------------------------------------------------------ speaking

    def prompt(self, key: str, **params: object) -> Prompt:
        return render(key, self.language, **params)

    def text(self, key: str, **params: object) -> str:
        """A catalogue fragment (part of a larger sentence), rendered in the caller's language."""
        return render(key, self.language, **params).text

    async def say(self, key: str, **params: object) -> None:
        prompt = self.prompt(key, **params)
        await self.emit(Said(prompt.text, key))
        await self.channel.say(prompt)

    async def say_prompt(self, prompt: Prompt) -> None:
        """Say an already rendered prompt (e.g. one prepared ahead)."""
        await self.emit(Said(prompt.text, prompt.key))
        await self.channel.say(prompt)

    async def listen(self, key: str | None, *, detect_language: bool = False,
                     then: tuple[Prompt, ...] = (), **params: object) -> Utterance | None:
        """Ask (barge-in allowed) and return the caller's words or keys, None on silence.
        ``detect_language``: the caller may answer in another language (see language.py);
        ``then``: prompts played after the question in the same turn (the offer)."""
        prompt = self.prompt(key, **params) if key else None
        if prompt is not None:
            prompt = replace(prompt, then=then) if then else prompt
            for p in prompt.parts:
                await self.emit(Said(p.text, p.key))
        utterance = await self.channel.listen(
            prompt, timeout_s=self.cfg.no_input_timeout_s,
            phrases=self.ports.catalogue.phrases(self.language),
            detect_language=detect_language,
        )
        if utterance is not None:
            await self.emit(Heard(utterance.text or f"[keypad {utterance.dtmf}]"))
        return utterance

    async def collect(self, key: str, *, max_digits: int, secret: bool = False,
                      **params: object) -> str | None:
        """Keypad entry; prompt and keys go into the transcript (PINs masked)."""
        prompt = self.prompt(key, **params)
        await self.emit(Said(prompt.text, key))
        digits = await self.channel.collect_digits(prompt, max_digits=max_digits,
                                                   timeout_s=self.cfg.digit_timeout_s)
        shown = ("*" * len(digits) if secret else digits) if digits else "-"
        await self.emit(Heard(f"[keys {shown}]"))
        return digits

    def classify_reply(self, u: Utterance | None) -> Reply:
        """'yes' | 'no' | 'agent' | 'none' | 'other' for a short answer."""
        if u is None:
            return "none"
        if u.dtmf:
            keyed: dict[str, Reply] = {"1": "yes", "2": "no", "0": "agent"}
            return keyed.get(u.dtmf[0], "other")
        text = f" {_normalise(u.text)} "
        lang = self.language
        if any(f" {w} " in text for w in words("agent_words", lang)):
            return "agent"
        # "no" wins over "yes" in "no thanks, not really"; check it first.
        if any(f" {w} " in text for w in words("no_words", lang)):
            return "no"
        if any(f" {w} " in text for w in words("yes_words", lang)):
            return "yes"
        return "other"

    # ------------------------------------------------------------- dates

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self._tz) if at.tzinfo else at.replace(tzinfo=self._tz)

    def say_date(self, d: date) -> str:
        lang = self.language
        return f"{WEEKDAYS[lang][d.weekday()]} {d.day} {MONTHS[lang][d.month - 1]}"

    def reprompts_left(self) -> bool:
        """Whether the open question may be asked again before the keypad menu."""
        d = self.dialogue
        return d.no_input + d.misunderstood <= self.cfg.max_reprompts


def _normalise(text: str) -> str:
    return re.sub(r"[^\w' ]+", " ", text.lower()).strip()
