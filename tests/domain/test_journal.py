"""The contact journal: flow events are folded into one record, observers are isolated."""

from __future__ import annotations

from datetime import UTC, datetime

from ivr.domain.flow import ContactJournal, FlowMetrics
from ivr.domain.flow.events import (
    ActionTaken,
    Concluded,
    Decided,
    Ended,
    FlowEvent,
    HandedOff,
    Heard,
    Identified,
    QuestionHeard,
    Said,
    StepTaken,
    Understood,
)
from ivr.domain.model import (
    Contact,
    ContactChannel,
    ContactSnapshot,
    Customer,
    Outcome,
    RouteDecision,
    Scenario,
    Step,
)

AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
ANNA = Customer(id=1, customer_no="1001", name="Anna", language="nl", region="Utrecht",
                postcode="3511AB", tier="gold")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, ContactSnapshot]] = []

    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        self.seen.append((type(event).__name__, contact))


class Exploding:
    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        raise RuntimeError("observer bug")


def journal(*observers: object) -> ContactJournal:
    contact = Contact(id="s1", channel=ContactChannel.VOICE, caller="+31612345678",
                      started_at=AT, language="en")
    return ContactJournal(contact, observers)  # type: ignore[arg-type]


async def test_events_fold_into_the_record() -> None:
    """Each event type sets its part of the contact; the record is the single owner."""
    rec = Recorder()
    j = journal(rec)
    decision = RouteDecision(scenario=Scenario.AGENT, skill="billing", queue="billing")
    for event in (
        Identified(ANNA, "cli"), Said("Hallo Anna"), Heard("mijn factuur"),
        QuestionHeard("mijn factuur"), QuestionHeard("later rephrase"),
        Understood("invoice_question", 0.91234, "speech"), Decided(decision),
        StepTaken(Step.SCENARIO, AT, {"skill": "billing"}), ActionTaken("handoff:billing"),
        Concluded(Outcome.AGENT), HandedOff(decision, {"session": "s1"}),
        Ended(Outcome.AGENT, AT),
    ):
        await j.emit(event)
    c = j.snapshot()
    assert (c.customer_id, c.language) == (1, "nl")
    assert c.transcript == ("ivr: Hallo Anna", "caller: mijn factuur")
    assert c.question == "mijn factuur"  # the first question is what the agent sees
    assert (c.intent, c.confidence) == ("invoice_question", 0.912)
    assert (c.scenario, c.skill, c.action) == (Scenario.AGENT, "billing", "handoff:billing")
    assert c.outcome is Outcome.AGENT and c.ended_at == AT
    assert [s.step for s in c.steps] == [Step.SCENARIO]
    assert j.customer == ANNA and j.identified_by == "cli" and j.decision == decision
    assert len(rec.seen) == 12 and rec.seen[-1][1].outcome is Outcome.AGENT


async def test_a_failing_observer_does_not_stop_the_others() -> None:
    """An exploding observer is logged and skipped; the record and later observers go on."""
    rec = Recorder()
    j = journal(Exploding(), rec)
    await j.emit(Said("hello"))
    assert rec.seen and j.contact.transcript == ["ivr: hello"]


async def test_metrics_count_outcomes_and_drop_offs() -> None:
    """FlowMetrics counts ended calls by outcome, drop-off step and intent."""
    m = FlowMetrics()
    j = journal(m)
    await j.emit(Understood("order_status", 0.9, "speech"))
    await j.emit(Ended(Outcome.ABANDONED, AT, Step.FEEDBACK))
    assert m.as_dict()["outcomes"] == {"abandoned": 1}
    assert m.as_dict()["dropped_at"] == {"feedback": 1}
    assert m.as_dict()["intents"] == {"order_status": 1}
