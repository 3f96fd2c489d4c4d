"""A queued caller who pressed the exit key: the same contact goes on (fakes)."""

from __future__ import annotations

from test_flow import Rig, caller  # the flow tests' fakes

from ivr.domain.flow import CallFlow, ContactLogObserver, FlowConfig, FlowPorts
from ivr.domain.model import ChatStatus, Outcome, Step
from ivr.domain.routing import SimpleRouter
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import FakeCatalogue, FakeLinks, FixedClock


async def queued(rig: Rig, question: str) -> str:
    """A first call that ends in an agent hand-off; returns its session id."""
    result, ch = await rig.call([question], caller("+447700900123"))
    assert result.outcome is Outcome.AGENT and ch.handed_off is not None
    return result.contact.id


async def exit_queue(rig: Rig, session: str, script: list[str]) -> tuple[object, TextCallChannel]:
    previous = await rig.contacts.get(session)
    assert previous is not None
    ch = TextCallChannel(caller_info=caller("+447700900123"), script=script)
    ports = FlowPorts(directory=rig.directory, knowledge=rig.knowledge,
                      catalogue=FakeCatalogue(), matcher=rig.matcher,
                      router=SimpleRouter(rig.agents), messenger=rig.messenger,
                      links=FakeLinks(), clock=FixedClock())
    flow = CallFlow(ch, ports=ports, config=FlowConfig(), resume=previous,
                    observers=(ContactLogObserver(rig.contacts),))
    return await flow.run(), ch


async def test_leaving_the_queue_sends_the_chat_link_on_the_same_contact() -> None:
    rig = Rig()
    session = await queued(rig, "I want to speak to an agent")
    before = await rig.contacts.get(session)
    assert before is not None
    _, ch = await exit_queue(rig, session, [])
    after = await rig.contacts.get(session)
    assert after is not None and after.id == session
    assert after.outcome is Outcome.CHAT, [s.detail for s in after.steps]
    assert after.question == before.question and after.transcript[:len(before.transcript)] \
        == before.transcript
    assert len(after.steps) > len(before.steps)
    assert any(s.step is Step.HANDOFF and s.detail.get("result") == "left_queue"
               for s in after.steps)
    assert rig.messenger.sent and rig.messenger.sent[-1]["to"] == "+447700900123"
    assert "left the queue" in "\n".join(t.text for t in ch.turns if t.speaker == "ivr")


async def test_with_nothing_to_send_the_caller_goes_back_into_the_queue() -> None:
    rig = Rig()
    session = await queued(rig, "I want to speak to an agent")
    rig.knowledge.chat = ChatStatus(False, 0, 0)  # chat closed; this intent has no link
    _, ch = await exit_queue(rig, session, [])
    after = await rig.contacts.get(session)
    assert after is not None and after.outcome is Outcome.AGENT
    assert ch.handed_off is not None
    assert "back in the queue" in "\n".join(t.text for t in ch.turns if t.speaker == "ivr")
