"""SmartRouter in the real CallFlow: live centre state decides the hand-off, and the
caller hears the outcome (alternatives when nobody is there, position and wait)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ivr.contact_centre.router import SmartRouter
from ivr.domain.centre import (
    Agent,
    AgentKnown,
    CallerJoined,
    CentreKind,
    CentreSnapshot,
    CentreState,
    DeviceState,
    MemberAdded,
    WaitingCaller,
)
from ivr.domain.flow import CallFlow, ContactLogObserver, FlowConfig, FlowPorts, FlowResult
from ivr.domain.model import Caller, ChatStatus, Customer, Outcome, Presentation, Scenario
from ivr.domain.smart_routing import RoutingPolicy, expected_wait_s
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import (
    BOB,
    FakeAgentPool,
    FakeCatalogue,
    FakeDirectory,
    FakeKnowledge,
    FakeLinks,
    FakeMessenger,
    FixedClock,
    InMemoryContactLog,
    KeywordMatcher,
)

NOW = 1_000_000.0
GOLD = Customer(id=7, customer_no="1007", name="Gail Gold", language="en", region="Leeds",
                postcode="LS1", tier="gold", numbers=("+447700900777",))


def agent(n: int, skills: dict[str, int], region: str = "Leeds",
          kind: CentreKind = CentreKind.OWN) -> Agent:
    return Agent(id=f"a{n}", name=f"Agent {n}", interface=f"PJSIP/agent{n}", region=region,
                 kind=kind, languages=frozenset({"en"}), skills=skills)


@dataclass
class Centre:
    """A CentreView over a real CentreState (what the AMI feed would keep)."""

    state: CentreState = field(default_factory=CentreState)
    stale: float = 0.0

    @property
    def stale_s(self) -> float:
        return self.stale

    def snapshot(self) -> CentreSnapshot:
        return self.state.snapshot(NOW)

    def login(self, a: Agent, *, busy: bool = False) -> None:
        self.state.apply(AgentKnown(a))
        for skill in a.skills:
            self.state.apply(MemberAdded(a.interface, skill, NOW, device=DeviceState.INUSE
                                         if busy else DeviceState.NOT_INUSE, in_call=busy))


@dataclass
class History:
    last: tuple[str, datetime, str | None] | None = None

    async def last_agent_for(self, customer_id: int, intent: str | None, since: datetime
                             ) -> tuple[str, datetime, str | None] | None:
        return self.last


@dataclass
class Line:
    centre: Centre = field(default_factory=Centre)
    history: History = field(default_factory=History)
    knowledge: FakeKnowledge = field(default_factory=FakeKnowledge)
    contacts: InMemoryContactLog = field(default_factory=InMemoryContactLog)
    messenger: FakeMessenger = field(default_factory=FakeMessenger)

    def router(self) -> SmartRouter:
        return SmartRouter(FakeAgentPool(), centre=self.centre, policy=RoutingPolicy(),
                           history=self.history, wall=lambda: NOW)

    async def call(self, script: list[str], number: str, **kw: Any
                   ) -> tuple[FlowResult, TextCallChannel]:
        ch = TextCallChannel(caller_info=Caller(raw=number, number=number,
                                                presentation=Presentation.VALID),
                             script=list(script))
        ports = FlowPorts(directory=FakeDirectory(customers=[GOLD, BOB]),
                          knowledge=self.knowledge, catalogue=FakeCatalogue(),
                          matcher=KeywordMatcher(), router=kw.get("router") or self.router(),
                          messenger=self.messenger, links=FakeLinks(), clock=FixedClock())
        flow = CallFlow(ch, ports=ports, config=FlowConfig(),
                        observers=(ContactLogObserver(self.contacts),))
        return await flow.run(), ch


def said(ch: TextCallChannel) -> str:
    return "\n".join(t.text for t in ch.turns if t.speaker == "ivr")


async def test_nobody_logged_in_offers_chat_instead_of_a_queue() -> None:
    """Billing has nobody: the caller is told, offered the chat, and never queued."""
    line = Line()
    result, ch = await line.call(["question about my invoice"], "+447700900123")
    assert ch.handed_off is None
    assert "none of our colleagues for" in said(ch)
    assert result.outcome is Outcome.CHAT and line.messenger.sent
    assert result.decision is not None and result.decision.unstaffed


async def test_nobody_and_no_alternative_ends_honestly_without_a_queue() -> None:
    """No agent, chat closed, no self-service for the topic: sorry, try later; no queue."""
    line = Line(knowledge=FakeKnowledge(chat=ChatStatus(False, 0, 0)))
    result, ch = await line.call(["question about my invoice"], "+447700900123")
    assert ch.handed_off is None and not line.messenger.sent
    assert result.outcome is Outcome.NO_AGENT
    assert "try again later" in said(ch)


async def test_busy_agents_position_and_wait_are_announced_from_live_state() -> None:
    """Two busy billing agents, one caller ahead: position 2 and the model's wait are said."""
    line = Line()
    line.centre.login(agent(1, {"billing": 5}), busy=True)
    line.centre.login(agent(2, {"billing": 4}), busy=True)
    line.centre.state.apply(CallerJoined(WaitingCaller("u1", "billing", 0, NOW - 30)))
    result, ch = await line.call(["question about my invoice"], "+447700900123")
    d = ch.handed_off
    assert d is not None and d.queue == "billing" and d.position == 2
    want = expected_wait_s(2, 0, 2, RoutingPolicy().default_aht_s)
    assert d.expected_wait_s == want
    assert f"You are number 2 in line. The expected waiting time is about " \
           f"{round(want / 60)} minutes." in said(ch)
    assert result.outcome is Outcome.AGENT


