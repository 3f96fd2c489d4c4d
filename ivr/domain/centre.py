"""Live state of the contact centre: agents, their status per skill, waiting callers.

Pure domain: the AMI adapter translates Asterisk events into the small inputs
below and feeds them to :meth:`CentreState.apply`; routing decisions read a
:class:`CentreSnapshot`. Asterisk's ``app_queue`` stays the ACD, this is Kanaal's
view of it.

Cost model (1,000 agents, 10,000 waiting callers): ``apply`` touches one agent
and the aggregates of the skills that agent is logged in to (O(skills per
agent)); a caller joining or leaving is O(1). ``snapshot`` rebuilds only the
views of skills and queues that changed since the previous snapshot (keeping a
skill's sorted ready list when only its counts changed) and shares the agent map
copy-on-write, so a decision never scans all agents or callers. Measured in
bench/routing.py.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

MIN_PROFICIENCY = 1
MAX_PROFICIENCY = 5


def penalty_for(proficiency: int) -> int:
    """app_queue penalty for a proficiency: 5 -> 0 (rung first), 1 -> 4."""
    return MAX_PROFICIENCY - proficiency


def proficiency_for(penalty: int) -> int:
    """Inverse of :func:`penalty_for`, clamped to 1..5 (overflow bands map to 1)."""
    return max(MIN_PROFICIENCY, min(MAX_PROFICIENCY, MAX_PROFICIENCY - penalty))


class CentreKind(enum.StrEnum):
    """Who runs the seat: our own centre or an outsourcing partner."""

    OWN = "own"
    PARTNER = "partner"


class DeviceState(enum.IntEnum):
    """Asterisk device states, numbered as in AMI ``Status`` (AST_DEVICE_*)."""

    UNKNOWN = 0
    NOT_INUSE = 1
    INUSE = 2
    BUSY = 3
    INVALID = 4
    UNAVAILABLE = 5
    RINGING = 6
    RINGINUSE = 7
    ONHOLD = 8


class AgentState(enum.StrEnum):
    """An agent's routing state, derived from membership, pause, device and calls."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    RINGING = "ringing"
    BUSY = "busy"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"  # logged in but the phone is unreachable


# Logged in, not paused, reachable: a caller queued for them will be answered.
STAFFED_STATES = frozenset({AgentState.READY, AgentState.RINGING, AgentState.BUSY,
                            AgentState.WRAP_UP})
LOGGED_IN_STATES = STAFFED_STATES | {AgentState.PAUSED, AgentState.UNAVAILABLE}
_KINDS = tuple(CentreKind)
_STATES = tuple(AgentState)


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """State plus the pause reason and when it began (same clock as the inputs)."""

    state: AgentState
    reason: str = ""
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent's profile; ``skills`` maps skill -> proficiency 1..5."""

    id: str
    name: str
    interface: str  # e.g. PJSIP/agent-1001, as in QueueAdd
    site: str = ""
    region: str = ""
    centre: str = ""
    kind: CentreKind = CentreKind.OWN
    languages: frozenset[str] = frozenset()
    skills: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for skill, level in self.skills.items():
            if not MIN_PROFICIENCY <= level <= MAX_PROFICIENCY:
                raise ValueError(f"proficiency of {skill!r} must be 1..5, got {level}")
        # Frozen in spirit too: nobody can change a profile behind the state's back.
        object.__setattr__(self, "skills", MappingProxyType(dict(self.skills)))


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    """A caller waiting in an app_queue queue (``position`` as reported on join)."""

    uniqueid: str
    queue: str
    priority: int
    joined_at: float
    position: int = 0
    caller_id: str = ""
    channel: str = ""  # app_queue's handle for QueueChangePriorityCaller (priority aging)


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True, slots=True)
class AgentKnown:
    """A profile from the directory (before or after the agent logs in)."""

    agent: Agent


