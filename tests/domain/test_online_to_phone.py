"""Online, then by phone (fakes): a question asked on the web waits for the caller, found
by their number or by the code after *; they are put through with it, not asked."""

from __future__ import annotations

from datetime import UTC, datetime

from test_flow import Rig, caller  # the flow tests' fakes

from ivr.domain.flow import CallFlow, ContactLogObserver, FlowConfig, FlowPorts, ScreenPopObserver
from ivr.domain.model import OnlineContact, Outcome
from ivr.domain.routing import SimpleRouter
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import FakeCatalogue, FakeLinks, FakeOnlineContacts, FixedClock

NUMBER = "+447700900123"
TEXT = "Why is my invoice for November 40 euro higher?"
WEB = OnlineContact("web1", "123456", 2, "invoice_question", TEXT,
                    datetime(2030, 1, 1, tzinfo=UTC))


async def call(rig: Rig, online: FakeOnlineContacts, script: list[str],
               number: str = NUMBER) -> tuple[object, TextCallChannel]:
    ch = TextCallChannel(caller_info=caller(number), script=script)
    ports = FlowPorts(directory=rig.directory, knowledge=rig.knowledge,
                      catalogue=FakeCatalogue(), matcher=rig.matcher,
                      router=SimpleRouter(rig.agents), messenger=rig.messenger,
                      links=FakeLinks(), clock=FixedClock(), online=online)
    flow = CallFlow(ch, ports=ports, config=FlowConfig(), observers=(
        ContactLogObserver(rig.contacts), ScreenPopObserver(rig.screenpop)))
    return await flow.run(), ch


def ivr_said(ch: TextCallChannel) -> str:
    return "\n".join(t.text for t in ch.turns if t.speaker == "ivr")


async def test_the_customers_number_skips_the_question_and_pops_the_online_text() -> None:
    rig, online = Rig(), FakeOnlineContacts()
    online.waiting[NUMBER] = WEB
    result, ch = await call(rig, online, [])
    said = ivr_said(ch)
    assert "You were asking about" in said and "putting you through" in said
    assert "How can I help" not in said  # the open question was never asked
    assert ch.handed_off is not None and ch.handed_off.intent == "invoice_question"
    assert result.outcome is Outcome.AGENT  # type: ignore[attr-defined]
    pop = rig.screenpop.published[ch.session_id]
    assert pop["question"] == TEXT
    assert online.claimed == [("web1", ch.session_id)]


async def test_star_and_the_code_put_a_caller_from_another_number_through() -> None:
    rig, online = Rig(), FakeOnlineContacts()
    online.codes["123456"] = WEB
    _, ch = await call(rig, online, ["dtmf:*", "dtmf:123456"], number="+31201112222")
    assert ch.handed_off is not None and ch.handed_off.intent == "invoice_question"
    assert rig.screenpop.published[ch.session_id]["question"] == TEXT


async def test_a_wrong_code_is_said_retried_then_the_normal_question() -> None:
    rig, online = Rig(), FakeOnlineContacts()
    result, ch = await call(rig, online, ["dtmf:*", "dtmf:999999", "dtmf:111111",
                                          "I have a question about my invoice"])
    said = ivr_said(ch)
    assert said.count("not valid or has expired") == 2
    assert "Please try again" in said
    assert said.count("how can I help you") == 2  # the question again, the normal flow
    assert result.contact.intent == "invoice_question"  # type: ignore[attr-defined]
    assert online.claimed == []
