"""CallFlow transitions, driven through fakes and the scripted text channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from ivr.domain.flow import (
    CallFlow,
    ContactLogObserver,
    FlowConfig,
    FlowPorts,
    FlowResult,
    ScreenPopObserver,
)
from ivr.domain.model import (
    Caller,
    ChatStatus,
    Customer,
    IntentMatch,
    IntentScore,
    Order,
    Outage,
    Outcome,
    Presentation,
    Scenario,
    Step,
)
from ivr.domain.routing import SimpleRouter
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import (
    BOB,
    FakeAgentPool,
    FakeCatalogue,
    FakeDirectory,
    FakeKnowledge,
    FakeLinks,
    FakeMessenger,
    FakeScreenPop,
    Faults,
    FixedClock,
    InMemoryContactLog,
    KeywordMatcher,
)

ANNA = Customer(id=1, customer_no="1001", name="Anna de Vries", language="nl", region="Utrecht",
                postcode="3511AB", tier="gold", numbers=("+31612345678",), has_pin=True)


def caller(number: str | None, raw: str | None = None) -> Caller:
    if number is None:
        return Caller(raw=raw or "anonymous", number=None, presentation=Presentation.WITHHELD)
    return Caller(raw=raw or number, number=number, presentation=Presentation.VALID)


@dataclass
class Rig:
    faults: Faults = field(default_factory=Faults)  # one switch for every fake below
    directory: FakeDirectory = field(init=False)
    knowledge: FakeKnowledge = field(init=False)
    matcher: KeywordMatcher = field(init=False)
    agents: FakeAgentPool = field(init=False)
    contacts: InMemoryContactLog = field(init=False)
    messenger: FakeMessenger = field(init=False)
    screenpop: FakeScreenPop = field(default_factory=FakeScreenPop)

    def __post_init__(self) -> None:
        f = self.faults
        self.directory = FakeDirectory(
            customers=[ANNA, BOB],
            order_book={
                1: [Order("A12345", "in_transit", date(2026, 11, 26), "PostNL")],
                2: [Order("B777", "processing", date(2026, 11, 28))],
            },
            pins={1: "4321"},
            faults=f,
        )
        self.knowledge = FakeKnowledge(answers={
            ("opening_hours", "en"): "We are open weekdays from 8 to 18. {today_status}",
            ("opening_hours", "nl"): "Wij zijn op werkdagen open van 8 tot 18 uur. {today_status}",
        }, faults=f)
        self.matcher = KeywordMatcher(faults=f)
        self.agents = FakeAgentPool(faults=f)
        self.contacts = InMemoryContactLog(faults=f)
        self.messenger = FakeMessenger(faults=f)

    async def call(self, script: list[str], who: Caller, **cfg: Any) -> tuple[
            FlowResult, TextCallChannel]:
        ch = TextCallChannel(caller_info=who, script=list(script))
        ports = FlowPorts(
            directory=self.directory, knowledge=self.knowledge, catalogue=FakeCatalogue(),
            matcher=self.matcher, router=SimpleRouter(self.agents), messenger=self.messenger,
            links=FakeLinks(), clock=FixedClock(),
        )
        flow = CallFlow(ch, ports=ports, config=FlowConfig(**cfg), observers=(
            ContactLogObserver(self.contacts), ScreenPopObserver(self.screenpop)))
        return await flow.run(), ch


@pytest.fixture
def rig() -> Rig:
    return Rig()


def steps(result: FlowResult) -> list[Step]:
    return [s.step for s in result.contact.steps]


def ivr_text(ch: TextCallChannel) -> str:
    return "\n".join(t.text for t in ch.turns if t.speaker == "ivr")


async def test_known_caller_order_status_answers_with_crm_data(rig: Rig) -> None:
    """S1: a caller known by CLI hears their real order number, status and ETA."""
    result, ch = await rig.call(["where is my order", "yes"], caller("+447700900123"))
    assert result.outcome is Outcome.SELF_SERVED
    assert result.contact.scenario is Scenario.ANSWER
    text = ivr_text(ch)
    assert "B 7 7 7" in text and "being prepared" in text and "Saturday 28 November" in text
    assert result.contact.customer_id == 2
    assert ch.hung_up and ch.handed_off is None


async def test_proactive_message_for_order_in_transit_in_customer_language(rig: Rig) -> None:
    """Seed 004: the CRM's open order is announced before the question, in Dutch."""
    result, ch = await rig.call(["dtmf:1", "ja"], caller("+31612345678"))
    text = ivr_text(ch)
    assert "Goedendag Anna" in text
    assert "A 1 2 3 4 5 onderweg" in text and "donderdag 26 november" in text
    assert Step.PROACTIVE in steps(result)