@dataclass(frozen=True, slots=True)
class MemberAdded:
    """The agent joined a skill's queue (QueueMemberAdded, or QueueMember on resync)."""

    interface: str
    skill: str
    at: float
    penalty: int | None = None  # proficiency comes from the profile when known
    paused: bool = False
    reason: str = ""
    device: DeviceState = DeviceState.NOT_INUSE
    in_call: bool = False
    name: str = ""


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    interface: str
    skill: str
    at: float


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """Device state changed (QueueMemberStatus); ``in_call`` None leaves it as is."""

    interface: str
    device: DeviceState
    at: float
    in_call: bool | None = None


@dataclass(frozen=True, slots=True)
class MemberPaused:
    """Pause is agent-wide here (QueuePause without Queue), as agents use it."""

    interface: str
    paused: bool
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CallerJoined:
    caller: WaitingCaller


@dataclass(frozen=True, slots=True)
class CallerLeft:
    """Left the queue: answered, abandoned, timed out or moved on."""

    uniqueid: str
    at: float
    abandoned: bool = False


@dataclass(frozen=True, slots=True)
class CallerPriority:
    """A waiting caller's priority was changed (aging, QueueChangePriorityCaller)."""

    uniqueid: str
    priority: int
    at: float


@dataclass(frozen=True, slots=True)
class AgentConnected:
    """An agent answered a queued caller (AgentConnect) of ``skill``'s queue."""

    interface: str
    uniqueid: str
    at: float
    skill: str = ""


@dataclass(frozen=True, slots=True)
class AgentCompleted:
    """The call ended (AgentComplete); handle time = talk + wrap-up feeds the AHT."""

    interface: str
    skill: str
    talk_s: float
    at: float
    wrapup_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ClockTick:
    """Time passed (ends wrap-ups); Asterisk sends no event when wrap-up ends."""

    at: float


@dataclass(frozen=True, slots=True)
class CentreReset:
    """Forget live state (keep profiles and AHT) before a QueueStatus resync."""

    at: float


CentreInput = (AgentKnown | MemberAdded | MemberRemoved | MemberStatus | MemberPaused
               | CallerJoined | CallerLeft | CallerPriority | AgentConnected | AgentCompleted
               | ClockTick | CentreReset)


