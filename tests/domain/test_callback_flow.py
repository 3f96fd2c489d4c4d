"""Callbacks in the call flow (fakes): asked for, nobody available, closed, left the
queue; picked by key or voice; booked with the whole contact; confirmed by SMS with
the manage link; a slot taken meanwhile or Twilio down never loses the caller."""

from __future__ import annotations

from dataclasses import replace

from test_flow import Rig, caller, ivr_text  # the flow tests' fakes

from ivr.domain.flow import CallFlow, ContactLogObserver, FlowConfig, FlowPorts, FlowResult
from ivr.domain.model import Outcome, RouteDecision, RouteRequest, Step
from ivr.domain.routing import SimpleRouter
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import FakeCallbackDesk, FakeCatalogue, FakeLinks, FixedClock

NUMBER = "+447700900123"  # Anna, a known customer


class LiveRouter(SimpleRouter):
    """The static router plus what the live one adds: nobody staffed, an expected wait."""

    def __init__(self, rig: Rig, *, unstaffed: bool = False,
                 wait_s: float | None = None) -> None:
        super().__init__(rig.agents)
        self.live = {"unstaffed": unstaffed, "expected_wait_s": wait_s}

    async def route(self, request: RouteRequest) -> RouteDecision:
        return replace(await super().route(request), **self.live)  # type: ignore[arg-type]

    async def escalate(self, request: RouteRequest, reason: str) -> RouteDecision:
        return replace(await super().escalate(request, reason),
                       **self.live)  # type: ignore[arg-type]


async def call(rig: Rig, desk: FakeCallbackDesk, script: list[str], *,
               resume: str | None = None, router: SimpleRouter | None = None,
               ) -> tuple[FlowResult, TextCallChannel]:
    ch = TextCallChannel(caller_info=caller(NUMBER), script=list(script))
    ports = FlowPorts(directory=rig.directory, knowledge=rig.knowledge,
                      catalogue=FakeCatalogue(), matcher=rig.matcher,
                      router=router or SimpleRouter(rig.agents), messenger=rig.messenger,
                      links=FakeLinks(), clock=FixedClock(), callbacks=desk)
    previous = await rig.contacts.get(resume) if resume else None
    flow = CallFlow(ch, ports=ports, config=FlowConfig(), resume=previous,
                    observers=(ContactLogObserver(rig.contacts),))
    return await flow.run(), ch


async def test_asked_for_a_callback_picks_the_second_slot_by_key() -> None:
    """'call me back' -> three slots at once -> key 2 -> booked with the whole contact,
    SMS with the manage link, the caller hears the time, the call ends (no queue)."""
    rig, desk = Rig(), FakeCallbackDesk()
    result, ch = await call(rig, desk, ["please call me back about my bill", "dtmf:2"])
    assert result.outcome is Outcome.CALLBACK and ch.handed_off is None
    (rec,) = desk.records
    offered = await desk.offer("general", FixedClock().now())
    assert rec.draft.slot_start == offered[1].start  # 10:00 + lead -> 10:30, 11:00, 11:30
    assert rec.draft.slot_start.strftime("%H:%M") == "11:00"
    assert rec.draft.question == "please call me back about my bill"
    assert rec.draft.intent == "callback_request" and rec.draft.customer_id is not None
    assert rec.draft.number == NUMBER and rec.draft.reason == "asked"
    assert any("call me back" in line for line in rec.draft.transcript)
    assert desk.manage_link(rec.id) in rig.messenger.sent[-1]["body"]
    said = ivr_text(ch)
    assert "press 2 for today at 12:00" in said  # Amsterdam time
    assert "call you back today at 12:00" in said and "text message" in said
    assert any(s.step is Step.ACTION and s.detail.get("action") == "callback"
               for s in result.contact.steps)


async def test_nobody_available_offer_accepted_and_slot_picked_by_voice() -> None:
    """Nobody staffed for billing -> callback offered -> 'yes' -> 'the third one'."""
    rig, desk = Rig(), FakeCallbackDesk()
    result, _ = await call(rig, desk, ["question about my invoice", "yes",
                                       "the third one please"],
                           router=LiveRouter(rig, unstaffed=True))
    assert result.outcome is Outcome.CALLBACK
    (rec,) = desk.records
    assert rec.draft.skill == "billing" and rec.draft.reason == "unstaffed"
    assert rec.draft.slot_start.strftime("%H:%M") == "11:30"