async def test_outage_in_callers_region_is_announced(rig: Rig) -> None:
    """An active outage in the caller's region is told proactively."""
    rig.knowledge.outage_list = [Outage(7, "Leeds", {"en": "Internet outage in Leeds."},
                                        datetime(2026, 11, 24, tzinfo=UTC), None)]
    _, ch = await rig.call(["hangup"], caller("+447700900123"))
    assert "Internet outage in Leeds." in ivr_text(ch)


async def test_answer_not_helpful_goes_to_agent_with_context(rig: Rig) -> None:
    """'No' after an automated answer hands off with question and transcript attached."""
    result, ch = await rig.call(["where is my order", "no"], caller("+447700900123"))
    assert result.outcome is Outcome.AGENT
    assert ch.handed_off is not None
    assert ch.handed_off.skill == "logistics" and ch.handed_off.question == "where is my order"
    assert any("where is my order" in t for t in ch.handed_off.transcript)
    assert rig.screenpop.published[result.contact.id]["customer"]["customer_no"] == "1002"


async def test_agent_closed_hours_tells_when_open(rig: Rig) -> None:
    """Outside opening hours the caller hears when agents are back; no dead queue."""
    rig.knowledge.voice_open = False
    result, ch = await rig.call(["invoice please"], caller("+447700900123"))
    assert result.outcome is Outcome.CLOSED_HOURS
    assert ch.handed_off is None and "available again" in ivr_text(ch)


async def test_self_service_link_sent_and_caller_leaves(rig: Rig) -> None:
    """S2: link by SMS to the caller's number, caller hangs up satisfied."""
    result, _ch = await rig.call(["I moved, new address", "no thanks"], caller("+447700900123"))
    assert result.outcome is Outcome.LINK_SENT
    assert rig.messenger.sent[0]["to"] == "+447700900123"
    assert "address_change" in rig.messenger.sent[0]["body"]
    assert result.contact.action == "link:address_change:sms"


async def test_self_service_then_caller_wants_agent(rig: Rig) -> None:
    """S2: caller may still wait for an agent after the link."""
    result, ch = await rig.call(["change my address", "dtmf:1"], caller("+447700900123"))
    assert result.outcome is Outcome.AGENT and ch.handed_off is not None
    assert len(rig.messenger.sent) == 1


async def test_link_permanent_failure_offers_agent(rig: Rig) -> None:
    """A permanently failed SMS (e.g. 21211) sends the caller to a human instead."""
    rig.messenger.error_code = "21211"
    result, ch = await rig.call(["change my address"], caller("+447700900123"))
    assert result.outcome is Outcome.AGENT
    assert "could not send" in ivr_text(ch)


async def test_withheld_number_cannot_get_link_goes_to_agent(rig: Rig) -> None:
    """No number to text: S2 falls back to an agent rather than failing."""
    result, ch = await rig.call(["change my address"], caller(None))
    assert result.outcome is Outcome.AGENT and ch.handed_off is not None


async def test_chat_available_sends_chat_link(rig: Rig) -> None:
    """S3: chat open with capacity -> chat link."""
    result, _ = await rig.call(["the app crashes"], caller("+447700900123"))
    assert result.outcome is Outcome.CHAT
    assert "live chat" in rig.messenger.sent[0]["body"]


async def test_chat_full_falls_back_to_agent(rig: Rig) -> None:
    """S3 without chat capacity falls back to S4."""
    rig.knowledge.chat = ChatStatus(True, 3, 3)
    result, ch = await rig.call(["the app crashes"], caller("+447700900123"))
    assert result.outcome is Outcome.AGENT and ch.handed_off is not None
    assert ch.handed_off.skill == "tech" and not rig.messenger.sent


