"""The flow's declared transition table: pinned, complete, and enforced at run time."""

from __future__ import annotations

from collections import deque

import pytest

from ivr.domain.flow import (
    HANDLERS,
    START,
    TRANSITIONS,
    CallFlow,
    ContactLogObserver,
    FlowConfig,
    FlowPorts,
    IllegalTransition,
    State,
    check_transition,
)
from ivr.domain.flow.context import Call
from ivr.domain.flow.states import ENTRIES
from ivr.domain.model import Caller, Outcome, Presentation, Step
from ivr.domain.routing import SimpleRouter
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import (
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

# The table as agreed; a change to the flow's shape must change this test too.
PINNED = {
    "identify": {"greet"},
    "greet": {"proactive", "ask", "online"},
    "key_in": {"decide"},
    "proactive": {"ask", "understand", "decide", "close"},
    "ask": {"ask", "understand", "keypad", "online"},
    "understand": {"decide", "confirm", "ask", "keypad"},
    "confirm": {"decide", "understand", "ask", "keypad"},
    "keypad": {"decide", "handoff"},
    "decide": {"key_in", "authenticate", "act"},
    "authenticate": {"act", "handoff"},
    "act": {"feedback", "close", "handoff"},
    "feedback": {"handoff", "close"},
    "handoff": {"act", "close", "done"},
    "close": {"done"},
    "done": set(),
    "queue_exit": {"act", "handoff", "close"},
    "survey": {"done"},
    "online": {"handoff", "ask"},
}


def test_table_is_pinned() -> None:
    """The declared transitions are exactly the agreed ones."""
    got = {s.value: {t.value for t in targets} for s, targets in TRANSITIONS.items()}
    assert got == PINNED


def test_every_state_has_a_handler_and_only_done_has_none() -> None:
    """Each non-final state is handled; DONE is the only sink."""
    assert set(HANDLERS) == set(State) - {State.DONE}
    assert [s for s, t in TRANSITIONS.items() if not t] == [State.DONE]


def test_every_state_is_reachable_from_the_start() -> None:
    """A breadth-first walk from the entries (IDENTIFY, QUEUE_EXIT) reaches every state."""
    assert START in ENTRIES
    seen, todo = set(ENTRIES), deque(ENTRIES)
    while todo:
        for nxt in TRANSITIONS[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(State)


def test_every_state_can_end() -> None:
    """From every state some path leads to DONE (no trap a caller could be stuck in)."""
    can_end = {State.DONE}
    changed = True
    while changed:
        changed = False
        for state, targets in TRANSITIONS.items():
            if state not in can_end and targets & can_end:
                can_end.add(state)
                changed = True
    assert can_end == set(State)


def test_check_transition_refuses_undeclared_moves() -> None:
    """Allowed moves pass through, undeclared ones raise."""
    assert check_transition(State.ASK, State.UNDERSTAND) is State.UNDERSTAND
    with pytest.raises(IllegalTransition):
        check_transition(State.IDENTIFY, State.HANDOFF)


async def test_a_handler_returning_an_undeclared_state_fails_safe_to_a_human() -> None:
    """A handler bug (GREET -> ACT) is caught by the table: the caller reaches a person."""

    async def broken_greet(call: Call) -> State:
        return State.ACT

    contacts = InMemoryContactLog()
    channel = TextCallChannel(caller_info=Caller(raw="+447700900123", number="+447700900123",
                                                 presentation=Presentation.VALID), script=[])
    ports = FlowPorts(directory=FakeDirectory(), knowledge=FakeKnowledge(),
                      catalogue=FakeCatalogue(), matcher=KeywordMatcher(),
                      router=SimpleRouter(FakeAgentPool()), messenger=FakeMessenger(),
                      links=FakeLinks(), clock=FixedClock())
    flow = CallFlow(channel, ports=ports, config=FlowConfig(),
                    observers=(ContactLogObserver(contacts),),
                    handlers={**HANDLERS, State.GREET: broken_greet})
    result = await flow.run()
    assert result.outcome is Outcome.ERROR_TO_AGENT
    assert channel.handed_off is not None and channel.handed_off.queue == "general"
    last = result.contact.steps[-1]
    assert last.step is Step.HANDOFF and last.detail["error"] == "IllegalTransition"
    assert contacts.records[result.contact.id].outcome is Outcome.ERROR_TO_AGENT
