"""The call flow's states and the transitions between them, declared once.

``TRANSITIONS`` is the contract: the driver refuses any move a handler makes
that is not listed here (``IllegalTransition``), and a test walks the table to
prove every state is reachable from ``IDENTIFY`` and every state can end.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from ivr.domain.model import Step


class State(enum.Enum):
    """Where one call is in the dialogue."""

    IDENTIFY = "identify"
    GREET = "greet"
    KEY_IN = "key_in"
    PROACTIVE = "proactive"
    ASK = "ask"
    UNDERSTAND = "understand"
    CONFIRM = "confirm"
    KEYPAD = "keypad"
    DECIDE = "decide"
    AUTHENTICATE = "authenticate"
    ACT = "act"
    FEEDBACK = "feedback"
    HANDOFF = "handoff"
    CLOSE = "close"
    DONE = "done"
    # A second entry: a queued caller pressed the queue's exit key and came back
    # into the app ([ivr-queue-exit]); the contact goes on where it was.
    QUEUE_EXIT = "queue_exit"
    # A third entry: the agent hung up on a caller of a surveyed skill who stayed on
    # the line (Queue option c, [ivr-csat]); the contact gets its CSAT.
    SURVEY = "survey"
    # The caller asked online first (POST /api/contacts): found by number, or keyed the
    # code (* at the question); put through with that question, not asked again.
    ONLINE = "online"


_S = State
TRANSITIONS: Mapping[State, frozenset[State]] = MappingProxyType({
    _S.IDENTIFY: frozenset({_S.GREET}),
    # A caller recognised by number hears what the CRM knows; others are asked
    # their question first (ask first, identify when needed).
    _S.GREET: frozenset({_S.PROACTIVE, _S.ASK, _S.ONLINE}),
    # Keyed in (or skipped) for an intent that needs an account: decide again.
    _S.KEY_IN: frozenset({_S.DECIDE}),
    # After an outage announcement the caller may take SMS news and leave (CLOSE),
    # ask their question at once (UNDERSTAND) or ask for a person (DECIDE).
    _S.PROACTIVE: frozenset({_S.ASK, _S.UNDERSTAND, _S.DECIDE, _S.CLOSE}),
    # No input asks again (ASK), or gives up on speech (KEYPAD); keys go to KEYPAD.
    _S.ASK: frozenset({_S.ASK, _S.UNDERSTAND, _S.KEYPAD, _S.ONLINE}),
    _S.UNDERSTAND: frozenset({_S.DECIDE, _S.CONFIRM, _S.ASK, _S.KEYPAD}),
    # "other" with words is a rephrase: understand that instead.
    _S.CONFIRM: frozenset({_S.DECIDE, _S.UNDERSTAND, _S.ASK, _S.KEYPAD}),
    _S.KEYPAD: frozenset({_S.DECIDE, _S.HANDOFF}),
    # An unknown caller whose intent needs account data keys in their number first.
    _S.DECIDE: frozenset({_S.KEY_IN, _S.AUTHENTICATE, _S.ACT}),
    _S.AUTHENTICATE: frozenset({_S.ACT, _S.HANDOFF}),
    # S1 asks "did that help?" (FEEDBACK); S2/S3 end the call (CLOSE); S4 and
    # every failed action go to a person (HANDOFF).
    _S.ACT: frozenset({_S.FEEDBACK, _S.CLOSE, _S.HANDOFF}),
    _S.FEEDBACK: frozenset({_S.HANDOFF, _S.CLOSE}),
    # Outside opening hours, or with nobody staffed and no alternative, a hand-off
    # becomes a goodbye; an alternative (chat, self-service link) is acted on (ACT).
    _S.HANDOFF: frozenset({_S.ACT, _S.CLOSE, _S.DONE}),
    _S.CLOSE: frozenset({_S.DONE}),
    _S.DONE: frozenset(),
    # Left the queue: a callback booked (CLOSE), a link or chat (ACT), or back into
    # the queue (HANDOFF).
    _S.QUEUE_EXIT: frozenset({_S.ACT, _S.HANDOFF, _S.CLOSE}),
    # The survey is the call's last word: it only ends.
    _S.SURVEY: frozenset({_S.DONE}),
    # Put through with the online question (HANDOFF), or a wrong code: the question.
    _S.ONLINE: frozenset({_S.HANDOFF, _S.ASK}),
})

START = State.IDENTIFY
# Where a call can begin: a new call, a queued caller who left the queue by key, or a
# caller back after the agent hung up (the survey).
ENTRIES = (START, State.QUEUE_EXIT, State.SURVEY)

# Which contact step a state belongs to: a caller who hangs up in a state
# "dropped off" at that step.
STEP_OF: Mapping[State, Step] = MappingProxyType({
    _S.IDENTIFY: Step.IDENTIFICATION,
    _S.GREET: Step.GREETING,
    _S.KEY_IN: Step.IDENTIFICATION,
    _S.PROACTIVE: Step.PROACTIVE,
    _S.ASK: Step.QUESTION,
    _S.UNDERSTAND: Step.INTENT,
    _S.CONFIRM: Step.CONFIRM,
    _S.KEYPAD: Step.KEYPAD,
    _S.DECIDE: Step.SCENARIO,
    _S.AUTHENTICATE: Step.IDENTIFICATION,
    _S.ACT: Step.ACTION,
    _S.FEEDBACK: Step.FEEDBACK,
    _S.HANDOFF: Step.HANDOFF,
    _S.CLOSE: Step.CLOSE,
    _S.DONE: Step.CLOSE,
    _S.QUEUE_EXIT: Step.HANDOFF,
    _S.SURVEY: Step.FEEDBACK,
    _S.ONLINE: Step.INTENT,
})


class IllegalTransition(RuntimeError):
    """A handler returned a state the table does not allow (a programming error)."""

    def __init__(self, source: State, target: State) -> None:
        super().__init__(f"illegal transition {source.value} -> {target.value}")
        self.source, self.target = source, target


def check_transition(source: State, target: State) -> State:
    """Return ``target`` if the table allows ``source -> target``, else raise."""
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(source, target)
    return target