# ------------------------------------------------------------------ views
@dataclass(frozen=True, slots=True)
class ReadyAgent:
    """A ready agent as a routing candidate for one skill."""

    interface: str
    agent_id: str
    proficiency: int
    kind: CentreKind
    region: str
    site: str
    languages: frozenset[str]


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent's profile, status and current memberships (skill -> proficiency)."""

    agent: Agent
    status: AgentStatus
    skills: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class SkillView:
    """Agent counts and ready candidates for one skill, frozen at snapshot time."""

    skill: str
    counts: Mapping[CentreKind, Mapping[AgentState, int]]
    ready_agents: tuple[ReadyAgent, ...] = ()  # best proficiency, then longest idle
    ready_by_side: Mapping[CentreKind, tuple[ReadyAgent, ...]] = field(default_factory=dict)
    best_staffed_proficiency: Mapping[CentreKind, int] = field(default_factory=dict)
    aht_s: float | None = None  # mean handle time of the last completed calls
    aht_samples: int = 0
    # Calls of this skill still with an agent: how many, and the sum of their start times.
    running: int = 0
    running_since_sum: float = 0.0
    # (logged in, staffed, ready, working) per side and for both (None), precomputed
    # because a decision asks for these several times.
    summary: Mapping[CentreKind | None, tuple[int, int, int, int]] = field(
        default_factory=lambda: _EMPTY_SUMMARY)

    def handle_time_s(self, now: float) -> float | None:
        """Mean handle time counting the calls still running, not only completed ones.

        The completed calls alone are biased short (at any moment the long calls are
        the ones not finished yet): on the rig the rolling mean of completions read
        2-11 s for a true 20 s while a queue built up. For exponential handle times
        the maximum-likelihood mean with censoring is (time of completed calls +
        time so far of running ones) / completed calls. None before any completion.
        """
        if not self.aht_samples or self.aht_s is None:
            return None
        running = max(0.0, self.running * now - self.running_since_sum)
        return (self.aht_s * self.aht_samples + running) / self.aht_samples

    def count(self, state: AgentState, side: CentreKind | None = None) -> int:
        if side is not None:
            return self.counts[side][state] if side in self.counts else 0
        return sum(c[state] for c in self.counts.values())

    def logged_in(self, side: CentreKind | None = None) -> int:
        return self.summary[side][0]

    def staffed(self, side: CentreKind | None = None) -> int:
        """Logged in, unpaused and reachable (ready, ringing, busy or wrapping up)."""
        return self.summary[side][1]

    def ready(self, side: CentreKind | None = None) -> int:
        return self.summary[side][2]

    def working(self, side: CentreKind | None = None) -> int:
        """Agents who will free up for this queue: ringing, busy or in wrap-up."""
        return self.summary[side][3]

    def best_ready(
        self, *, side: CentreKind | None = None, region: str | None = None,
        language: str | None = None, scan: int = 32,
    ) -> ReadyAgent | None:
        """The ready agent to offer the call to, or None.

        Order of preference: speaks ``language`` (an agent the caller cannot
        understand helps nobody), then proficiency, then ``region`` among agents of
        that best proficiency, then longest idle. Only the first ``scan``
        candidates are looked at, which bounds a decision's cost at any size.
        """
        pool = self.ready_agents if side is None else self.ready_by_side.get(side, ())
        top: ReadyAgent | None = None
        for cand in pool[:scan]:
            if language and language not in cand.languages:
                continue
            if top is None:
                top = cand
                if region is None or cand.region == region:
                    return cand
            elif cand.proficiency < top.proficiency:
                break
            elif cand.region == region:
                return cand
        if top is None and language and pool:
            # Nobody ready speaks it: the best agent is still better than a queue.
            return self.best_ready(side=side, region=region, scan=scan)
        return top


def _summarise(counts: Mapping[CentreKind, Mapping[AgentState, int]],
               ) -> Mapping[CentreKind | None, tuple[int, int, int, int]]:
    out: dict[CentreKind | None, tuple[int, int, int, int]] = {}
    totals = [0, 0, 0, 0]
    for kind, c in counts.items():
        ready = c[AgentState.READY]
        working = c[AgentState.RINGING] + c[AgentState.BUSY] + c[AgentState.WRAP_UP]
        staffed = ready + working
        logged_in = staffed + c[AgentState.PAUSED] + c[AgentState.UNAVAILABLE]
        out[kind] = (logged_in, staffed, ready, working)
        totals = [totals[0] + logged_in, totals[1] + staffed, totals[2] + ready,
                  totals[3] + working]
    out[None] = (totals[0], totals[1], totals[2], totals[3])
    return MappingProxyType(out)


_EMPTY_SUMMARY: Mapping[CentreKind | None, tuple[int, int, int, int]] = MappingProxyType(
    {None: (0, 0, 0, 0), **{k: (0, 0, 0, 0) for k in CentreKind}})


@dataclass(frozen=True, slots=True)
class QueueView:
    """Waiting callers of one queue, as counts per priority (highest first)."""

    queue: str
    waiting: int = 0
    by_priority: tuple[tuple[int, int], ...] = ()
    oldest_joined_at: float | None = None

    def ahead_of(self, priority: int) -> int:
        """Callers app_queue serves before a new caller of ``priority`` (ties go behind)."""
        return sum(n for p, n in self.by_priority if p >= priority)

    def longest_wait_s(self, now: float) -> float:
        return 0.0 if self.oldest_joined_at is None else max(0.0, now - self.oldest_joined_at)


