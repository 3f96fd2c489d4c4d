"""The Router on the live state of the centre (the static plan when that state is stale).

Scenario, priority for value tiers and sensitive topics, escalations, the PIN
rule and the fail-safe queue are the static router's (one policy); what this
adds is *where an agent hand-off queues*: ``smart_routing.decide`` over the
latest snapshot of app_queue's state (skills with proficiency, availability
before escalation, overflow, geography, load split, repeat callers, position
and expected wait). If the AMI state is older than ``stale_limit_s`` the static
plan is used and the reason says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from ivr.domain.centre import CentreSnapshot
from ivr.domain.model import RouteDecision, RouteRequest
from ivr.domain.ports import AgentPool
from ivr.domain.routing import SimpleRouter
from ivr.domain.smart_routing import (
    PreviousAgent,
    RouteAction,
    RoutingOutcome,
    RoutingPolicy,
    RoutingRequest,
    SplitState,
    decide,
)

log = logging.getLogger(__name__)


class CentreView(Protocol):
    """Where the router reads live state (the AMI feed)."""

    @property
    def stale_s(self) -> float:
        """Seconds the state has not followed Asterisk (0 when in sync)."""

    def snapshot(self) -> CentreSnapshot:
        """The latest published snapshot."""


class AgentHistory(Protocol):
    """Who answered this customer before (repeat-caller routing)."""

    async def last_agent_for(self, customer_id: int, intent: str | None, since: datetime
                             ) -> tuple[str, datetime, str | None] | None:
        """(agent interface, when, intent) of the customer's latest answered contact."""


class SmartRouter(SimpleRouter):
    """``SimpleRouter`` whose agent hand-offs are placed on live app_queue state."""

    def __init__(self, agents: AgentPool, *, centre: CentreView, policy: RoutingPolicy,
                 history: AgentHistory | None = None,
                 region_of: Callable[[str], str | None] = lambda number: None,
                 stale_limit_s: float = 30.0, wall: Callable[[], float] = time.time,
                 vip_tiers: tuple[str, ...] = ("gold", "platinum"),
                 overflow: Mapping[str, str] | None = None,
                 always_pin: frozenset[str] = frozenset()) -> None:
        super().__init__(agents, vip_tiers=vip_tiers, overflow=overflow, always_pin=always_pin)
        self._centre = centre
        self._policy = policy
        self._history = history
        self._region_of = region_of
        self._stale_limit_s = stale_limit_s
        self._wall = wall
        self._split = SplitState()
        self.decisions = 0

    @property
    def policy(self) -> RoutingPolicy:
        return self._policy

    def set_policy(self, policy: RoutingPolicy) -> None:
        """Replace the policy live (e.g. a new load split); SWRR state is kept."""
        self._policy = policy

    async def place(self, request: RouteRequest, decision: RouteDecision) -> RouteDecision:
        stale = self._centre.stale_s
        if stale > self._stale_limit_s:
            log.warning("centre state stale for %.0fs: static routing plan", stale)
            static = await super().place(request, decision)
            return replace(static, reason=f"{static.reason}; static plan: live state "
                                          f"stale {min(stale, 1e9):.0f}s")
        routing = await self._routing_request(request, decision)
        # decide() is pure and synchronous: no other call can interleave between reading
        # and storing the split state (one event loop per node).
        outcome = decide(routing, self._centre.snapshot(), self._policy, self._split)
        self._split = outcome.split
        self.decisions += 1
        return _apply(decision, outcome)

    async def _routing_request(self, request: RouteRequest, decision: RouteDecision
                               ) -> RoutingRequest:
        c, spec = request.customer, request.spec
        region = c.region if c is not None else (
            self._region_of(request.caller_number) if request.caller_number else None)
        previous = None
        if c is not None and self._history is not None:
            since = request.at - timedelta(days=self._policy.repeat_window_days)
            try:
                last = await self._history.last_agent_for(c.id, None, since)
            except Exception:  # history is a nicety; routing must not fail on it
                log.exception("repeat-caller lookup failed")
                last = None
            if last is not None:
                agent, at, intent = last
                previous = PreviousAgent(
                    agent=agent, same_intent=intent == (spec.name if spec else None),
                    days_ago=(request.at - at).total_seconds() / 86400)
        return RoutingRequest(
            skill=decision.skill, now=self._wall(), tier=c.tier if c else "standard",
            sensitive=bool(spec and spec.sensitive), region=region,
            language=request.language, previous_agent=previous)


def _apply(decision: RouteDecision, out: RoutingOutcome) -> RouteDecision:
    """The routing outcome as the hand-off's RouteDecision (reasons appended)."""
    reason = "; ".join((decision.reason, *out.reasons))
    alternatives = tuple(str(a) for a in out.alternatives)
    if out.action is RouteAction.ALTERNATIVE or out.queue is None or out.skill is None:
        return replace(decision, reason=reason, unstaffed=True, alternatives=alternatives,
                       priority=out.priority)
    return replace(
        decision, skill=out.skill, queue=out.queue, priority=out.priority, reason=reason,
        position=out.position, expected_wait_s=out.expected_wait_s,
        preferred_agent=_ring_first(out),
        side=str(out.side) if out.side is not None else None, alternatives=alternatives)


def _ring_first(out: RoutingOutcome) -> str | None:
    """The agent the dialplan rings before the queue, if any.

    A repeat caller's previous agent (when ready); else a ready agent in the caller's
    region, but only with nobody waiting ahead: ringing someone outside the queue
    must never let a caller overtake those already waiting. Otherwise app_queue
    picks (the dialplan also checks the phone is still free before ringing).
    """
    if out.repeat_interface is not None:
        return out.repeat_interface
    if out.local_interface is not None and out.position == 1:
        return out.local_interface
    return None