async def test_sensitive_topic_goes_straight_to_human_even_when_closed(rig: Rig) -> None:
    """Reporting a death is never automated, never confirmed, never turned away."""
    rig.knowledge.voice_open = False
    result, ch = await rig.call(["my husband died"], caller("+31612345678"))
    assert ch.handed_off is not None and ch.handed_off.skill == "bereavement"
    assert ch.handed_off.priority >= 10
    assert "Gecondoleerd" in ivr_text(ch)
    assert Step.CONFIRM not in steps(result)


async def test_vip_customer_gets_priority(rig: Rig) -> None:
    """Gold tier adds queue priority."""
    _, ch = await rig.call(["question about my invoice"], caller("+31612345678"))
    assert ch.handed_off is not None and ch.handed_off.priority == 5


async def test_overflow_to_general_when_skill_has_nobody(rig: Rig) -> None:
    """Nobody ready in billing: route to the substitute skill."""
    rig.agents.ready = {"billing": 0, "general": 2}
    _, ch = await rig.call(["invoice"], caller("+447700900123"))
    assert ch.handed_off is not None and ch.handed_off.skill == "general"


async def test_low_confidence_is_confirmed_yes(rig: Rig) -> None:
    """Below the confirm threshold the flow asks 'is it about ...?'."""
    result, ch = await rig.call(["my bill", "yes"], caller("+447700900123"))
    assert "Is your question about invoice question" in ivr_text(ch)
    assert ch.handed_off is not None and ch.handed_off.intent == "invoice_question"
    assert Step.CONFIRM in steps(result)


async def test_low_confidence_rejected_then_rephrased(rig: Rig) -> None:
    """'No' to the confirmation asks again; the new answer is understood."""
    result, _ch = await rig.call(["my bill", "no", "where is my order", "yes"],
                                caller("+447700900123"))
    assert result.contact.intent == "order_status"
    assert result.outcome is Outcome.SELF_SERVED


async def test_misheard_words_with_a_confident_match_are_confirmed_not_routed(rig: Rig) -> None:
    """Whisper unsure of its words (0.2), the matcher sure of them (0.9): the caller is
    asked "is it about ...?" instead of being routed on a mishearing; "no" asks again."""
    result, ch = await rig.call(["asr=0.2:i have a question about my invoice", "no",
                                 "where is my order"], caller("+447700900123"))
    assert "Is your question about invoice question" in ivr_text(ch)
    confirms = [s.detail for s in result.contact.steps if s.step is Step.CONFIRM]
    assert confirms == [{"intent": "invoice_question", "reply": "no"}]
    assert result.contact.intent == "order_status"


async def test_well_heard_confident_match_is_routed_without_asking(rig: Rig) -> None:
    """The same words heard clearly (0.8) are routed at once: no needless question."""
    result, ch = await rig.call(["asr=0.8:i have a question about my invoice"],
                                caller("+447700900123"))
    assert Step.CONFIRM not in steps(result)
    assert ch.handed_off is not None and ch.handed_off.intent == "invoice_question"


async def test_not_understood_reprompts_then_keypad(rig: Rig) -> None:
    """Out of scope twice -> keypad menu; key 1 picks order status."""
    result, ch = await rig.call(["blah blah", "weather tomorrow", "dtmf:1", "yes"],
                                caller("+447700900123"))
    assert "didn't catch that" in ivr_text(ch)
    assert "press 1" in ivr_text(ch)
    assert result.contact.intent == "order_status"
    assert Step.KEYPAD in steps(result)


async def test_rejected_request_is_never_routed_even_with_a_confident_best(rig: Rig) -> None:
    """A match flagged out of scope (e.g. by the matcher's nearest-neighbour veto)
    is never routed on its best guess, however confident: the caller is asked
    again, then offered the keypad menu."""

    class RejectingMatcher:
        async def match(self, text: str, language: str) -> IntentMatch:
            return IntentMatch(ranked=(IntentScore("invoice_question", 0.95),),
                               out_of_scope=True)

    rig.matcher = RejectingMatcher()  # type: ignore[assignment]
    result, ch = await rig.call(["my gas bill is too high", "my energy bill please",
                                 "dtmf:1", "yes"], caller("+447700900123"))
    assert "didn't catch that" in ivr_text(ch)
    assert "press 1" in ivr_text(ch)
    intent_steps = [s.detail for s in result.contact.steps if s.step is Step.INTENT]
    assert [d.get("result") for d in intent_steps[:2]] == ["not_understood"] * 2
    assert all(d.get("intent") != "invoice_question" for d in intent_steps)
    assert result.contact.intent == "order_status"


