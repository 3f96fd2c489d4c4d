"""A call's turn timing splits the flow's time into understanding and decision."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from test_ari_client import fake, one_call, p  # the ARI tests' fixtures
from test_ari_hung_asr import talk

from ivr.domain.flow.events import Matched
from ivr.domain.model import Contact, ContactChannel, IntentMatch
from ivr.telephony.ari.channel import AriChannelSettings, TurnTimingObserver
from ivr.testing.fake_ari import FakeAri
from ivr.testing.recognizers import ScriptedRecognizer

__all__ = ["fake"]  # a fixture, used by name


async def test_understanding_and_decision_are_timed_apart(fake: FakeAri) -> None:
    """The matcher's time (a Matched flow event, via the observer) is the turn's
    understanding; the rest of the flow until the answer plays is its decision."""
    contact = Contact(id="s1", channel=ContactChannel.VOICE, caller="+31201234567",
                      started_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC), language="en")
    async with one_call(fake, recognizer=ScriptedRecognizer(["where is my order"]),
                        settings=AriChannelSettings(lease_s=0)) as ch:
        talker = asyncio.create_task(talk(ch))
        async with asyncio.timeout(6):
            heard = await ch.listen(p("question"), timeout_s=2.0)
        talker.cancel()
        assert heard is not None and heard.text == "where is my order"
        observer = TurnTimingObserver(ch)
        match = IntentMatch(ranked=(), out_of_scope=True, processing_ms=40.0)
        await observer.on_event(Matched(match), contact.snapshot())
        await asyncio.sleep(0.15)  # the flow deciding
        await ch.say(p("answer"))
    [turn] = ch.stats.responses
    assert turn.flow_ms >= 145.0  # the 0.15 s the test waited before the answer
    assert turn.understanding_ms == 40.0
    assert abs(turn.decision_ms - (turn.flow_ms - 40.0)) < 1e-6
