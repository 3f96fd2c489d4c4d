"""Property: whatever a caller does, every call ends, with its contact record, within bounds.

Hypothesis draws caller behaviour (speech that means something or nothing, silence,
keys incl. floods and characters no keypad sends, hang-ups at any moment) and runs the
real CallFlow over the scripted text channel with the in-memory fakes. With every port
healthy, a call that ends as ``error_to_agent`` means the flow itself raised: a bug.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.domain.flow import CallFlow, ContactLogObserver, FlowConfig, FlowPorts, understand
from ivr.domain.flow.context import Call
from ivr.domain.flow.core import HANDLERS, Handler
from ivr.domain.flow.states import State
from ivr.domain.model import Caller, Customer, Order, Outcome, Presentation
from ivr.domain.routing import SimpleRouter
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

ANNA = Customer(id=1, customer_no="1001", name="Anna de Vries", language="nl", region="Utrecht",
                postcode="3511AB", tier="gold", numbers=("+31612345678",), has_pin=True)


@dataclass
class Rig:
    """The fakes of one call's world (as in tests/domain/test_flow.py)."""

    directory: FakeDirectory = field(default_factory=lambda: FakeDirectory(
        customers=[ANNA, BOB],
        order_book={1: [Order("A12345", "in_transit", date(2026, 11, 26), "PostNL")],
                    2: [Order("B777", "processing", date(2026, 11, 28))]},
        pins={1: "4321"}))
    knowledge: FakeKnowledge = field(default_factory=lambda: FakeKnowledge(answers={
        ("opening_hours", "en"): "We are open weekdays from 8 to 18. {today_status}",
        ("opening_hours", "nl"): "Wij zijn op werkdagen open van 8 tot 18 uur. {today_status}",
    }))
    matcher: KeywordMatcher = field(default_factory=KeywordMatcher)
    agents: FakeAgentPool = field(default_factory=FakeAgentPool)
    contacts: InMemoryContactLog = field(default_factory=InMemoryContactLog)
    messenger: FakeMessenger = field(default_factory=FakeMessenger)


# Phrases the keyword matcher understands, so draws reach the deeper states
# (confirm, authenticate, act, feedback, hand-off), not only "not understood".
# (the keywords of ivr.testing.fakes.KeywordMatcher, and replies to yes/no questions)
MEANINGFUL = ["where is my order", "waar is mijn bestelling", "opening hours", "outage",
              "a question about my invoice", "my bill", "change my address", "the app",
              "my father died", "he passed away", "agent", "speak to a person", "yes",
              "no", "ja", "nee", "other", "1001", "4321"]
KEYS = "0123456789*#ABCD"
ODD_KEYS = KEYS + "xé !\x00\n;:/\\'\"-+"

speech = st.one_of(st.sampled_from(MEANINGFUL), st.text(max_size=40),
                   st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", max_size=30))
keys = st.one_of(
    st.text(alphabet=KEYS, max_size=12),
    st.text(alphabet=ODD_KEYS, max_size=12),
    st.sampled_from(["1001", "4321", "1001#", "4321#", "0", "#", "*"]),
    st.integers(min_value=20, max_value=400).map(lambda n: "1" * n),  # a DTMF flood
).map(lambda d: f"dtmf:{d}")
action = st.one_of(speech.filter(lambda s: s.strip().lower() not in {
    "hangup", "silence", "hangup-during-prompt"} and not s.lower().startswith("dtmf:")),
    keys, st.just("silence"), st.just("hangup"), st.just("hangup-during-prompt"))

KNOWN_EN = Caller(raw="+447700900123", number="+447700900123", presentation=Presentation.VALID)
KNOWN_NL = Caller(raw="+31612345678", number="+31612345678", presentation=Presentation.VALID)
UNKNOWN = Caller(raw="+441632960000", number="+441632960000", presentation=Presentation.VALID)
WITHHELD = Caller(raw="anonymous", number=None, presentation=Presentation.WITHHELD)
callers = st.sampled_from([KNOWN_EN, KNOWN_NL, UNKNOWN, WITHHELD])

# A call may take many turns, but never unboundedly many: every loop in the flow
# has a try limit. 60 IVR prompts is far beyond any path the tests know (~15).
MAX_IVR_TURNS = 60
TERMINAL = set(Outcome) - {Outcome.ERROR_TO_AGENT}


class _FailureLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def run_call(script: list[str], who: Caller,
             handlers: Mapping[State, Handler] = HANDLERS) -> None:
    rig = Rig()
    ch = TextCallChannel(caller_info=who, script=list(script))
    ports = FlowPorts(
        directory=rig.directory, knowledge=rig.knowledge, catalogue=FakeCatalogue(),
        matcher=rig.matcher, router=SimpleRouter(rig.agents), messenger=rig.messenger,
        links=FakeLinks(), clock=FixedClock())
    flow = CallFlow(ch, ports=ports, config=FlowConfig(), handlers=handlers,
                    observers=(ContactLogObserver(rig.contacts),))
    failures = _FailureLog()
    root = logging.getLogger("ivr")
    root.addHandler(failures)
    try:
        result = asyncio.run(flow.run())
    finally:
        root.removeHandler(failures)
    errors = [r.getMessage() + (f": {r.exc_info[1]!r}" if r.exc_info else "")
              for r in failures.records]
    assert not errors, errors
    assert result.outcome in TERMINAL, (result.outcome, ch.turns)
    assert flow.state is State.DONE or ch.hung_up, flow.state
    ivr_turns = sum(1 for t in ch.turns if t.speaker == "ivr")
    assert ivr_turns <= MAX_IVR_TURNS, ivr_turns
    # The call is over on the line: hung up or handed to a queue.
    assert ch.hung_up or ch.handed_off is not None
    # ... and on record: the contact log holds the finished contact.
    saved = rig.contacts.records.get(result.contact.id)
    assert saved is not None and saved.ended_at is not None
    assert saved.outcome is result.outcome


SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(script=st.lists(action, max_size=25), who=callers)
def test_every_call_ends_with_a_contact_record(script: list[str], who: Caller) -> None:
    """Random caller behaviour: every call reaches an end, on record, with no flow failure."""
    run_call(script, who)


async def _keypad_choking_on_odd_keys(call: Call) -> State:
    # The planted bug: a keypad table lookup for the key the caller pressed at the
    # open question, without a guard for keys that are not digits (A-D, *, #, odd).
    digit = call.dialogue.keypad_digit
    if digit is not None and digit not in "0123456789":
        raise KeyError(digit)
    return await understand.keypad(call)


def test_a_planted_unhandled_key_bug_is_found() -> None:
    """With a keypad handler that raises on a non-digit key, the property fails."""
    planted = {**HANDLERS, State.KEYPAD: _keypad_choking_on_odd_keys}

    @SETTINGS
    @given(script=st.lists(action, max_size=25), who=callers)
    def prop(script: list[str], who: Caller) -> None:
        run_call(script, who, planted)

    with pytest.raises((AssertionError, BaseExceptionGroup)):
        prop()
