"""The contact journal: the one owner of a call's record, fed by flow events.

The flow never writes the contact directly; it emits events. The journal folds
each event into the ``Contact`` first, then hands the event and a snapshot to
every observer in order. A failing observer is logged and skipped: a broken
contact log or screen-pop must never hurt the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from typing import assert_never

from ivr.domain.flow.events import (
    ActionTaken,
    Authenticated,
    Concluded,
    Decided,
    Ended,
    FlowEvent,
    HandedOff,
    Heard,
    Identified,
    Matched,
    QuestionHeard,
    Said,
    StepTaken,
    Understood,
)
from ivr.domain.model import (
    Contact,
    ContactSnapshot,
    Customer,
    Language,
    RouteDecision,
    Scenario,
    StepRecord,
)
from ivr.domain.ports import ContactLog, FlowObserver, ScreenPop

log = logging.getLogger(__name__)

# Contact writers under way: the loop keeps only weak references to tasks, and a
# writer must outlive a call task (and its observer) cancelled before the save is done.
_WRITERS: set[asyncio.Task[None]] = set()


class ContactJournal:
    """Folds flow events into the contact record and fans them out to observers."""

    def __init__(self, contact: Contact, observers: Sequence[FlowObserver] = ()) -> None:
        self._contact = contact
        self._observers = tuple(observers)
        self.customer: Customer | None = None
        self.identified_by: str | None = None
        self.authenticated = False
        self.decision: RouteDecision | None = None

    @property
    def contact(self) -> Contact:
        """The live record (read it; change it only through ``emit``)."""
        return self._contact

    @property
    def language(self) -> Language:
        return self._contact.language

    def set_language(self, language: Language) -> None:
        """The caller's language before identification (e.g. the number's country)."""
        self._contact.language = language

    def snapshot(self) -> ContactSnapshot:
        return self._contact.snapshot()

    async def emit(self, event: FlowEvent) -> None:
        """Fold ``event`` into the record, then notify every observer."""
        self._fold(event)
        if not self._observers:
            return
        snapshot = self._contact.snapshot()
        for observer in self._observers:
            try:
                await observer.on_event(event, snapshot)
            except Exception:
                log.exception("flow observer %s failed on %s", type(observer).__name__,
                              type(event).__name__)

    def _fold(self, event: FlowEvent) -> None:  # noqa: C901 - one flat arm per event type
        c = self._contact
        match event:
            case StepTaken(step=step, at=at, detail=detail):
                c.steps.append(StepRecord(step=step, at=at, detail=dict(detail)))
            case Said(text=text):
                c.transcript.append(f"ivr: {text}")
            case Heard(text=text):
                c.transcript.append(f"caller: {text}")
            case Identified(customer=customer, method=method):
                self.customer, self.identified_by = customer, method
                c.customer_id = customer.id
                c.language = customer.language
            case Authenticated():
                self.authenticated = True
            case QuestionHeard(text=text):
                if c.question is None:
                    c.question = text
            case Matched():
                pass  # telemetry only: the accepted intent comes with Understood
            case Understood(intent=intent, confidence=confidence):
                c.intent, c.confidence = intent, round(confidence, 3)
            case Decided(decision=decision):
                self.decision = decision
                c.scenario, c.skill = decision.scenario, decision.skill
            case ActionTaken(action=action):
                c.action = action
            case Concluded(outcome=outcome):
                c.outcome = outcome
            case HandedOff(decision=decision):
                self.decision = decision
                c.scenario, c.skill = Scenario.AGENT, decision.skill
            case Ended(outcome=outcome, at=at, dropped_at=dropped_at):
                c.outcome, c.ended_at = outcome, at
                if dropped_at is not None:
                    c.dropped_at = dropped_at
            case _:
                assert_never(event)


class ContactLogObserver:
    """Saves the whole record after every step and at the end (upsert), write-behind.

    A step's save must not hold up the caller's reply: it was on the turn's critical
    path three times between the heard question and the answer (question, intent and
    scenario steps), ~20 ms each on an idle SQLite and hundreds under load. So a step
    only hands its snapshot to this call's writer task and returns; the flow asks for
    its next prompt while the save runs. Per contact the writes stay in order (one
    writer, each save the newest snapshot: an upsert of the whole record, so a
    snapshot superseded while the previous save ran is skipped, never written after a
    newer one). ``Ended`` waits for the writer and saves the final record, so a call's
    end (a hang-up right after the reply included) leaves the record complete; the
    writer is its own task, so a cancelled call task does not cancel a save under way.
    A failing save goes where it went before: ``SpoolingContactLog`` spools it on a
    database error; anything else is logged and the next snapshot still written.
    """

    def __init__(self, contacts: ContactLog) -> None:
        self._contacts = contacts
        self._pending: ContactSnapshot | None = None  # newest snapshot not yet saved
        self._writer: asyncio.Task[None] | None = None
        self.failed = 0  # saves that raised (logged; tests)

    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        if isinstance(event, StepTaken):
            self._pending = contact
            self._start_writer()
        elif isinstance(event, Ended):
            self._pending = contact
            await self.flush()

    async def flush(self) -> None:
        """Until every snapshot handed over so far is saved (or failed and logged)."""
        while self._pending is not None or (self._writer is not None
                                            and not self._writer.done()):
            writer = self._start_writer()
            # Shielded: a call task cancelled at its end still gets its record written.
            await asyncio.shield(writer)

    def _start_writer(self) -> asyncio.Task[None]:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="contact-save")
            _WRITERS.add(self._writer)
            self._writer.add_done_callback(_WRITERS.discard)
        return self._writer

    async def _drain(self) -> None:
        while self._pending is not None:
            snapshot, self._pending = self._pending, None
            try:
                await self._contacts.save(snapshot)
            except Exception:
                self.failed += 1
                log.exception("saving contact %s failed", snapshot.id)


class ScreenPopObserver:
    """Publishes the agent-facing context the moment a caller is handed off."""

    def __init__(self, screenpop: ScreenPop) -> None:
        self._screenpop = screenpop

    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        if isinstance(event, HandedOff):
            await self._screenpop.publish(contact.id, dict(event.screen))


class FlowMetrics:
    """Counts calls by outcome, drop-off step and intent (a node-wide observer)."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.dropped_at: Counter[str] = Counter()
        self.intents: Counter[str] = Counter()
        self.handoffs: Counter[str] = Counter()

    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        if isinstance(event, Ended):
            self.outcomes[event.outcome.value] += 1
            if event.dropped_at is not None:
                self.dropped_at[event.dropped_at.value] += 1
            if contact.intent:
                self.intents[contact.intent] += 1
        elif isinstance(event, HandedOff):
            self.handoffs[event.decision.skill] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"outcomes": dict(self.outcomes), "dropped_at": dict(self.dropped_at),
                "intents": dict(self.intents), "handoffs": dict(self.handoffs)}
