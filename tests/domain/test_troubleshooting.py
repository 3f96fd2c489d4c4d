"""Guided troubleshooting through the text channel: the internet script solves one case
and escalates another with every answer attached; Dutch too; scripts are validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.domain.flow import CallFlow, FlowConfig, FlowPorts, FlowResult
from ivr.domain.model import Customer, Outcome, Scenario
from ivr.domain.routing import SimpleRouter
from ivr.domain.troubleshoot import ScriptError, parse_scripts
from ivr.nlu.catalogue import load_catalogue
from ivr.nlu.troubleshooting import load_scripts
from ivr.telephony.callerid import parse_caller
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import (
    DEFAULT_SPECS,
    FakeAgentPool,
    FakeCatalogue,
    FakeDirectory,
    FakeKnowledge,
    FakeLinks,
    FakeMessenger,
    FixedClock,
    KeywordMatcher,
    spec,
)

GRAMMARS = Path(__file__).resolve().parents[2] / "grammars"
TECH = (spec("tech_support_internet", Scenario.ANSWER, "tech",
             answer_ref="kb:troubleshoot_internet"),
        spec("tech_support_device", Scenario.ANSWER, "tech", answer_ref="kb:troubleshoot_device"))


ANNA = Customer(id=1, customer_no="1001", name="Anna de Vries", language="nl",
                region="Utrecht", postcode="3511AB", tier="standard", numbers=("+31612345678",))


async def _call(script: list[str], number: str = "+447700900999"
                ) -> tuple[FlowResult, TextCallChannel]:
    matcher = KeywordMatcher()
    matcher.keywords.update({"internet": ("tech_support_internet", 0.95),
                             "decoder": ("tech_support_device", 0.95)})
    catalogue = FakeCatalogue(specs=DEFAULT_SPECS + TECH)
    ports = FlowPorts(
        directory=FakeDirectory(customers=[ANNA]), knowledge=FakeKnowledge(),
        catalogue=catalogue, matcher=matcher, router=SimpleRouter(FakeAgentPool()),
        messenger=FakeMessenger(), links=FakeLinks(), clock=FixedClock(),
        scripts=load_scripts(GRAMMARS, is_intent=lambda n: catalogue.spec(n) is not None))
    ch = TextCallChannel(caller_info=parse_caller(number), script=list(script))
    return await CallFlow(ch, ports=ports, config=FlowConfig()).run(), ch


def _ivr(ch: TextCallChannel) -> str:
    return "\n".join(t.text for t in ch.turns if t.speaker == "ivr")


async def test_internet_script_solves_a_red_light_by_restart() -> None:
    """Red light, cable fine, restart -> green: solved without an agent."""
    result, ch = await _call(["my internet is down", "yes", "yes", "yes", "hangup"])
    text = _ivr(ch)
    assert "Is the light on the front of your modem red?" in text
    assert "a restart often clears this up" in text
    assert result.outcome is Outcome.SELF_SERVED and ch.handed_off is None
    action = [s for s in result.contact.steps if s.detail.get("action")][-1]
    assert action.detail["action"] == "troubleshoot_solved"
    assert action.detail["answers"] == ["modem light red: yes",
                                        "fibre/coax cable firmly in and undamaged: yes",
                                        "after a modem restart, light green: yes"]


async def test_internet_script_escalates_with_every_answer() -> None:
    """Not red, every device (key 2), restart did not help: an agent, answers attached."""
    result, ch = await _call(["my internet is down", "no", "dtmf:2", "no"])
    assert ch.handed_off is not None and ch.handed_off.skill == "tech"
    reason = ch.handed_off.reason
    assert "troubleshooting internet" in reason
    for answer in ("modem light red: no", "every device, (3) one device: 2",
                   "after a modem restart, internet works everywhere: no"):
        assert answer in reason
    assert "they will see everything you just told me" in _ivr(ch)
    assert result.outcome is Outcome.AGENT
    assert any("caller: [keypad 2]" in line for line in ch.handed_off.transcript)


async def test_device_script_continues_in_the_decoder_script_in_dutch() -> None:
    """A Dutch caller keys 1 (TV decoder): the decoder script asks, in Dutch; 0 = a person."""
    result, ch = await _call(["mijn decoder doet het niet", "dtmf:1", "dtmf:0"],
                             number="+31612345678")
    text = _ivr(ch)
    assert "Over welk apparaat gaat het?" in text
    assert "Brandt er een lampje op de ontvanger" in text
    assert ch.handed_off is not None
    assert "troubleshooting tv_decoder" in ch.handed_off.reason
    assert "decoder shows a light or a message: no answer" in ch.handed_off.reason
    assert result.outcome is Outcome.AGENT


def test_shipped_scripts_match_the_real_catalogue() -> None:
    """grammars/troubleshooting.yaml loads against the en/nl catalogues (start-up check)."""
    catalogue = load_catalogue(GRAMMARS)
    book = load_scripts(GRAMMARS, is_intent=lambda n: catalogue.spec(n) is not None)
    assert {"internet", "tv_decoder", "device"} <= set(book.scripts)
    assert book.for_intent("tech_support_internet") is not None


@pytest.mark.parametrize(("raw", "problem"), [
    ({}, "top-level 'scripts'"),
    ({"scripts": {"s": {"intents": [], "start": "a", "steps": {
        "a": {"kind": "yesno", "text": {"en": "?", "nl": "?"}, "yes": "b", "no": "b"}}}}},
     "no step 'b'"),
    ({"scripts": {"s": {"intents": [], "start": "a", "steps": {
        "a": {"kind": "solved", "text": {"en": "ok"}}}}}}, "no text in nl"),
    ({"scripts": {"s": {"intents": [], "start": "a", "steps": {
        "a": {"kind": "solved", "text": {"en": "ok", "nl": "ok"}},
        "b": {"kind": "solved", "text": {"en": "ok", "nl": "ok"}}}}}}, "unreachable steps b"),
    ({"scripts": {"s": {"intents": [], "start": "a", "steps": {
        "a": {"kind": "keys", "text": {"en": "?", "nl": "?"}, "keys": {"12": "a"}}}}}},
     "single digits"),
    ({"scripts": {"s": {"intents": [], "start": "a", "steps": {
        "a": {"kind": "goto", "goto": "nowhere"}}}}}, "no script 'nowhere'"),
])
def test_broken_scripts_are_refused_with_the_reason(raw: object, problem: str) -> None:
    """Validation names the script, the step and what is wrong."""
    with pytest.raises(ScriptError, match=problem):
        parse_scripts(raw)
