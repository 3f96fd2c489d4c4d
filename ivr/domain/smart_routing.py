"""Smart routing: where a caller goes, as a pure function of a centre snapshot.

``decide(request, snapshot, policy, split)`` does no I/O and keeps no state: the
smooth weighted round-robin state for load splits comes in and goes out with the
outcome. Rules, in order:

1. Skills with proficiency: the best-skilled ready agent first; lower proficiency
   when the best are busy (members' app_queue penalty = 5 - proficiency, so
   app_queue rings in that order too).
2. Availability before escalation: never a queue with no logged-in, unpaused
   agent. A staffed overflow skill is used instead (or a substitute with someone
   ready once the primary's expected wait passes the step's threshold), else
   chat / self-service / callback alternatives are returned with the reason.
3. Priority from customer tier and sensitive topics; waiting time ages it
   (:func:`aged_priority`) so normal callers are not starved.
4. Geography: among ready agents of the best proficiency, one in the caller's
   region is preferred; otherwise the best elsewhere. An agent who speaks the
   caller's language comes before either, when one is ready.
5. Own/partner load split per skill, exact per window of ``own + partner``
   decisions (nginx-style smooth weighted round-robin), never to a side with
   nobody staffed.
6. A repeat caller is offered to their previous agent first if that agent is ready.

The outcome names an app_queue queue (per side for split skills), a preferred
agent interface (a hint: app_queue still picks the member), QUEUE_PRIO, the
caller's position and expected wait, and ``reasons`` for logs and supervisors.
What happens while the caller waits (aging, widening to substitutes) is
``ivr.domain.queue_care``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ivr.domain.centre import (
    AgentState,
    AgentView,
    CentreKind,
    CentreSnapshot,
    ReadyAgent,
    SkillView,
)

_SIDES = (CentreKind.OWN, CentreKind.PARTNER)


class RouteAction(enum.StrEnum):
    QUEUE = "queue"
    ALTERNATIVE = "alternative"


class Alternative(enum.StrEnum):
    """What the IVR can offer instead of (or next to) a queue."""

    CALLBACK = "callback"
    CHAT = "chat"
    SELF_SERVICE = "self_service"


@dataclass(frozen=True, slots=True)
class OverflowStep:
    """Substitute ``skill`` once the expected wait exceeds ``after_s`` seconds."""

    skill: str
    after_s: float


@dataclass(frozen=True, slots=True)
class LoadSplit:
    """Share of a skill's calls per side, as integer weights (70/30 ...)."""

    own: int
    partner: int

    def __post_init__(self) -> None:
        if self.own < 0 or self.partner < 0 or self.own + self.partner == 0:
            raise ValueError(f"load split weights must be >= 0 and not both 0: {self}")

    def weights(self) -> tuple[int, int]:
        # Reduced (70/30 -> 7/3): the same shares with a shorter, smoother cycle.
        g = math.gcd(self.own, self.partner) or 1
        return self.own // g, self.partner // g


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Operator's rules; build once from config and share."""

    tier_priority: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(
        {"standard": 0, "gold": 5, "platinum": 8}))
    sensitive_priority: int = 10
    aging_step_s: float = 60.0  # +1 priority per minute waited ...
    aging_max_boost: int = 10  # ... up to this much
    overflow: Mapping[str, tuple[OverflowStep, ...]] = field(default_factory=dict)
    load_split: Mapping[str, LoadSplit] = field(default_factory=dict)
    repeat_window_days: float = 7.0
    repeat_same_intent_only: bool = True
    default_aht_s: float = 300.0
    offer_alternatives_after_s: float = 300.0
    alternatives: tuple[Alternative, ...] = (Alternative.CALLBACK, Alternative.CHAT,
                                             Alternative.SELF_SERVICE)
    closed_alternatives: tuple[Alternative, ...] = (Alternative.SELF_SERVICE,
                                                    Alternative.CALLBACK)
    region_scan: int = 32
    def queue_for(self, skill: str, side: CentreKind | None) -> str:
        """Split skills have one app_queue queue per side (``billing-own``)."""
        return f"{skill}-{side}" if side is not None and skill in self.load_split else skill


