"""Outage announcements in the call flow: unknown callers located by their number hear
them, callers elsewhere do not, and SMS news is offered instead of waiting."""

from __future__ import annotations

from datetime import UTC, datetime

from ivr.domain.flow import CallFlow, FlowConfig, FlowPorts, FlowResult
from ivr.domain.model import Caller, Outage, Outcome, Presentation, Step
from ivr.domain.routing import SimpleRouter
from ivr.telephony.callerid import parse_caller
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import (
    FakeAgentPool,
    FakeCatalogue,
    FakeDirectory,
    FakeKnowledge,
    FakeLinks,
    FakeMessenger,
    Faults,
    FixedClock,
    KeywordMatcher,
)

UTRECHT = Outage(3, "Utrecht", {"en": "No internet around Utrecht since 9 o'clock.",
                                "nl": "Geen internet rond Utrecht sinds 9 uur."},
                 datetime(2026, 11, 24, tzinfo=UTC), None)


class Line:
    def __init__(self) -> None:
        f = Faults()
        self.knowledge = FakeKnowledge(outage_list=[UTRECHT], faults=f)
        self.messenger = FakeMessenger(faults=f)
        self.ports = FlowPorts(
            directory=FakeDirectory(customers=[], faults=f), knowledge=self.knowledge,
            catalogue=FakeCatalogue(), matcher=KeywordMatcher(faults=f),
            router=SimpleRouter(FakeAgentPool(faults=f)), messenger=self.messenger,
            links=FakeLinks(), clock=FixedClock())

    async def call(self, script: list[str], who: Caller) -> tuple[FlowResult, str]:
        ch = TextCallChannel(caller_info=who, script=list(script))
        result = await CallFlow(ch, ports=self.ports, config=FlowConfig()).run()
        return result, "\n".join(t.text for t in ch.turns if t.speaker == "ivr")


async def test_unknown_caller_from_the_region_hears_it_and_takes_sms_news() -> None:
    """A Utrecht landline the CRM does not know: announcement, 'yes' -> subscribed + SMS."""
    line = Line()
    who = parse_caller("0302345678")  # national format: read in NL, area code 030
    assert who.region == "Utrecht"
    result, text = await line.call(["yes", "silence"], who)
    assert "No internet around Utrecht" in text and "instead of waiting" in text
    assert line.knowledge.subscribed == {(3, "+31302345678"): "sms"}
    assert line.messenger.sent[0]["to"] == "+31302345678"
    assert "No internet around Utrecht" in line.messenger.sent[0]["body"]
    assert result.outcome is Outcome.LINK_SENT
    assert result.contact.action == "outage_updates:3:sms"


async def test_caller_from_another_region_hears_nothing_about_it() -> None:
    """An Amsterdam number is asked the usual question; no outage, no offer."""
    line = Line()
    _, text = await line.call(["hangup"], parse_caller("+31201234567"))
    assert "Utrecht" not in text and "instead of waiting" not in text
    assert "how can I help" in text


async def test_caller_may_ask_their_question_instead() -> None:
    """Answering the offer with a question goes straight on to understanding it."""
    line = Line()
    result, _ = await line.call(["where is my order", "hangup"], parse_caller("0302345678"))
    assert result.contact.question == "where is my order"
    assert result.contact.intent == "order_status"
    assert line.knowledge.subscribed == {}


async def test_agent_from_the_offer_reaches_a_person() -> None:
    """'0' at the offer: the caller still reaches a human."""
    line = Line()
    result, _ = await line.call(["dtmf:0"], parse_caller("0302345678"))
    assert result.outcome is Outcome.AGENT


async def test_sms_failure_keeps_the_caller_in_the_dialogue() -> None:
    """Twilio refuses the number: the caller is told and asked their question as usual."""
    line = Line()
    line.messenger.error_code = "21211"
    result, text = await line.call(["yes", "hangup"], parse_caller("0302345678"))
    assert "how can I help" in text
    assert any(s.step is Step.ACTION and s.detail.get("action") == "outage_updates_failed"
               for s in result.contact.steps)


async def test_withheld_number_hears_no_outage() -> None:
    """No number: no region, no announcement (and nothing to text)."""
    line = Line()
    withheld = Caller(raw="anonymous", number=None, presentation=Presentation.WITHHELD)
    _, text = await line.call(["hangup"], withheld)
    assert "Utrecht" not in text