async def test_gold_customer_is_queued_ahead_of_a_normal_one() -> None:
    """A gold caller's priority puts them before a standard caller already waiting."""
    line = Line()
    line.centre.login(agent(1, {"billing": 5}), busy=True)
    line.centre.state.apply(CallerJoined(WaitingCaller("u1", "billing", 0, NOW - 30)))
    _, ch = await line.call(["question about my invoice"], "+447700900777")
    d = ch.handed_off
    assert d is not None and d.position == 1 and d.priority > 0


async def test_repeat_caller_is_offered_to_their_previous_agent() -> None:
    """The agent who handled the same intent yesterday is ready: they are preferred."""
    line = Line()
    line.centre.login(agent(1, {"billing": 5}))
    line.centre.login(agent(2, {"billing": 3}))
    yesterday = datetime(2026, 11, 24, 10, tzinfo=UTC) - timedelta(days=1)
    line.history.last = ("PJSIP/agent2", yesterday, "invoice_question")
    _, ch = await line.call(["question about my invoice"], "+447700900123")
    d = ch.handed_off
    assert d is not None and d.preferred_agent == "PJSIP/agent2"
    assert "repeat caller" in d.reason


async def test_stale_state_falls_back_to_the_static_plan_and_says_so() -> None:
    """AMI state older than the limit: the static plan routes, and the reason says why."""
    line = Line()
    line.centre.stale = 3600
    _, ch = await line.call(["question about my invoice"], "+447700900123")
    d = ch.handed_off
    assert d is not None and d.scenario is Scenario.AGENT and "static plan" in d.reason


async def test_only_a_local_or_previous_agent_is_rung_before_the_queue() -> None:
    """A ready agent elsewhere is left to app_queue; a ready one in the caller's region is
    rung first (nobody waits ahead)."""
    line = Line()
    line.centre.login(agent(1, {"billing": 5}, region="Utrecht"))
    _, ch = await line.call(["question about my invoice"], "+447700900123")  # Bob: Leeds
    assert ch.handed_off is not None and ch.handed_off.preferred_agent is None
    line.centre.login(agent(2, {"billing": 5}, region="Leeds"))
    _, ch = await line.call(["question about my invoice"], "+447700900123")
    assert ch.handed_off is not None and ch.handed_off.preferred_agent == "PJSIP/agent2"

