"""Callbacks in time slots: which slots a caller is offered, whether a booking fits,
and what the dialer does after each attempt.

Pure functions over plain values (no I/O): the flow asks for an offer, storage
books a slot with a conditional update (never overbooked even with two nodes),
and the dialer asks ``after_attempt`` what to do next.

A slot is ``[start, start + slot_s)`` aligned to multiples of ``slot_s`` since the
epoch (so every node agrees on the grid). Its capacity is the skill's configured
capacity, or else ``per_agent`` callbacks per agent logged in for the skill now
(staffing is the best guess of who works then); never below zero.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal

Strategy = Literal["agent_first", "customer_first"]
STRATEGIES: tuple[Strategy, ...] = ("agent_first", "customer_first")
OFFERED = 3


class CallbackError(ValueError):
    """A booking or change that cannot be made (mapped to 409/404 in web)."""


class SlotInPast(CallbackError):
    """The slot has begun or is too close to begin (lead time)."""


class SlotFull(CallbackError):
    """Every place in the slot is booked."""


class UnknownCallback(CallbackError):
    """No callback with that id."""


class CallbackClosed(CallbackError):
    """Already cancelled, done or failed: nothing to change (a second cancel)."""


class CallbackStatus(enum.Enum):
    """Life cycle: booked -> dialing -> (retry -> dialing)* -> done | failed;
    booked/retry -> cancelled (caller, supervisor)."""

    BOOKED = "booked"
    DIALING = "dialing"
    RETRY = "retry"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def open(self) -> bool:
        return self in (CallbackStatus.BOOKED, CallbackStatus.DIALING, CallbackStatus.RETRY)


# What one dial attempt ended as (ARI channel states / causes, translated at the edge).
AttemptOutcome = Literal["connected", "no_answer", "busy", "unreachable", "agent_unavailable",
                         "interrupted"]


@dataclass(frozen=True, slots=True)
class SlotPolicy:
    """How callbacks are offered and dialled (from Settings)."""

    slot_s: float = 1800.0
    lead_s: float = 900.0
    capacity: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    per_agent: int = 2
    horizon_slots: int = 96
    max_attempts: int = 3
    retry_s: float = 300.0
    strategy: Mapping[str, Strategy] = field(default_factory=lambda: MappingProxyType({}))
    default_strategy: Strategy = "agent_first"

    def strategy_for(self, skill: str) -> Strategy:
        return self.strategy.get(skill, self.default_strategy)


@dataclass(frozen=True, slots=True)
class Slot:
    """One bookable window of one skill."""

    skill: str
    start: datetime
    end: datetime
    free: int


def parse_skill_map(items: Sequence[str], what: str) -> dict[str, str]:
    """``("billing=2", "tech=4")`` -> ``{"billing": "2", "tech": "4"}``; clear error on junk."""
    out: dict[str, str] = {}
    for item in items:
        skill, sep, value = item.partition("=")
        if not sep or not skill.strip() or not value.strip():
            raise CallbackError(f"{what}: {item!r} is not skill=value")
        out[skill.strip()] = value.strip()
    return out


def policy_from(*, slot_s: float, lead_s: float, capacity: Sequence[str], per_agent: int,
                max_attempts: int, retry_s: float, strategy: Sequence[str],
                default_strategy: str) -> SlotPolicy:
    """A policy from the settings' raw values (``skill=N`` / ``skill=strategy`` lists)."""
    if slot_s <= 0:
        raise CallbackError("slot length must be positive")
    caps: dict[str, int] = {}
    for skill, raw in parse_skill_map(capacity, "callback capacity").items():
        if not raw.isdigit():
            raise CallbackError(f"callback capacity: {skill}={raw!r} is not a whole number")
        caps[skill] = int(raw)
    strategies: dict[str, Strategy] = {}
    for skill, raw in parse_skill_map(strategy, "callback strategy").items():
        strategies[skill] = _strategy(raw)
    return SlotPolicy(slot_s=slot_s, lead_s=lead_s, capacity=MappingProxyType(caps),
                      per_agent=per_agent, max_attempts=max(1, max_attempts), retry_s=retry_s,
                      strategy=MappingProxyType(strategies),
                      default_strategy=_strategy(default_strategy))


def _strategy(raw: str) -> Strategy:
    for s in STRATEGIES:
        if raw == s:
            return s
    raise CallbackError(f"callback strategy {raw!r}: use {' or '.join(STRATEGIES)}")


def slot_start(at: datetime, slot_s: float) -> datetime:
    """The start of the grid slot holding ``at`` (UTC)."""
    ts = at.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(ts - ts % slot_s, UTC)


def capacity(skill: str, policy: SlotPolicy, agents_logged_in: int) -> int:
    """Places per slot: configured for the skill, else ``per_agent`` x agents logged in."""
    if skill in policy.capacity:
        return max(0, policy.capacity[skill])
    return max(0, policy.per_agent * agents_logged_in)


def _always(_: datetime) -> bool:
    return True


def candidate_starts(now: datetime, policy: SlotPolicy, count: int) -> list[datetime]:
    """The next ``count`` slot starts at least ``lead_s`` from now."""
    step = timedelta(seconds=policy.slot_s)
    first = slot_start(now + timedelta(seconds=policy.lead_s), policy.slot_s)
    if first < now + timedelta(seconds=policy.lead_s):
        first += step
    return [first + i * step for i in range(count)]


