"""Queue care: priority aging of waiting callers and widening to standby substitutes."""

from __future__ import annotations

from ivr.domain.centre import (
    Agent,
    AgentKnown,
    CallerJoined,
    CallerPriority,
    CentreKind,
    CentreState,
    DeviceState,
    MemberAdded,
    MemberPaused,
    MemberRemoved,
    MemberStatus,
    WaitingCaller,
    penalty_for,
)
from ivr.domain.queue_care import FirstSeen, aging_changes, split_queue_key, standby_wanted
from ivr.domain.smart_routing import OverflowStep, RoutingPolicy

POLICY = RoutingPolicy(overflow={"billing": (OverflowStep("general", 60.0),)})


def agent(n: int, skills: dict[str, int], kind: CentreKind = CentreKind.OWN) -> Agent:
    return Agent(id=f"a{n}", name=f"Agent {n}", interface=f"PJSIP/agent-{n}", kind=kind,
                 skills=skills)


def login(state: CentreState, a: Agent) -> None:
    state.apply(AgentKnown(a))
    for skill, level in a.skills.items():
        state.apply(MemberAdded(a.interface, skill, 0.0, penalty=penalty_for(level)))


def waiting(uid: str, *, queue: str = "billing", priority: int = 0, at: float = 0.0,
            channel: str = "PJSIP/caller-1") -> WaitingCaller:
    return WaitingCaller(uniqueid=uid, queue=queue, priority=priority, joined_at=at,
                         channel=channel)


def centre_with_busy_primary() -> CentreState:
    state = CentreState()
    primary, sub = agent(1, {"billing": 5}), agent(2, {"general": 4})
    login(state, primary)
    login(state, sub)
    state.apply(MemberStatus(primary.interface, DeviceState.INUSE, 1.0, True))
    state.apply(CallerJoined(waiting("c1", at=10.0)))
    return state


def test_aging_raises_one_step_per_minute_from_first_sight_and_only_upwards() -> None:
    c = waiting("c1", at=0.0)
    seen = {"c1": FirstSeen(priority=0, waited_s=0.0)}
    assert aging_changes([c], seen, 59.0, POLICY) == ()
    assert aging_changes([c], seen, 130.0, POLICY) == ((c, 2),)
    already = waiting("c1", priority=2)
    assert aging_changes([already], seen, 130.0, POLICY) == ()
    # first seen after a node restart, 5 minutes in, already raised to 5 by the old node:
    late = waiting("c2", priority=5, at=0.0)
    late_seen = {"c2": FirstSeen(priority=5, waited_s=300.0)}
    assert aging_changes([late], late_seen, 330.0, POLICY) == ()
    assert aging_changes([late], late_seen, 361.0, POLICY) == ((late, 6),)


def test_aging_leaves_unseen_callers_and_callers_without_a_channel() -> None:
    seen = {"c1": FirstSeen(0, 0.0)}
    assert aging_changes([waiting("c9")], seen, 600.0, POLICY) == ()
    assert aging_changes([waiting("c1", channel="")], seen, 600.0, POLICY) == ()


def test_aging_is_capped() -> None:
    c = waiting("c1")
    (_, prio), = aging_changes([c], {"c1": FirstSeen(0, 0.0)}, 10_000.0, POLICY)
    assert prio == POLICY.aging_max_boost


def test_priority_change_moves_the_caller_in_the_state() -> None:
    state = CentreState()
    state.apply(CallerJoined(waiting("std", at=0.0)))
    state.apply(CallerJoined(waiting("gold", priority=5, at=50.0)))
    assert [c.uniqueid for c in state.waiting("billing")] == ["gold", "std"]
    state.apply(CallerPriority("std", 5, 300.0))
    # same priority now, and the standard caller joined first: they go first
    assert [c.uniqueid for c in state.waiting("billing")] == ["std", "gold"]
    assert state.snapshot().queue("billing").ahead_of(6) == 0
    state.apply(CallerPriority("nobody", 3, 301.0))
    assert state.ignored == 1


def test_widening_waits_for_the_threshold_then_takes_the_substitute() -> None:
    state = centre_with_busy_primary()
    assert standby_wanted(state.snapshot(40.0), POLICY, 40.0) == frozenset()
    assert standby_wanted(state.snapshot(71.0), POLICY, 71.0) == {("billing", "PJSIP/agent-2")}


def test_widening_at_once_when_the_primary_skill_has_nobody_staffed() -> None:
    state = centre_with_busy_primary()
    state.apply(MemberRemoved("PJSIP/agent-1", "billing", 12.0))
    assert standby_wanted(state.snapshot(13.0), POLICY, 13.0) == {("billing", "PJSIP/agent-2")}


def test_no_widening_for_paused_substitutes_empty_queues_or_skills_without_overflow() -> None:
    state = centre_with_busy_primary()
    state.apply(MemberPaused("PJSIP/agent-2", True, 20.0, "lunch"))
    assert standby_wanted(state.snapshot(100.0), POLICY, 100.0) == frozenset()
    assert standby_wanted(state.snapshot(100.0), RoutingPolicy(), 100.0) == frozenset()
    empty = CentreState()
    login(empty, agent(2, {"general": 4}))
    assert standby_wanted(empty.snapshot(100.0), POLICY, 100.0) == frozenset()


def test_side_queues_widen_to_substitutes_of_that_side_only() -> None:
    state = CentreState()
    login(state, agent(1, {"billing": 5}, CentreKind.OWN))
    login(state, agent(2, {"general": 4}, CentreKind.OWN))
    login(state, agent(3, {"general": 4}, CentreKind.PARTNER))
    state.apply(MemberStatus("PJSIP/agent-1", DeviceState.INUSE, 1.0, True))
    state.apply(CallerJoined(waiting("c1", queue="billing-own", at=0.0)))
    assert split_queue_key("billing-own") == ("billing", CentreKind.OWN)
    assert standby_wanted(state.snapshot(61.0), POLICY, 61.0) == {
        ("billing-own", "PJSIP/agent-2")}


def test_handle_time_counts_calls_still_running() -> None:
    """Completed calls alone are biased short; running calls count with their time so far."""
    from ivr.domain.centre import AgentCompleted, AgentConnected, CentreReset

    state = CentreState()
    a1, a2 = agent(1, {"billing": 5}), agent(2, {"billing": 5})
    login(state, a1)
    login(state, a2)
    assert state.snapshot(0.0).skill("billing").handle_time_s(0.0) is None
    state.apply(AgentConnected(a1.interface, "u1", 0.0, skill="billing"))
    state.apply(AgentCompleted(a1.interface, "billing", 10.0, 10.0))
    state.apply(AgentConnected(a2.interface, "u2", 10.0, skill="billing"))
    view = state.snapshot(40.0).skill("billing")
    assert view.aht_s == 10.0
    assert view.handle_time_s(40.0) == 40.0  # (10 completed + 30 running) / 1 completed
    state.apply(AgentCompleted(a2.interface, "billing", 35.0, 45.0))
    assert state.snapshot(50.0).skill("billing").handle_time_s(50.0) == 22.5
    state.apply(AgentConnected(a1.interface, "u3", 50.0, skill="billing"))
    state.apply(CentreReset(51.0))  # a resync forgets running calls (no start known)
    assert state.snapshot(60.0).skill("billing").handle_time_s(60.0) == 22.5
