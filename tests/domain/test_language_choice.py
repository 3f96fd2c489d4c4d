"""Unknown callers choose their language on the first question (key, voice or detected;
the offer follows the question, never delays it); known customers keep their CRM
language unasked; a language no recogniser hears gets the keypad with a clear message."""

from __future__ import annotations

import pytest
from test_flow import Rig, caller, ivr_text  # the flow tests' fakes

from ivr.domain.flow.language import named_language
from ivr.domain.model import Outcome, Step

UNKNOWN = "+31201234567"
DUTCH_OFFER = "Voor Nederlands, druk 2."


def language_steps(result) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    return [s.detail for s in result.contact.steps
            if s.step is Step.GREETING and "chosen_by" in s.detail]


async def test_unknown_caller_hears_the_offer_and_presses_2_for_dutch(rig: Rig) -> None:
    """The offer follows the open question (ask first); key 2 on the first question: the
    question is asked again in Dutch and answered in Dutch."""
    result, ch = await rig.call(["dtmf:2", "openingstijden", "ja"], caller(UNKNOWN),
                                language_offer="auto")
    said = [p for p in ch.said]
    offer = next(p for p in said if p.key == "language_offer")
    assert offer.language == "nl" and offer.text == DUTCH_OFFER
    # Nothing between the greeting and the question: the offer is the question's tail.
    assert [p.key for p in said[:3]] == ["greeting", "ask_question", "language_offer"]
    assert said[1].then == (offer,)
    asks = [p for p in said if p.key.startswith("ask_question")]
    assert [p.language for p in asks] == ["en", "nl"]
    assert result.contact.language == "nl"
    assert language_steps(result) == [{"language": "nl", "chosen_by": "key"}]
    assert result.outcome is Outcome.SELF_SERVED and "Wij zijn op werkdagen" in ivr_text(ch)


async def test_saying_the_language_chooses_it(rig: Rig) -> None:
    """'Nederlands' (or 'Dutch', as an English-only recogniser may spell it) is a choice."""
    result, _ = await rig.call(["Nederlands", "openingstijden", "ja"], caller(UNKNOWN),
                                language_offer="auto")
    assert result.contact.language == "nl"
    assert language_steps(result) == [{"language": "nl", "chosen_by": "voice"}]
    assert named_language("Dutch please.") == "nl" and named_language("English") == "en"
    assert named_language("I have a question about the Dutch tax on my invoice") is None


async def test_a_question_asked_in_dutch_is_detected_and_kept(rig: Rig) -> None:
    """First question heard as Dutch (multilingual recogniser): the call goes on in Dutch with
    that question, no second ask."""
    result, ch = await rig.call(["[nl] wat zijn jullie openingstijden", "ja"], caller(UNKNOWN),
                                language_offer="auto")
    assert result.contact.language == "nl"
    assert language_steps(result) == [{"language": "nl", "chosen_by": "detected"}]
    assert [p.key for p in ch.said].count("ask_question") == 1
    assert "Wij zijn op werkdagen" in ivr_text(ch)


async def test_english_question_stays_english_and_later_turns_never_switch(rig: Rig) -> None:
    """Only the first question may switch: a later 'Dutch' answer is not a language choice."""
    result, _ = await rig.call(["opening hours", "[nl] ja"], caller(UNKNOWN),
                                language_offer="auto")
    assert result.contact.language == "en" and language_steps(result) == []
    assert result.outcome is Outcome.SELF_SERVED


async def test_known_customer_hears_no_offer_and_keeps_the_crm_language(rig: Rig) -> None:
    """A customer known by number: no offer, and key 2 is not a language choice."""
    result, ch = await rig.call(["where is my order", "yes"], caller("+447700900123"),
                                language_offer="auto")
    assert "language_offer" not in [p.key for p in ch.said]
    assert result.contact.language == "en" and language_steps(result) == []


async def test_no_offer_where_nobody_hears_the_language_or_from_a_foreign_number(
        rig: Rig) -> None:
    """auto: no Dutch recogniser on the node, no offer (naming Dutch still chooses it);
    a number from a country where Dutch is not spoken hears no offer either."""
    _, ch = await rig.call(["opening hours", "yes"], caller(UNKNOWN), language_offer="auto",
                           speech_languages=("en",))
    assert "language_offer" not in [p.key for p in ch.said]
    _, ch = await rig.call(["opening hours", "yes"], caller("+12025550143"),
                           language_offer="always")
    assert "language_offer" not in [p.key for p in ch.said]
    result, ch = await rig.call(["Dutch", "dtmf:3"], caller(UNKNOWN), language_offer="auto",
                                speech_languages=("en",))
    assert language_steps(result) == [{"language": "nl", "chosen_by": "voice"}]
    assert "keypad_only" in [p.key for p in ch.said]


async def test_offer_off_by_default_in_the_flow_config(rig: Rig) -> None:
    """FlowConfig's default is no offer (the node turns it on from IVR_LANGUAGE_OFFER)."""
    _, ch = await rig.call(["opening hours", "yes"], caller(UNKNOWN))
    assert "language_offer" not in [p.key for p in ch.said]


async def test_dutch_without_a_recogniser_gets_the_keypad_with_a_clear_message(
        rig: Rig) -> None:
    """No Dutch speech on this node: after choosing Dutch the caller is told to use the keys
    and gets the keypad menu at once (no open question they cannot be heard on)."""
    result, ch = await rig.call(["dtmf:2", "dtmf:3"], caller(UNKNOWN),
                                language_offer="always", speech_languages=("en",))
    keys = [p.key for p in ch.said]
    assert "keypad_only" in keys and keys.index("keypad_only") < keys.index("keypad_menu")
    told = next(p for p in ch.said if p.key == "keypad_only")
    assert told.language == "nl" and "toetsen" in told.text
    assert [p.language for p in ch.said if p.key.startswith("ask_question")] == ["en"]
    assert any(s.detail.get("result") == "keypad_only" for s in result.contact.steps)
    assert result.contact.intent is not None  # the keypad choice was taken


async def test_known_dutch_customer_without_dutch_speech_goes_to_the_keypad(rig: Rig) -> None:
    """Anna (Dutch in the CRM) on a node that only hears English: keypad, told in Dutch."""
    result, ch = await rig.call(["dtmf:3"], caller("+31612345678"), language_offer="auto",
                                speech_languages=("en",))
    keys = [p.key for p in ch.said]
    assert "language_offer" not in keys and "ask_question" not in keys
    assert "keypad_only" in keys and result.contact.language == "nl"


@pytest.fixture
def rig() -> Rig:
    return Rig()