@dataclass(frozen=True, slots=True)
class SplitState:
    """Smooth weighted round-robin state per skill: current (own, partner) weights."""

    current: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def of(self, skill: str) -> tuple[int, int]:
        return self.current.get(skill, (0, 0))

    def with_skill(self, skill: str, value: tuple[int, int]) -> SplitState:
        return SplitState(MappingProxyType({**self.current, skill: value}))


@dataclass(frozen=True, slots=True)
class PreviousAgent:
    """Who handled this caller last (agent id or interface), for the same intent or not."""

    agent: str
    same_intent: bool
    days_ago: float


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """One caller's routing question; ``region`` may come from the number's prefix."""

    skill: str
    now: float
    tier: str = "standard"
    sensitive: bool = False
    region: str | None = None
    language: str | None = None
    previous_agent: PreviousAgent | None = None
    is_open: bool = True


@dataclass(frozen=True, slots=True)
class RoutingOutcome:
    """Where the caller goes and why; ``split`` is the SWRR state for the next decision."""

    action: RouteAction
    reasons: tuple[str, ...]
    split: SplitState
    priority: int = 0
    skill: str | None = None
    queue: str | None = None
    side: CentreKind | None = None
    preferred_interface: str | None = None  # best ready agent: a hint, app_queue picks
    repeat_interface: str | None = None  # a repeat caller's previous agent, ready: ring first
    local_interface: str | None = None  # the best ready agent is in the caller's region
    position: int | None = None
    expected_wait_s: float | None = None
    alternatives: tuple[Alternative, ...] = ()


def expected_wait_s(position: int, ready: int, busy: int, aht_s: float) -> float | None:
    """Expected wait of the caller at ``position`` (1 = next) with ``ready`` idle agents.

    Model: M/M/c conditioned on the caller's known position. The first ``ready``
    callers are answered at once; the rest wait for agents to free up. With all
    ``c = ready + busy`` agents busy and exponential handle times of mean
    ``aht_s``, agents free up as a Poisson stream of rate ``c / aht_s``, so the
    k-th caller in line waits on average ``k * aht_s / c`` (an Erlang-k wait).
    This is exact for M/M/c, needs no arrival-rate estimate, and is O(1) — Erlang C
    would instead give the average over all future callers, not this one's wait.
    None when nobody can answer (no agents at all).
    """
    if position <= ready:
        return 0.0
    servers = ready + busy
    if servers <= 0:
        return None
    return (position - ready) * aht_s / servers


def base_priority(request: RoutingRequest, policy: RoutingPolicy) -> int:
    """QUEUE_PRIO at join: customer tier plus the sensitive-topic boost."""
    prio = policy.tier_priority.get(request.tier, 0)
    return prio + (policy.sensitive_priority if request.sensitive else 0)