_EMPTY_COUNTS: Mapping[CentreKind, Mapping[AgentState, int]] = MappingProxyType(
    {k: MappingProxyType(dict.fromkeys(_STATES, 0)) for k in _KINDS})


@dataclass(frozen=True, slots=True)
class CentreSnapshot:
    """An immutable view of the centre for one routing decision."""

    at: float
    skills: Mapping[str, SkillView]
    queues: Mapping[str, QueueView]
    agents: Mapping[str, AgentView]  # by interface
    agent_ids: Mapping[str, str]  # agent id -> interface

    def skill(self, skill: str) -> SkillView:
        view = self.skills.get(skill)
        return view if view is not None else SkillView(skill=skill, counts=_EMPTY_COUNTS)

    def queue(self, queue: str) -> QueueView:
        view = self.queues.get(queue)
        return view if view is not None else QueueView(queue=queue)

    def agent(self, key: str) -> AgentView | None:
        """An agent by interface or by agent id."""
        view = self.agents.get(key)
        if view is None and key in self.agent_ids:
            view = self.agents.get(self.agent_ids[key])
        return view


# ------------------------------------------------------------------ state
class _AgentRec:
    __slots__ = ("agent", "cands", "device", "in_call", "paused", "ready_seq", "reason",
                 "since", "skills", "state", "wrap_until")

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.skills: dict[str, int] = {}
        self.cands: dict[str, ReadyAgent] = {}  # per skill, built once per membership
        self.paused = False
        self.reason = ""
        self.device = DeviceState.NOT_INUSE
        self.in_call = False
        self.wrap_until = 0.0
        self.state = AgentState.LOGGED_OUT
        self.since = 0.0
        self.ready_seq = 0


class _SkillAgg:
    __slots__ = ("aht", "aht_sum", "counts", "ready", "running", "running_sum",
                 "staffed_prof")

    def __init__(self, aht_window: int) -> None:
        self.counts: dict[CentreKind, dict[AgentState, int]] = {
            k: dict.fromkeys(_STATES, 0) for k in _KINDS}
        # interface -> (-proficiency, ready order, candidate): plain tuples sort in C.
        self.ready: dict[str, tuple[int, int, ReadyAgent]] = {}
        # Staffed agents per side and proficiency (index 1..5): the penalty ceiling
        # a decision starts at without scanning agents.
        self.staffed_prof: dict[CentreKind, list[int]] = {k: [0] * 6 for k in _KINDS}
        self.aht: deque[float] = deque(maxlen=aht_window)
        self.aht_sum = 0.0
        self.running: dict[str, float] = {}  # interface -> connected at
        self.running_sum = 0.0

    def call_started(self, interface: str, at: float) -> None:
        self.call_ended(interface)
        self.running[interface] = at
        self.running_sum += at

    def call_ended(self, interface: str) -> None:
        started = self.running.pop(interface, None)
        if started is not None:
            self.running_sum -= started

    def reset_live(self) -> None:
        # Calls running across a resync have no known start: they stop counting.
        self.running, self.running_sum = {}, 0.0
        self.counts = {k: dict.fromkeys(_STATES, 0) for k in _KINDS}
        self.ready = {}
        self.staffed_prof = {k: [0] * 6 for k in _KINDS}

    def add_sample(self, handle_s: float) -> None:
        if len(self.aht) == self.aht.maxlen:
            self.aht_sum -= self.aht[0]
        self.aht.append(handle_s)
        self.aht_sum += handle_s


class _QueueAgg:
    __slots__ = ("by_priority", "count")

    def __init__(self) -> None:
        # priority -> callers in join order; a dict keeps insertion order and O(1) removal.
        self.by_priority: dict[int, dict[str, WaitingCaller]] = {}
        self.count = 0


