"""The prompts a node makes ahead at start-up (ivr.domain.flow.prepare.catalogue_prompts)
are the very prompts the flow then says: same language, same words, so the first caller
to need one gets a cache hit. Run through the real flow on a text channel."""

from __future__ import annotations

import pytest

from ivr.domain.flow import CallFlow, FlowConfig, FlowPorts
from ivr.domain.flow.prepare import catalogue_prompts
from ivr.domain.model import Caller, Presentation
from ivr.domain.routing import SimpleRouter
from ivr.domain.troubleshoot import EMPTY_BOOK
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import (
    FakeAgentPool,
    FakeCatalogue,
    FakeDirectory,
    FakeKnowledge,
    FakeLinks,
    FakeMessenger,
    FixedClock,
    KeywordMatcher,
)

AHEAD_KEYS = {"transfer", "confirm_intent", "keypad_menu", "link_sent", "chat_link_sent"}


async def _said(script: list[str]) -> list[tuple[str, str, str]]:
    ch = TextCallChannel(caller_info=Caller(raw="+31699999999", number="+31699999999",
                                            presentation=Presentation.VALID), script=script)
    ports = FlowPorts(directory=FakeDirectory(), knowledge=FakeKnowledge(),
                      catalogue=FakeCatalogue(), matcher=KeywordMatcher(),
                      router=SimpleRouter(FakeAgentPool()), messenger=FakeMessenger(),
                      links=FakeLinks(), clock=FixedClock())
    await CallFlow(ch, ports=ports, config=FlowConfig()).run()
    return [(p.key, p.language, p.text) for p in ch.said]


@pytest.mark.parametrize(("script", "key"), [
    (["please call me back", "hangup"], "transfer"),  # an agent topic: the transfer
    (["about my bill", "hangup"], "confirm_intent"),  # unsure: asked back by topic
    (["I want to change my address", "hangup"], "link_sent"),  # self-service link
    (["my app crashes", "hangup"], "chat_link_sent"),  # the chat link
    (["mumble", "mumble", "mumble", "hangup"], "keypad_menu"),  # not understood
])
async def test_what_the_flow_says_was_made_ahead(script: list[str], key: str) -> None:
    said = await _said(script)
    ahead = {(p.key, p.language, p.text)
             for p in catalogue_prompts(FakeCatalogue(), EMPTY_BOOK, ("en", "nl"))}
    hits = [s for s in said if s[0] == key]
    assert hits, f"the flow never said {key}: {said}"
    assert all(s in ahead for s in hits if s[0] in AHEAD_KEYS)


def test_each_prompt_once_most_used_first() -> None:
    prompts = catalogue_prompts(FakeCatalogue(), EMPTY_BOOK, ("en",))
    texts = [(p.language, p.text) for p in prompts]
    assert len(texts) == len(set(texts))
    assert prompts[0].key == "transfer"
    # The death report and "an agent" are announced in their own fixed (recorded) words.
    assert not any("report death" in p.text for p in prompts if p.key == "transfer")
