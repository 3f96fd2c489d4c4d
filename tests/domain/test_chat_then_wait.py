"""Chat, then still wait: after the S3 chat link the caller may still choose a colleague on
the phone (as after an S2 self-service link); silence keeps the chat outcome (fakes)."""

from __future__ import annotations

from test_flow import Rig, caller  # the flow tests' fakes

from ivr.domain.model import Outcome, Step


async def test_agent_after_the_chat_link_goes_to_the_queue() -> None:
    rig = Rig()
    result, ch = await rig.call(["the app crashes", "dtmf:1"], caller("+447700900123"))
    assert "live chat" in rig.messenger.sent[0]["body"]  # the link went out first
    assert "rather wait for a colleague" in "\n".join(t.text for t in ch.turns)
    assert result.outcome is Outcome.AGENT and ch.handed_off is not None
    assert any(s.step is Step.FEEDBACK and s.detail.get("reply") == "yes"
               for s in result.contact.steps)


async def test_saying_agent_works_too_and_silence_keeps_the_chat() -> None:
    rig = Rig()
    result, ch = await rig.call(["the app crashes", "agent please"], caller("+447700900123"))
    assert result.outcome is Outcome.AGENT and ch.handed_off is not None
    result, ch = await Rig().call(["the app crashes"], caller("+447700900123"))
    assert result.outcome is Outcome.CHAT and ch.handed_off is None


async def test_hanging_up_during_the_offer_keeps_the_chat_outcome() -> None:
    result, _ = await Rig().call(["the app crashes", "hangup"], caller("+447700900123"))
    assert result.outcome is Outcome.CHAT