def _derive(rec: _AgentRec, now: float) -> AgentState:
    if not rec.skills:
        return AgentState.LOGGED_OUT
    if rec.paused:
        return AgentState.PAUSED
    device = rec.device
    if device in (DeviceState.UNAVAILABLE, DeviceState.INVALID):
        return AgentState.UNAVAILABLE
    if device in (DeviceState.RINGING, DeviceState.RINGINUSE):
        return AgentState.RINGING
    if rec.in_call or device in (DeviceState.INUSE, DeviceState.BUSY, DeviceState.ONHOLD):
        return AgentState.BUSY
    if rec.wrap_until > now:
        return AgentState.WRAP_UP
    # app_queue rings UNKNOWN devices too, so they count as ready.
    return AgentState.READY


class CentreState:
    """Mutable live state, fed by :meth:`apply`; read through :meth:`snapshot`."""

    def __init__(self, *, aht_window: int = 50) -> None:
        self._aht_window = aht_window
        self._recs: dict[str, _AgentRec] = {}
        self._skills: dict[str, _SkillAgg] = {}
        self._queues: dict[str, _QueueAgg] = {}
        self._callers: dict[str, WaitingCaller] = {}
        self._wrapups: list[tuple[float, int, str]] = []
        self._seq = itertools.count(1)
        self._now = 0.0
        self.applied = 0
        self.ignored = 0  # inputs about agents/callers we never heard of
        # Published views, shared copy-on-write with snapshots.
        self._agent_views: dict[str, AgentView] = {}
        self._agent_ids: dict[str, str] = {}
        self._skill_views: dict[str, SkillView] = {}
        self._queue_views: dict[str, QueueView] = {}
        self._shared = {"agents": False, "ids": False, "skills": False, "queues": False}
        self._dirty_skills: set[str] = set()
        self._dirty_ready: set[str] = set()  # skills whose ready list changed
        self._dirty_queues: set[str] = set()
        self._handlers: dict[type, Callable[[Any], None]] = {
            AgentKnown: self._on_known, MemberAdded: self._on_added,
            MemberRemoved: self._on_removed, MemberStatus: self._on_status,
            MemberPaused: self._on_paused, CallerJoined: self._on_joined,
            CallerLeft: self._on_left, CallerPriority: self._on_priority,
            AgentConnected: self._on_connected,
            AgentCompleted: self._on_completed, ClockTick: self._on_tick,
            CentreReset: self._on_reset,
        }

    # ------------------------------------------------------------ public
    def apply(self, event: CentreInput) -> None:
        """Apply one input; unknown agents/callers are counted in ``ignored``."""
        at = getattr(event, "at", None)
        if at is not None and at > self._now:
            self._now = at
            self._expire_wrapups()
        self._handlers[type(event)](event)
        self.applied += 1

    def apply_all(self, events: Iterable[CentreInput]) -> None:
        for event in events:
            self.apply(event)

    def snapshot(self, now: float | None = None) -> CentreSnapshot:
        """An immutable view; costs O(changed skills and queues), not O(agents)."""
        if now is not None and now > self._now:
            self._now = now
            self._expire_wrapups()
        if self._dirty_skills:
            views = self._own("skills", self._skill_views)
            for skill in self._dirty_skills:
                old = views.get(skill) if skill not in self._dirty_ready else None
                views[skill] = self._build_skill_view(skill, self._skills[skill], old)
            self._dirty_skills.clear()
            self._dirty_ready.clear()
        if self._dirty_queues:
            qviews = self._own("queues", self._queue_views)
            for queue in self._dirty_queues:
                qviews[queue] = self._build_queue_view(queue, self._queues[queue])
            self._dirty_queues.clear()
        for key in self._shared:
            self._shared[key] = True
        return CentreSnapshot(
            at=self._now,
            skills=MappingProxyType(self._skill_views),
            queues=MappingProxyType(self._queue_views),
            agents=MappingProxyType(self._agent_views),
            agent_ids=MappingProxyType(self._agent_ids),
        )

    def status(self, interface: str) -> AgentStatus:
        rec = self._recs.get(interface)
        if rec is None:
            return AgentStatus(AgentState.LOGGED_OUT)
        return AgentStatus(rec.state, rec.reason if rec.paused else "", rec.since)

    def waiting(self, queue: str) -> list[WaitingCaller]:
        """Callers of ``queue`` in service order: priority (high first), then join time."""
        agg = self._queues.get(queue)
        if agg is None:
            return []
        out: list[WaitingCaller] = []
        for prio in sorted(agg.by_priority, reverse=True):
            out.extend(sorted(agg.by_priority[prio].values(), key=lambda c: c.joined_at))
        return out

    @property
    def now(self) -> float:
        return self._now

    # ------------------------------------------------------------ plumbing
    def _own(self, key: str, current: dict[Any, Any]) -> dict[Any, Any]:
        """``current`` if no snapshot holds it, else a private copy (copy-on-write)."""
        if not self._shared[key]:
            return current
        copy = dict(current)
        self._shared[key] = False
        attr = {"agents": "_agent_views", "ids": "_agent_ids", "skills": "_skill_views",
                "queues": "_queue_views"}[key]
        setattr(self, attr, copy)
        return copy

    def _skill(self, skill: str) -> _SkillAgg:
        agg = self._skills.get(skill)
        if agg is None:
            agg = self._skills[skill] = _SkillAgg(self._aht_window)
        return agg

    def _queue(self, queue: str) -> _QueueAgg:
        agg = self._queues.get(queue)
        if agg is None:
            agg = self._queues[queue] = _QueueAgg()
        return agg

    def _contribute(self, rec: _AgentRec, sign: int) -> None:
        """Add (+1) or remove (-1) the agent's weight from its skills' aggregates."""
        kind, state, iface = rec.agent.kind, rec.state, rec.agent.interface
        staffed = state in STAFFED_STATES
        for skill, prof in rec.skills.items():
            agg = self._skill(skill)
            agg.counts[kind][state] += sign
            if staffed:
                agg.staffed_prof[kind][prof] += sign
            if state is AgentState.READY:
                if sign > 0:
                    agg.ready[iface] = (-prof, rec.ready_seq, self._cand(rec, skill, prof))
                else:
                    agg.ready.pop(iface, None)
                self._dirty_ready.add(skill)
            self._dirty_skills.add(skill)

    @staticmethod
    def _cand(rec: _AgentRec, skill: str, prof: int) -> ReadyAgent:
        cand = rec.cands.get(skill)
        if cand is None or cand.proficiency != prof:
            a = rec.agent
            cand = rec.cands[skill] = ReadyAgent(a.interface, a.id, prof, a.kind, a.region,
                                                 a.site, a.languages)
        return cand

    def _change(self, rec: _AgentRec, mutate: Callable[[_AgentRec], None], at: float) -> None:
        """Apply ``mutate`` to an agent and keep every aggregate in step."""
        self._contribute(rec, -1)
        old_state = rec.state
        mutate(rec)
        rec.state = _derive(rec, self._now)
        if rec.state is not old_state:
            rec.since = at
            if rec.state is AgentState.READY:
                rec.ready_seq = next(self._seq)
        self._contribute(rec, +1)
        self._publish(rec)

    def _publish(self, rec: _AgentRec) -> None:
        views = self._own("agents", self._agent_views)
        views[rec.agent.interface] = AgentView(
            agent=rec.agent,
            status=AgentStatus(rec.state, rec.reason if rec.paused else "", rec.since),
            skills=MappingProxyType(dict(rec.skills)),
        )

    def _rec(self, interface: str) -> _AgentRec | None:
        rec = self._recs.get(interface)
        if rec is None:
            self.ignored += 1
        return rec

    def _expire_wrapups(self) -> None:
        heap = self._wrapups
        while heap and heap[0][0] <= self._now:
            until, _, iface = heapq.heappop(heap)
            rec = self._recs.get(iface)
            if rec is not None and rec.wrap_until == until:
                self._change(rec, lambda r: None, until)

    # ------------------------------------------------------------ handlers
    def _on_known(self, ev: AgentKnown) -> None:
        agent = ev.agent
        rec = self._recs.get(agent.interface)
        if rec is None:
            rec = self._recs[agent.interface] = _AgentRec(agent)
            self._publish(rec)
        else:
            def swap(r: _AgentRec) -> None:
                r.agent, r.cands = agent, {}
                # Re-rate current memberships from the new profile.
                r.skills = {s: agent.skills.get(s, p) for s, p in r.skills.items()}
            self._change(rec, swap, self._now)
        ids = self._own("ids", self._agent_ids)
        ids[agent.id] = agent.interface

    def _on_added(self, ev: MemberAdded) -> None:
        rec = self._recs.get(ev.interface)
        if rec is None:
            # Logged in from a phone or the dialplan without a directory profile.
            agent = Agent(id=ev.interface, name=ev.name or ev.interface, interface=ev.interface)
            self._on_known(AgentKnown(agent))
            rec = self._recs[ev.interface]

        def add(r: _AgentRec) -> None:
            prof = r.agent.skills.get(ev.skill)
            if prof is None:
                prof = proficiency_for(ev.penalty or 0)
            r.skills[ev.skill] = prof
            r.paused, r.reason = ev.paused, ev.reason if ev.paused else ""
            r.device, r.in_call = ev.device, ev.in_call or r.in_call

        self._change(rec, add, ev.at)

    def _on_removed(self, ev: MemberRemoved) -> None:
        rec = self._rec(ev.interface)
        if rec is None:
            return

        def remove(r: _AgentRec) -> None:
            r.skills.pop(ev.skill, None)

        self._change(rec, remove, ev.at)

    def _on_status(self, ev: MemberStatus) -> None:
        rec = self._rec(ev.interface)
        if rec is None:
            return
        if rec.device == ev.device and (ev.in_call is None or ev.in_call == rec.in_call):
            return  # app_queue repeats the status once per queue of the member

        def status(r: _AgentRec) -> None:
            r.device = ev.device
            if ev.in_call is not None:
                r.in_call = ev.in_call

        self._change(rec, status, ev.at)

    def _on_paused(self, ev: MemberPaused) -> None:
        rec = self._rec(ev.interface)
        if rec is None or (rec.paused == ev.paused and rec.reason == ev.reason):
            return

        def pause(r: _AgentRec) -> None:
            r.paused, r.reason = ev.paused, ev.reason if ev.paused else ""

        self._change(rec, pause, ev.at)

    def _on_joined(self, ev: CallerJoined) -> None:
        caller = ev.caller
        if caller.uniqueid in self._callers:
            self._drop_caller(caller.uniqueid)
        self._callers[caller.uniqueid] = caller
        agg = self._queue(caller.queue)
        agg.by_priority.setdefault(caller.priority, {})[caller.uniqueid] = caller
        agg.count += 1
        self._dirty_queues.add(caller.queue)

    def _drop_caller(self, uniqueid: str) -> bool:
        caller = self._callers.pop(uniqueid, None)
        if caller is None:
            return False
        agg = self._queues[caller.queue]
        bucket = agg.by_priority[caller.priority]
        del bucket[uniqueid]
        if not bucket:
            del agg.by_priority[caller.priority]
        agg.count -= 1
        self._dirty_queues.add(caller.queue)
        return True

    def _on_priority(self, ev: CallerPriority) -> None:
        caller = self._callers.get(ev.uniqueid)
        if caller is None:
            self.ignored += 1
            return
        if caller.priority != ev.priority:
            # Re-join keeps the original join time: the caller keeps their place among
            # callers of the new priority (app_queue's Immediate=yes does the same).
            self._drop_caller(ev.uniqueid)
            self._on_joined(CallerJoined(replace(caller, priority=ev.priority)))

    def _on_left(self, ev: CallerLeft) -> None:
        if not self._drop_caller(ev.uniqueid):
            self.ignored += 1

    def _on_connected(self, ev: AgentConnected) -> None:
        # QueueCallerLeave usually came first; dropping again is harmless.
        self._drop_caller(ev.uniqueid)
        if ev.skill:
            self._skill(ev.skill).call_started(ev.interface, ev.at)
            self._dirty_skills.add(ev.skill)
        rec = self._rec(ev.interface)
        if rec is not None:
            def connect(r: _AgentRec) -> None:
                r.in_call = True
            self._change(rec, connect, ev.at)

    def _on_completed(self, ev: AgentCompleted) -> None:
        agg = self._skill(ev.skill)
        agg.add_sample(ev.talk_s + ev.wrapup_s)
        agg.call_ended(ev.interface)
        self._dirty_skills.add(ev.skill)
        rec = self._rec(ev.interface)
        if rec is None:
            return
        until = ev.at + ev.wrapup_s

        def complete(r: _AgentRec) -> None:
            r.in_call = False
            r.wrap_until = until if ev.wrapup_s > 0 else 0.0

        self._change(rec, complete, ev.at)
        if ev.wrapup_s > 0:
            heapq.heappush(self._wrapups, (until, next(self._seq), ev.interface))

    def _on_tick(self, ev: ClockTick) -> None:
        """Nothing beyond the clock advance done in :meth:`apply`."""

    def _on_reset(self, ev: CentreReset) -> None:
        for agg in self._skills.values():
            agg.reset_live()
        self._dirty_skills.update(self._skills)
        self._dirty_ready.update(self._skills)
        self._dirty_queues.update(self._queues)
        self._queues = {q: _QueueAgg() for q in self._queues}
        self._callers.clear()
        self._wrapups.clear()
        for rec in self._recs.values():
            rec.skills, rec.paused, rec.reason = {}, False, ""
            rec.in_call, rec.wrap_until = False, 0.0
            rec.device = DeviceState.NOT_INUSE
            rec.state, rec.since = AgentState.LOGGED_OUT, ev.at
            self._publish(rec)

    # ------------------------------------------------------------ views
    def _build_skill_view(self, skill: str, agg: _SkillAgg, old: SkillView | None) -> SkillView:
        """A fresh view; the ready lists are reused from ``old`` when they did not change."""
        if old is not None:
            ready, ready_by_side = old.ready_agents, old.ready_by_side
        else:
            ready = tuple(entry[2] for entry in sorted(agg.ready.values()))
            by_side: dict[CentreKind, list[ReadyAgent]] = {}
            for cand in ready:
                by_side.setdefault(cand.kind, []).append(cand)
            ready_by_side = MappingProxyType({k: tuple(v) for k, v in by_side.items()})
        best = {k: next((p for p in range(MAX_PROFICIENCY, 0, -1) if agg.staffed_prof[k][p]), 0)
                for k in _KINDS}
        counts = MappingProxyType({k: MappingProxyType(dict(c)) for k, c in agg.counts.items()})
        return SkillView(
            skill=skill,
            counts=counts,
            ready_agents=ready,
            ready_by_side=ready_by_side,
            best_staffed_proficiency=MappingProxyType(best),
            aht_s=agg.aht_sum / len(agg.aht) if agg.aht else None,
            aht_samples=len(agg.aht),
            running=len(agg.running), running_since_sum=agg.running_sum,
            summary=_summarise(counts),
        )

    @staticmethod
    def _build_queue_view(queue: str, agg: _QueueAgg) -> QueueView:
        by_priority = tuple(sorted(((p, len(c)) for p, c in agg.by_priority.items()),
                                   reverse=True))
        # Each bucket is in arrival order, so its first caller is its oldest.
        oldest = min((next(iter(c.values())).joined_at for c in agg.by_priority.values()),
                     default=None)
        return QueueView(queue=queue, waiting=agg.count, by_priority=by_priority,
                         oldest_joined_at=oldest)