def offer(skill: str, now: datetime, policy: SlotPolicy, *, booked: Mapping[datetime, int],
          agents_logged_in: int, is_open: Callable[[datetime], bool] = _always,
          count: int = OFFERED) -> tuple[Slot, ...]:
    """Up to ``count`` next slots of ``skill`` with a free place, earliest first.

    ``booked`` counts open bookings per slot start; ``is_open`` says whether the
    centre is open at a slot's start (closed slots are skipped, not offered).
    """
    cap = capacity(skill, policy, agents_logged_in)
    if cap <= 0:
        return ()
    out: list[Slot] = []
    step = timedelta(seconds=policy.slot_s)
    for start in candidate_starts(now, policy, policy.horizon_slots):
        free = cap - booked.get(start, 0)
        if free > 0 and is_open(start):
            out.append(Slot(skill, start, start + step, free))
            if len(out) == count:
                break
    return tuple(out)


def check_booking(slot_start_at: datetime, now: datetime, policy: SlotPolicy, *,
                  booked: int, cap: int) -> None:
    """Raise ``SlotInPast`` / ``SlotFull`` unless a place in this slot can be booked now.

    The lead time applies to what is offered, not here: a caller who took a few seconds
    to choose keeps an offered slot as long as it has not begun."""
    if slot_start_at != slot_start(slot_start_at, policy.slot_s):
        raise CallbackError(f"{slot_start_at.isoformat()} is not the start of a slot")
    if slot_start_at <= now:
        raise SlotInPast(f"the slot at {slot_start_at.isoformat()} has begun")
    if booked >= cap:
        raise SlotFull(f"the slot at {slot_start_at.isoformat()} is full ({cap} places)")


@dataclass(frozen=True, slots=True)
class NextStep:
    """What the dialer does after an attempt: finish, retry at ``retry_at``, or give up."""

    status: CallbackStatus
    retry_at: datetime | None = None
    send_sms: bool = False


def after_attempt(outcome: AttemptOutcome, *, attempts: int, now: datetime, slot_end: datetime,
                  policy: SlotPolicy) -> NextStep:
    """Retry within the slot while attempts remain; else failed, with an SMS to the customer.

    ``agent_unavailable`` (no ready agent for agent-first) never reached the customer,
    so it retries soon without using up the customer's attempts budget beyond the slot.
    """
    if outcome == "connected":
        return NextStep(CallbackStatus.DONE)
    retry_in = timedelta(seconds=policy.retry_s)
    if outcome == "agent_unavailable":
        retry_in = timedelta(seconds=min(policy.retry_s, 30.0))
    retry_at = now + retry_in
    if retry_at < slot_end and (attempts < policy.max_attempts or outcome == "agent_unavailable"):
        return NextStep(CallbackStatus.RETRY, retry_at=retry_at)
    return NextStep(CallbackStatus.FAILED, send_sms=True)


def choose_slot(reply_digit: str | None, reply_text: str, offered: Sequence[Slot],
                ordinals: Mapping[str, int]) -> Slot | None:
    """The slot a caller picked: key 1-3, or a spoken ordinal ("the second", "twee")."""
    if reply_digit and reply_digit[0].isdigit():
        n = int(reply_digit[0])
        return offered[n - 1] if 1 <= n <= len(offered) else None
    words = reply_text.lower().replace(",", " ").replace(".", " ").split()
    for w in words:
        pick = ordinals.get(w)
        if pick is not None and 1 <= pick <= len(offered):
            return offered[pick - 1]
    return None


@dataclass(frozen=True, slots=True)
class CallbackDraft:
    """What the flow books: the whole contact context and the chosen slot."""

    contact_id: str
    number: str
    language: str
    skill: str
    slot_start: datetime
    slot_end: datetime
    question: str = ""
    intent: str | None = None
    customer_id: int | None = None
    customer_name: str = ""
    transcript: tuple[str, ...] = ()
    priority: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One dial attempt as recorded on the callback (written before the originate)."""

    n: int
    started_at: datetime
    node: str
    channel_id: str
    outcome: str | None = None
    ended_at: datetime | None = None
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """A stored callback: its context, slot, state and every attempt so far."""

    id: str
    draft: CallbackDraft
    status: CallbackStatus
    attempts: tuple[Attempt, ...]
    next_attempt_at: datetime
    created_at: datetime
    lease_owner: str | None = None
    lease_until: datetime | None = None
    outcome: str | None = None
    cancel_count: int = 0

    @property
    def attempt_count(self) -> int:
        return len(self.attempts)

    def screen_context(self) -> dict[str, object]:
        """The agent's screen-pop for the callback: the caller's original question first."""
        d = self.draft
        return {"session": d.contact_id, "callback": self.id, "question": d.question,
                "intent": d.intent, "skill": d.skill, "scenario": "callback",
                "transcript": list(d.transcript), "reason": d.reason or "callback",
                "slot_start": d.slot_start.isoformat(), "priority": d.priority,
                "customer": None if d.customer_id is None else
                {"id": d.customer_id, "name": d.customer_name}}