async def test_a_rejected_guess_outside_the_catalogue_is_asked_again(rig: Rig) -> None:
    """A rejected match is re-asked whatever intent it names, even one the catalogue
    lacks (a model trained on more intents than the line serves): the caller is asked
    again, not sent to the fail-safe."""

    class StrayMatcher:
        async def match(self, text: str, language: str) -> IntentMatch:
            if "order" in text:
                return IntentMatch(ranked=(IntentScore("order_status", 0.95),),
                                   out_of_scope=False)
            return IntentMatch(ranked=(IntentScore("book_flight", 0.91),), out_of_scope=True)

    rig.matcher = StrayMatcher()  # type: ignore[assignment]
    result, ch = await rig.call(["book me a flight", "where is my order"],
                                caller("+447700900123"))
    assert "didn't catch that" in ivr_text(ch)
    intent_steps = [s.detail for s in result.contact.steps if s.step is Step.INTENT]
    assert intent_steps[0].get("result") == "not_understood"
    assert intent_steps[0].get("best") == "book_flight"
    assert result.contact.intent == "order_status"


async def test_busy_matcher_offers_the_keypad_at_once(rig: Rig) -> None:
    """An overloaded matcher (queue full or too slow) gives the keypad menu straight
    away: no "say that again" that would only queue more work; the call goes on."""

    class BusyMatcher:
        async def match(self, text: str, language: str) -> IntentMatch:
            return IntentMatch(ranked=(), out_of_scope=True, unavailable=True)

    rig.matcher = BusyMatcher()  # type: ignore[assignment]
    result, ch = await rig.call(["where is my order", "dtmf:1", "yes"], caller("+447700900123"))
    assert "didn't catch that" not in ivr_text(ch)
    assert "press 1" in ivr_text(ch)
    assert result.contact.intent == "order_status"
    intent_steps = [s for s in result.contact.steps if s.step is Step.INTENT]
    assert intent_steps[0].detail.get("result") == "matcher_busy"


async def test_keypad_failure_goes_to_agent(rig: Rig) -> None:
    """Nothing works (silence everywhere) -> a human, never a dropped call."""
    result, ch = await rig.call([], caller("+447700900123"))
    assert result.outcome is Outcome.AGENT
    assert ch.handed_off is not None and ch.handed_off.skill == "general"


async def test_dtmf_flood_at_keypad_is_harmless(rig: Rig) -> None:
    """A flood of keys is cut to one digit and does not crash the flow."""
    result, _ch = await rig.call(["silence", "silence", "dtmf:" + "5" * 500, "no"],
                                caller("+447700900123"))
    assert result.contact.intent == "address_change"


async def test_unknown_number_can_key_in_customer_number(rig: Rig) -> None:
    """Unknown CLI: asked first, then the keyed-in customer number identifies; PIN protects."""
    result, ch = await rig.call(["where is my order", "dtmf:1001#", "dtmf:4321", "ja"],
                                caller("+31201234567"))
    assert result.contact.customer_id == 1
    assert "A 1 2 3 4 5" in ivr_text(ch)
    auth = [s.detail for s in result.contact.steps if s.detail.get("method") == "pin"]
    assert auth == [{"method": "pin", "result": "ok"}]


async def test_wrong_pin_three_times_goes_to_agent(rig: Rig) -> None:
    """Failed PIN never discloses data; the caller reaches a human."""
    result, ch = await rig.call(["where is my order", "dtmf:1001", "dtmf:0000", "dtmf:1111",
                                 "dtmf:2222"], caller("+31201234567"))
    assert "A 1 2 3 4 5" not in ivr_text(ch)
    assert result.outcome is Outcome.AGENT


