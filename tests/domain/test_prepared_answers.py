"""Answers prepared while the caller speaks: the opening hours and a known caller's
order are looked up (and, on an audio channel, synthesised) after identification, so
the reply needs no lookup once the intent is understood; the work ends with the call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pytest

from ivr.domain.flow import CallFlow, FlowConfig, FlowPorts
from ivr.domain.flow.prepare import PREPARE_FRESH_S, catalogue_prompts
from ivr.domain.model import (
    Caller,
    Language,
    OpeningStatus,
    Order,
    Outcome,
    Presentation,
    Utterance,
)
from ivr.domain.ports import Prompt
from ivr.domain.routing import SimpleRouter
from ivr.domain.troubleshoot import EMPTY_BOOK
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import (
    BOB,
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


def _caller(number: str) -> Caller:
    return Caller(raw=number, number=number, presentation=Presentation.VALID)


@dataclass
class WarmingChannel(TextCallChannel):
    """A text channel with a prompt cache to warm; the caller takes a moment to ask
    (real time passes while the question is spoken), and then the ``faults`` given
    take the back end down: what is said after that must have been prepared."""

    prepared: list[Prompt] = field(default_factory=list)
    down_after_question: Faults | None = None

    async def prepare(self, prompt: Prompt) -> None:
        self.prepared.append(prompt)

    async def listen(self, prompt: Prompt | None, *, timeout_s: float,
                     phrases: Sequence[str] = (),
                     detect_language: bool = False) -> Utterance | None:
        await asyncio.sleep(0.2)  # the caller speaks
        if self.down_after_question is not None and prompt is not None \
                and prompt.key == "ask_question":
            self.down_after_question.fail("knowledge")
            self.down_after_question.fail("directory")
        return await super().listen(prompt, timeout_s=timeout_s, phrases=phrases)


def _flow(ch: TextCallChannel, faults: Faults, knowledge: FakeKnowledge | None = None
          ) -> CallFlow:
    directory = FakeDirectory(customers=[BOB], order_book={
        2: [Order("B777", "processing", date(2026, 11, 28))]}, faults=faults)
    knowledge = knowledge or FakeKnowledge(answers={
        ("opening_hours", "en"): "We are open weekdays from 8 to 18. {today_status}"},
        faults=faults)
    ports = FlowPorts(directory=directory, knowledge=knowledge, catalogue=FakeCatalogue(),
                      matcher=KeywordMatcher(), router=SimpleRouter(FakeAgentPool()),
                      messenger=FakeMessenger(), links=FakeLinks(), clock=FixedClock())
    return CallFlow(ch, ports=ports, config=FlowConfig())


async def test_the_opening_hours_answer_is_ready_before_the_question_is_heard() -> None:
    """Prepared while the caller spoke: with the knowledge base down from the question
    on, the caller still hears today's opening hours (a lookup then would have sent them
    to a human), in the very words synthesised ahead."""
    faults = Faults()
    ch = WarmingChannel(caller_info=_caller("+31699999999"),
                        script=["what are your opening hours", "yes"],
                        down_after_question=faults)
    result = await _flow(ch, faults).run()
    said = [t.text for t in ch.turns if t.speaker == "ivr"]
    answer = next(s for s in said if "open weekdays" in s)
    assert [p.text for p in ch.prepared] == [answer]
    assert result.outcome is Outcome.SELF_SERVED
    assert result.contact.action == "answer:opening_hours"


async def test_a_known_callers_order_status_is_ready_before_the_question() -> None:
    faults = Faults()
    ch = WarmingChannel(caller_info=_caller("+447700900123"),
                        script=["where is my order", "yes"], down_after_question=faults)
    result = await _flow(ch, faults).run()
    said = [t.text for t in ch.turns if t.speaker == "ivr"]
    status = next(s for s in said if "7 7 7" in s)
    assert status in [p.text for p in ch.prepared]
    assert result.outcome is Outcome.SELF_SERVED


class HangingKnowledge(FakeKnowledge):
    """A knowledge base whose opening-hours lookup never returns."""

    async def opening(self, channel: str, at: datetime) -> OpeningStatus:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def answer(self, key: str, language: Language) -> str | None:
        return "We are open. {today_status}"


async def test_what_is_still_being_prepared_is_cancelled_when_the_caller_hangs_up() -> None:
    ch = TextCallChannel(caller_info=_caller("+31699999999"), script=["hangup"])
    flow = _flow(ch, Faults(), HangingKnowledge())
    task = asyncio.create_task(flow.run())
    async with asyncio.timeout(5):
        result = await task
    assert result.outcome is Outcome.ABANDONED
    assert flow._call.preparing is None  # stopped (and awaited) at the call's end
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "prepare-answers"]


@dataclass
class SlowAskingChannel(TextCallChannel):
    """A caller who takes ``asks_after_s`` to put their question, by the flow's clock:
    once the answer is prepared the clock moves on that far and the line closes
    meanwhile (what a prepared answer could have gone stale on)."""

    clock: FixedClock = field(default_factory=FixedClock)
    knowledge: FakeKnowledge = field(default_factory=FakeKnowledge)
    asks_after_s: float = 0.0
    prepared: list[Prompt] = field(default_factory=list)
    warmed: asyncio.Event = field(default_factory=asyncio.Event)

    async def prepare(self, prompt: Prompt) -> None:
        self.prepared.append(prompt)
        self.warmed.set()

    async def listen(self, prompt: Prompt | None, *, timeout_s: float,
                     phrases: Sequence[str] = (),
                     detect_language: bool = False) -> Utterance | None:
        if prompt is not None and prompt.key == "ask_question":
            async with asyncio.timeout(5):
                await self.warmed.wait()  # prepared (no sleep lines this up)
            self.clock.at += timedelta(seconds=self.asks_after_s)
            self.knowledge.voice_open = False
        return await super().listen(prompt, timeout_s=timeout_s, phrases=phrases)


@pytest.mark.parametrize(("asks_after_s", "prepared_said"), [(59.0, True), (61.0, False)])
async def test_a_prepared_answer_is_used_only_while_fresh(asks_after_s: float,
                                                          prepared_said: bool) -> None:
    """PREPARE_FRESH_S (60 s): a question put 59 s after the opening hours were prepared
    gets the prepared answer (the line's closing in between is not looked up); one put
    61 s after gets a fresh lookup, which says the line is now closed."""
    assert PREPARE_FRESH_S == 60.0
    knowledge = FakeKnowledge(answers={
        ("opening_hours", "en"): "We are open weekdays from 8 to 18. {today_status}"})
    clock = FixedClock()
    ch = SlowAskingChannel(caller_info=_caller("+31699999999"),
                           script=["what are your opening hours", "yes"], clock=clock,
                           knowledge=knowledge, asks_after_s=asks_after_s)
    directory = FakeDirectory(customers=[BOB], faults=Faults())
    ports = FlowPorts(directory=directory, knowledge=knowledge, catalogue=FakeCatalogue(),
                      matcher=KeywordMatcher(), router=SimpleRouter(FakeAgentPool()),
                      messenger=FakeMessenger(), links=FakeLinks(), clock=clock)
    result = await CallFlow(ch, ports=ports, config=FlowConfig()).run()
    said = [t.text for t in ch.turns if t.speaker == "ivr"]
    answer = next(s for s in said if "open weekdays" in s)
    [prepared] = [p.text for p in ch.prepared]
    assert "open now" in prepared  # prepared while the line was open
    assert (answer == prepared) is prepared_said, (answer, prepared)
    assert result.contact.action == "answer:opening_hours"


# The prompts a node makes ahead at start-up (prepare.catalogue_prompts) must be the very
# prompts the flow then says (same language, same words), or the first caller to need one
# misses the cache. Run through the real flow on a text channel.
AHEAD_KEYS = {"transfer", "confirm_intent", "keypad_menu", "link_sent", "chat_link_sent"}


@pytest.mark.parametrize(("script", "key"), [
    (["please call me back", "hangup"], "transfer"),  # an agent topic: the transfer
    (["about my bill", "hangup"], "confirm_intent"),  # unsure: asked back by topic
    (["I want to change my address", "hangup"], "link_sent"),  # self-service link
    (["my app crashes", "hangup"], "chat_link_sent"),  # the chat link
    (["mumble", "mumble", "mumble", "hangup"], "keypad_menu"),  # not understood
])
async def test_what_the_flow_says_was_made_ahead(script: list[str], key: str) -> None:
    ch = TextCallChannel(caller_info=_caller("+31699999999"), script=script)
    await _flow(ch, Faults()).run()
    said = [(p.key, p.language, p.text) for p in ch.said]
    ahead = {(p.key, p.language, p.text)
             for p in catalogue_prompts(FakeCatalogue(), EMPTY_BOOK, ("en", "nl"))}
    hits = [s for s in said if s[0] == key]
    assert hits, f"the flow never said {key}: {said}"
    assert all(s in ahead for s in hits if s[0] in AHEAD_KEYS)


def test_catalogue_prompts_each_once_most_used_first() -> None:
    prompts = catalogue_prompts(FakeCatalogue(), EMPTY_BOOK, ("en",))
    texts = [(p.language, p.text) for p in prompts]
    assert len(texts) == len(set(texts))
    assert prompts[0].key == "transfer"
    # The death report and "an agent" are announced in their own fixed (recorded) words.
    assert not any("report death" in p.text for p in prompts if p.key == "transfer")