def aged_priority(base: int, waited_s: float, policy: RoutingPolicy) -> int:
    """Priority after ``waited_s`` in queue: +1 per ``aging_step_s``, capped.

    app_queue fixes a caller's priority at join; the node's QueueKeeper applies
    this on every tick with the AMI ``QueueChangePriorityCaller`` action, so a
    standard caller overtakes newly arrived gold callers after
    ``(gold - standard) * aging_step_s`` seconds instead of waiting for ever.
    """
    boost = int(max(0.0, waited_s) // policy.aging_step_s) if policy.aging_step_s > 0 else 0
    return base + min(boost, policy.aging_max_boost)


def swrr_pick(
    current: tuple[int, int], weights: tuple[int, int], eligible: tuple[bool, bool],
    forced: int | None = None,
) -> tuple[int, tuple[int, int]]:
    """One smooth weighted round-robin step (nginx): index picked and the new state.

    Only eligible sides take part, so a side with nobody staffed neither gets the
    call nor builds up credit for a burst later. ``forced`` (a repeat caller's
    agent) is charged like a normal pick so the shares stay honest.
    """
    cur = list(current)
    total = 0
    for i in (0, 1):
        if eligible[i]:
            cur[i] += weights[i]
            total += weights[i]
    if forced is not None:
        pick = forced
    elif eligible[0] and eligible[1]:
        pick = 0 if cur[0] >= cur[1] else 1
    else:
        pick = 0 if eligible[0] else 1
    cur[pick] -= total
    return pick, (cur[0], cur[1])


def decide(
    request: RoutingRequest, snapshot: CentreSnapshot, policy: RoutingPolicy,
    split: SplitState | None = None,
) -> RoutingOutcome:
    """Route one caller; pure, O(1) in the number of agents and waiting callers."""
    split = split or SplitState()
    reasons: list[str] = []
    if not request.is_open:
        reasons.append("closed: outside opening hours")
        return _alternative(request, policy, split, reasons, policy.closed_alternatives)
    priority = base_priority(request, policy)
    reasons.append(f"priority {priority} (tier {request.tier}"
                   f"{', sensitive' if request.sensitive else ''})")
    skill = _choose_skill(request, snapshot, policy, priority, reasons)
    if skill is None:
        return _alternative(request, policy, split, reasons, policy.alternatives)
    view = snapshot.skill(skill)
    repeat = _repeat_agent(request, snapshot, policy, skill, reasons)
    side, split = _choose_side(skill, view, policy, split, repeat, reasons)
    queue = policy.queue_for(skill, side)
    preferred: str | None = repeat.agent.interface if repeat is not None else None
    local: str | None = None
    if preferred is None:
        cand = _best_ready(view, side, request, policy, reasons)
        if cand is not None:
            preferred = cand.interface
            if request.region and cand.region == request.region:
                local = cand.interface
    qview = snapshot.queue(queue)
    position = qview.ahead_of(priority) + 1
    wait = expected_wait_s(position, view.ready(side), view.working(side),
                           view.handle_time_s(snapshot.at) or policy.default_aht_s)
    offers: tuple[Alternative, ...] = ()
    if wait is not None and wait > policy.offer_alternatives_after_s:
        offers = _allowed(request, policy.alternatives)
        reasons.append(f"expected wait {wait:.0f}s: offer {', '.join(offers)}")
    return RoutingOutcome(
        action=RouteAction.QUEUE, reasons=tuple(reasons), split=split, priority=priority,
        skill=skill, queue=queue, side=side, preferred_interface=preferred,
        repeat_interface=repeat.agent.interface if repeat is not None else None,
        local_interface=local, position=position,
        expected_wait_s=wait, alternatives=offers,
    )


def _allowed(request: RoutingRequest, options: tuple[Alternative, ...]) -> tuple[Alternative, ...]:
    # A sensitive topic needs a person: no self-service for it.
    if request.sensitive:
        kept = tuple(a for a in options if a is not Alternative.SELF_SERVICE)
        return kept or (Alternative.CALLBACK,)
    return options


def _alternative(
    request: RoutingRequest, policy: RoutingPolicy, split: SplitState, reasons: list[str],
    options: tuple[Alternative, ...],
) -> RoutingOutcome:
    offers = _allowed(request, options)
    reasons.append(f"offer {', '.join(offers)}")
    return RoutingOutcome(action=RouteAction.ALTERNATIVE, reasons=tuple(reasons), split=split,
                          priority=base_priority(request, policy), alternatives=offers)


def _skill_wait(snapshot: CentreSnapshot, view: SkillView, skill: str, priority: int,
                policy: RoutingPolicy) -> float | None:
    """Expected wait in ``skill`` over all its queues (one, or one per side)."""
    queues = {policy.queue_for(skill, s) for s in _SIDES}
    ahead = sum(snapshot.queue(q).ahead_of(priority) for q in queues)
    return expected_wait_s(ahead + 1, view.ready(), view.working(),
                           view.handle_time_s(snapshot.at) or policy.default_aht_s)


def _choose_skill(
    request: RoutingRequest, snapshot: CentreSnapshot, policy: RoutingPolicy, priority: int,
    reasons: list[str],
) -> str | None:
    primary = request.skill
    steps = policy.overflow.get(primary, ())
    view = snapshot.skill(primary)
    if view.staffed() > 0:
        if view.ready() == 0 and steps:
            wait = _skill_wait(snapshot, view, primary, priority, policy)
            for step in steps:
                sub = snapshot.skill(step.skill)
                if wait is not None and wait > step.after_s and sub.ready() > 0:
                    reasons.append(
                        f"no {primary} agent ready and expected wait {wait:.0f}s > "
                        f"{step.after_s:.0f}s: overflow to {step.skill} ({sub.ready()} ready)")
                    return step.skill
        reasons.append(f"{primary}: {view.staffed()} staffed, {view.ready()} ready")
        return primary
    for step in steps:
        if snapshot.skill(step.skill).staffed() > 0:
            reasons.append(f"nobody logged in for {primary}: overflow to {step.skill}")
            return step.skill
    reasons.append(f"nobody logged in for {primary} or its overflow skills")
    return None


def _repeat_agent(
    request: RoutingRequest, snapshot: CentreSnapshot, policy: RoutingPolicy, skill: str,
    reasons: list[str],
) -> AgentView | None:
    prev = request.previous_agent
    if prev is None:
        return None
    if prev.days_ago > policy.repeat_window_days:
        reasons.append(f"repeat caller: last contact {prev.days_ago:g} days ago, "
                       f"beyond {policy.repeat_window_days:g}")
        return None
    if policy.repeat_same_intent_only and not prev.same_intent:
        reasons.append("repeat caller: different intent, no previous-agent preference")
        return None
    view = snapshot.agent(prev.agent)
    state = view.status.state if view is not None else AgentState.LOGGED_OUT
    if view is None or state is not AgentState.READY:
        reasons.append(f"repeat caller: previous agent {prev.agent} not ready ({state})")
        return None
    if skill not in view.skills:
        reasons.append(f"repeat caller: previous agent {prev.agent} not logged in for {skill}")
        return None
    reasons.append(f"repeat caller: previous agent {prev.agent} is ready")
    return view


def _choose_side(
    skill: str, view: SkillView, policy: RoutingPolicy, split: SplitState,
    repeat: AgentView | None, reasons: list[str],
) -> tuple[CentreKind | None, SplitState]:
    forced_side = repeat.agent.kind if repeat is not None else None
    share = policy.load_split.get(skill)
    if share is None:
        return forced_side, split
    weights = share.weights()
    staffed = (view.staffed(CentreKind.OWN) > 0, view.staffed(CentreKind.PARTNER) > 0)
    eligible = (staffed[0] and weights[0] > 0, staffed[1] and weights[1] > 0)
    if not any(eligible):
        # Only a 0%-share side has people: better served there than not at all.
        eligible, weights = staffed, (1, 1)
        reasons.append(f"{skill}: only a side without a share is staffed")
    forced = _SIDES.index(forced_side) if forced_side is not None else None
    if forced is not None and not eligible[forced]:
        # The previous agent is ready, so their side is staffed; it just has no share.
        reasons.append(f"{skill}: repeat caller's agent is on the {forced_side} side, "
                       "outside the load split")
        return forced_side, split
    pick, current = swrr_pick(split.of(skill), weights, eligible, forced)
    side = _SIDES[pick]
    if not all(staffed):
        reasons.append(f"{skill}: only {side} side staffed")
    else:
        reasons.append(f"{skill}: load split {share.own}/{share.partner} -> {side}")
    return side, split.with_skill(skill, current)


def _best_ready(
    view: SkillView, side: CentreKind | None, request: RoutingRequest, policy: RoutingPolicy,
    reasons: list[str],
) -> ReadyAgent | None:
    cand = view.best_ready(side=side, region=request.region, language=request.language,
                           scan=policy.region_scan)
    if cand is None:
        reasons.append(f"no {view.skill} agent ready{f' on {side} side' if side else ''}: "
                       "queue for the next free one")
        return None
    if request.region:
        if cand.region == request.region:
            reasons.append(f"ready agent in caller's region {request.region}")
        else:
            reasons.append(f"no ready agent in region {request.region}: "
                           f"best ready in {cand.region or 'another region'}")
    if request.language and request.language not in cand.languages:
        reasons.append(f"no ready {request.language} speaker")
    return cand


__all__ = [
    "Alternative",
    "LoadSplit",
    "OverflowStep",
    "PreviousAgent",
    "RouteAction",
    "RoutingOutcome",
    "RoutingPolicy",
    "RoutingRequest",
    "SplitState",
    "aged_priority",
    "base_priority",
    "decide",
    "expected_wait_s",
    "swrr_pick",
]