async def test_wrong_pins_over_several_calls_lock_the_customer(rig: Rig) -> None:
    """Three wrong PINs per call, two calls: the third call is not asked for a PIN at
    all (even the right one); a person takes it, with the reason on the hand-off."""
    wrong = ["where is my order", "dtmf:1001", "dtmf:0000", "dtmf:1111", "dtmf:2222"]
    for _ in range(2):
        result, _ch = await rig.call(wrong, caller("+31201234567"))
        assert result.outcome is Outcome.AGENT
    result, ch = await rig.call(["where is my order", "dtmf:1001", "dtmf:4321"],
                                caller("+31201234567"))
    assert "A 1 2 3 4 5" not in ivr_text(ch) and "pincode" not in ivr_text(ch).lower()
    assert result.outcome is Outcome.AGENT
    assert ch.handed_off is not None and "pin locked" in ch.handed_off.reason
    auth = [s.detail for s in result.contact.steps if s.detail.get("method") == "pin"]
    assert auth == [{"method": "pin", "result": "locked", "attempt": 1}]


async def test_a_right_pin_clears_earlier_wrong_ones(rig: Rig) -> None:
    """Wrong PINs before a right one do not add up towards the lock."""
    rig.directory.pin_max_failures = 3
    for _ in range(3):
        result, _ch = await rig.call(["where is my order", "dtmf:1001", "dtmf:0000",
                                      "dtmf:4321", "ja"], caller("+31201234567"))
        assert result.outcome is Outcome.SELF_SERVED


async def test_untrusted_caller_id_identifies_nobody(rig: Rig) -> None:
    """A customer's number from an untrusted source: no name, no orders; the caller
    keys in customer number and PIN like an unknown caller."""
    spoofed = Caller(raw="+31612345678", number="+31612345678",
                     presentation=Presentation.VALID, cli_trusted=False)
    result, ch = await rig.call(["where is my order", "dtmf:1001#", "dtmf:0000",
                                 "dtmf:1111", "dtmf:2222"], spoofed)
    text = ivr_text(ch)
    assert "Anna" not in text and "A 1 2 3 4 5" not in text
    assert result.contact.steps[0].detail == {"method": "cli", "result": "untrusted"}
    assert result.outcome is Outcome.AGENT
    _, ch2 = await rig.call(["hangup"], caller("+31612345678"))
    assert "Anna" in ivr_text(ch2)  # the same number from the trunk: known


async def test_unknown_customer_number_retries_then_continues_anonymous(rig: Rig) -> None:
    """Two wrong customer numbers after an invoice question: an agent, unidentified."""
    result, ch = await rig.call(["question about my invoice", "dtmf:999", "dtmf:998"],
                                caller(None))
    assert result.contact.customer_id is None
    assert ivr_text(ch).count("could not find that customer number") == 2
    assert result.outcome is Outcome.AGENT
    assert ch.handed_off is not None and ch.handed_off.skill == "billing"


async def test_unknown_caller_is_asked_first_and_not_identified_for_a_general_question(
        rig: Rig) -> None:
    """Ask first: opening hours from an unknown number need no keypad step at all."""
    result, ch = await rig.call(["opening hours", "yes"], caller("+31201234567"))
    assert result.outcome is Outcome.SELF_SERVED
    assert "open weekdays" in ivr_text(ch)
    assert "customer number" not in ivr_text(ch)
    assert not [s for s in result.contact.steps if s.detail.get("method") == "customer_no"]


async def test_unidentified_order_question_goes_to_agent(rig: Rig) -> None:
    """Order status needs identification; without it, an agent helps."""
    result, ch = await rig.call(["where is my order", "dtmf:#"], caller(None))
    assert result.outcome is Outcome.AGENT
    assert ch.handed_off is not None and ch.handed_off.skill == "logistics"


async def test_malformed_number_is_handled(rig: Rig) -> None:
    """A malformed CLI is recorded and treated as unknown."""
    who = Caller(raw="12ab", number=None, presentation=Presentation.MALFORMED)
    result, _ = await rig.call(["hangup"], who)
    first = result.contact.steps[0]
    assert first.step is Step.IDENTIFICATION and first.detail["result"] == "malformed"


