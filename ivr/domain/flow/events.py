"""Typed events the call flow emits; the contact journal folds them into the record.

Features subscribe to these (``FlowObserver``) instead of editing the flow: the
contact log saves on ``StepTaken``/``Ended``, the screen-pop hub publishes on
``HandedOff``, metrics count ``Ended`` outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ivr.domain.model import Customer, IntentMatch, Outcome, RouteDecision, Step


@dataclass(frozen=True, slots=True)
class StepTaken:
    """A step of the contact happened (persisted: the contact log saves on it)."""

    step: Step
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Said:
    """The IVR said something (a transcript line)."""

    text: str
    key: str = ""


@dataclass(frozen=True, slots=True)
class Heard:
    """The caller said or keyed something (a transcript line; PINs already masked)."""

    text: str


@dataclass(frozen=True, slots=True)
class Identified:
    """The caller is a known customer (by caller ID or a keyed-in customer number)."""

    customer: Customer
    method: str  # "cli" | "customer_no"


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The caller proved who they are (PIN)."""

    method: str = "pin"


@dataclass(frozen=True, slots=True)
class QuestionHeard:
    """The caller's first question in their own words (what the agent sees)."""

    text: str


@dataclass(frozen=True, slots=True)
class Matched:
    """The intent matcher answered for the caller's words (accepted or not): turn timings
    split the time before the answer into understanding and decision on it."""

    match: IntentMatch


@dataclass(frozen=True, slots=True)
class Understood:
    """An intent was accepted (by speech, confirmation, keypad or fallback)."""

    intent: str
    confidence: float
    via: str


@dataclass(frozen=True, slots=True)
class Decided:
    """The Router decided where the caller goes (scenario, skill, queue, reasons)."""

    decision: RouteDecision


@dataclass(frozen=True, slots=True)
class ActionTaken:
    """What the IVR did for the caller, e.g. ``answer:order_status`` or ``link:x:sms``."""

    action: str


@dataclass(frozen=True, slots=True)
class Concluded:
    """The contact's outcome as it stands (may change until ``Ended``)."""

    outcome: Outcome


@dataclass(frozen=True, slots=True)
class HandedOff:
    """The caller was handed to an agent queue with this context for the screen-pop."""

    decision: RouteDecision
    screen: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Ended:
    """The flow is over for this call; ``dropped_at`` is set when the caller hung up."""

    outcome: Outcome
    at: datetime
    dropped_at: Step | None = None


FlowEvent = (StepTaken | Said | Heard | Identified | Authenticated | QuestionHeard
             | Matched | Understood | Decided | ActionTaken | Concluded | HandedOff | Ended)