async def test_long_wait_offers_the_callback_with_the_wait() -> None:
    """An expected wait over the threshold: the offer says the wait; key 1, key 1."""
    rig, desk = Rig(), FakeCallbackDesk()
    result, ch = await call(rig, desk, ["question about my invoice", "dtmf:1", "dtmf:1"],
                            router=LiveRouter(rig, wait_s=600))
    assert result.outcome is Outcome.CALLBACK and desk.records[0].draft.reason == "long_wait"
    assert "expected waiting time is about 10 minutes" in ivr_text(ch)


async def test_short_wait_no_offer() -> None:
    """Under the threshold the caller is simply queued."""
    rig, desk = Rig(), FakeCallbackDesk()
    result, ch = await call(rig, desk, ["question about my invoice"],
                            router=LiveRouter(rig, wait_s=30))
    assert result.outcome is Outcome.AGENT and "call you back" not in ivr_text(ch)


async def test_closed_hours_offer_declined_is_the_old_goodbye() -> None:
    """Outside opening hours a callback is offered; 'no' ends as before (closed)."""
    rig, desk = Rig(), FakeCallbackDesk()
    rig.knowledge.voice_open = False
    result, ch = await call(rig, desk, ["question about my invoice", "no"])
    assert result.outcome is Outcome.CLOSED_HOURS and not desk.records
    assert "call you back at a time that suits you" in ivr_text(ch)


async def test_slot_taken_meanwhile_the_caller_still_gets_a_person() -> None:
    """Another booking fills the slot first: the caller is told and queued, not dropped."""
    rig, desk = Rig(), FakeCallbackDesk(steal=True)
    result, ch = await call(rig, desk, ["call me back", "dtmf:1"])
    assert result.outcome is Outcome.AGENT and ch.handed_off is not None
    assert not desk.records and "just been taken" in ivr_text(ch)


async def test_twilio_down_the_callback_is_still_booked() -> None:
    """The confirmation SMS fails: booked anyway, and the caller is not promised a text."""
    rig, desk = Rig(), FakeCallbackDesk()
    rig.messenger.error_code = "30003"
    result, ch = await call(rig, desk, ["call me back", "dtmf:1"])
    assert result.outcome is Outcome.CALLBACK and len(desk.records) == 1
    assert "text message" not in ivr_text(ch).split("call you back")[-1]


async def test_no_choice_twice_goes_on_to_the_queue() -> None:
    """Silence and a wrong key at the slot question: no booking, the caller is queued."""
    rig, desk = Rig(), FakeCallbackDesk()
    result, ch = await call(rig, desk, ["call me back", "silence", "dtmf:7"])
    assert result.outcome is Outcome.AGENT and not desk.records
    assert "did not catch which time" in ivr_text(ch)


async def test_no_capacity_means_no_offer() -> None:
    """A skill without configured capacity and nobody logged in: no slots, no offer."""
    rig, desk = Rig(), FakeCallbackDesk()
    desk.policy = type(desk.policy)(capacity={})
    result, ch = await call(rig, desk, ["question about my invoice"],
                            router=LiveRouter(rig, unstaffed=True))
    assert result.outcome is Outcome.NO_AGENT and "call you back" not in ivr_text(ch)


async def test_leaving_the_queue_offers_the_callback() -> None:
    """QUEUE_EXIT: the caller pressed the queue's key; 'yes' and key 1 book the first slot
    on the same contact, and the call ends (QUEUE_EXIT -> CLOSE)."""
    rig, desk = Rig(), FakeCallbackDesk()
    first, _ = await call(rig, desk, ["question about my invoice"])
    assert first.outcome is Outcome.AGENT
    result, ch = await call(rig, desk, ["dtmf:1", "dtmf:1"], resume=first.contact.id)
    assert result.outcome is Outcome.CALLBACK and result.contact.id == first.contact.id
    (rec,) = desk.records
    assert rec.draft.reason == "left_queue" and rec.draft.question == "question about my invoice"
    assert "left the queue" in ivr_text(ch)