async def test_hangup_records_drop_off_step(rig: Rig) -> None:
    """A caller hanging up at the question is recorded as abandoned at 'question'."""
    result, _ = await rig.call(["hangup"], caller("+447700900123"))
    assert result.outcome is Outcome.ABANDONED
    assert result.contact.dropped_at is Step.QUESTION
    assert rig.contacts.records[result.contact.id].dropped_at is Step.QUESTION


async def test_hangup_during_prompt(rig: Rig) -> None:
    """Hang-up while a prompt plays: no error, drop-off at greeting."""
    result, _ = await rig.call(["hangup-during-prompt"], caller("+447700900123"))
    assert result.outcome is Outcome.ABANDONED and result.contact.dropped_at is Step.GREETING


async def test_database_error_sends_caller_to_human_and_records_contact(rig: Rig) -> None:
    """DB down during identification: caller goes to a human; contact still saved."""
    rig.faults.fail("directory")
    result, ch = await rig.call(["where is my order"], caller("+447700900123"))
    assert result.outcome is Outcome.ERROR_TO_AGENT
    assert ch.handed_off is not None and ch.handed_off.queue == "general"
    saved = rig.contacts.records[result.contact.id]
    assert saved.outcome is Outcome.ERROR_TO_AGENT
    assert saved.steps[-1].detail["reason"] == "system_error"


async def test_matcher_crash_mid_call_goes_to_human(rig: Rig) -> None:
    """A failing matcher after the question still reaches a human, question attached."""
    rig.faults.fail("matcher")
    _result, ch = await rig.call(["where is my order"], caller("+447700900123"))
    assert ch.handed_off is not None and ch.handed_off.question == "where is my order"


async def test_contact_log_failure_does_not_hurt_the_call(rig: Rig) -> None:
    """A dead contact log is logged, and the caller is still served."""
    rig.faults.fail("contacts")
    result, _ch = await rig.call(["where is my order", "yes"], caller("+447700900123"))
    assert result.outcome is Outcome.SELF_SERVED


async def test_messenger_crash_goes_to_human(rig: Rig) -> None:
    """An exception from the messenger port fails safe to a human."""
    rig.faults.fail("messenger")
    result, ch = await rig.call(["change my address"], caller("+447700900123"))
    assert result.outcome is Outcome.ERROR_TO_AGENT and ch.handed_off is not None


async def test_directory_and_contact_log_down_together_still_reach_a_human(rig: Rig) -> None:
    """Directory and contact log down at once (one switch): the caller still gets a human."""
    rig.faults.fail("directory")
    rig.faults.fail("contacts")
    result, ch = await rig.call(["where is my order"], caller("+447700900123"))
    assert result.outcome is Outcome.ERROR_TO_AGENT
    assert ch.handed_off is not None and ch.handed_off.queue == "general"
    assert rig.contacts.records == {}


async def test_speak_to_agent_words(rig: Rig) -> None:
    """'I want a person' routes to general agents."""
    _, ch = await rig.call(["I want to speak to a person"], caller("+447700900123"))
    assert ch.handed_off is not None and ch.handed_off.skill == "general"


async def test_every_step_is_recorded_in_order(rig: Rig) -> None:
    """The contact holds identification, greeting, question, intent, scenario, action."""
    result, _ = await rig.call(["where is my order", "yes"], caller("+447700900123"))
    seen = steps(result)
    for a, b in [(Step.IDENTIFICATION, Step.GREETING), (Step.GREETING, Step.QUESTION),
                 (Step.QUESTION, Step.INTENT), (Step.INTENT, Step.SCENARIO),
                 (Step.SCENARIO, Step.ACTION), (Step.ACTION, Step.FEEDBACK),
                 (Step.FEEDBACK, Step.CLOSE)]:
        assert seen.index(a) < seen.index(b)
    assert result.contact.question == "where is my order"
    assert result.contact.ended_at is not None


async def test_keypad_entries_are_in_the_transcript_with_pin_masked(rig: Rig) -> None:
    """Keyed customer numbers show in the transcript; PINs never do."""
    result, _ = await rig.call(["where is my order", "dtmf:1001#", "dtmf:4321", "ja"],
                               caller("+31201234567"))
    text = "\n".join(result.contact.transcript)
    assert "[keys 1001]" in text and "[keys ****]" in text and "4321" not in text
