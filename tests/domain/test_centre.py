"""CentreState: agent status per skill, waiting callers, rolling AHT, cheap snapshots."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ivr.domain.centre import (
    STAFFED_STATES,
    Agent,
    AgentCompleted,
    AgentConnected,
    AgentKnown,
    AgentState,
    AgentView,
    CallerJoined,
    CallerLeft,
    CentreInput,
    CentreKind,
    CentreReset,
    CentreSnapshot,
    CentreState,
    ClockTick,
    DeviceState,
    MemberAdded,
    MemberPaused,
    MemberRemoved,
    MemberStatus,
    SkillView,
    WaitingCaller,
    penalty_for,
    proficiency_for,
)

OWN, PARTNER = CentreKind.OWN, CentreKind.PARTNER


def agent(n: int, skills: dict[str, int], *, kind: CentreKind = OWN, region: str = "north",
          languages: tuple[str, ...] = ("nl",)) -> Agent:
    return Agent(id=f"a{n}", name=f"Agent {n}", interface=f"PJSIP/agent-{n}", site="ams",
                 region=region, centre="hq" if kind is OWN else "partner-co", kind=kind,
                 languages=frozenset(languages), skills=skills)


def login(state: CentreState, a: Agent, at: float = 0.0) -> None:
    state.apply(AgentKnown(a))
    for skill in a.skills:
        state.apply(MemberAdded(a.interface, skill, at, penalty=penalty_for(a.skills[skill])))


def av(snap: CentreSnapshot, key: str) -> AgentView:
    view = snap.agent(key)
    assert view is not None
    return view


def best(view: SkillView, **prefs: Any) -> str:
    cand = view.best_ready(**prefs)
    assert cand is not None
    return cand.agent_id


def caller(uid: str, queue: str = "billing", priority: int = 0, at: float = 0.0) -> CallerJoined:
    return CallerJoined(WaitingCaller(uniqueid=uid, queue=queue, priority=priority, joined_at=at))


def test_agent_walks_through_ready_ringing_busy_wrap_up_ready() -> None:
    """Device and call inputs move the agent's state and every skill's counts together."""
    state = CentreState()
    a = agent(1, {"billing": 5, "sales": 3})
    login(state, a, at=10)
    snap = state.snapshot()
    assert snap.skill("billing").ready() == 1 and snap.skill("sales").ready() == 1
    state.apply(MemberStatus(a.interface, DeviceState.RINGING, 20))
    assert state.status(a.interface).state is AgentState.RINGING
    state.apply(AgentConnected(a.interface, "1700.1", 22))
    state.apply(MemberStatus(a.interface, DeviceState.INUSE, 22))
    snap = state.snapshot()
    assert snap.skill("billing").count(AgentState.BUSY) == 1
    assert snap.skill("sales").working() == 1 and snap.skill("sales").ready() == 0
    state.apply(MemberStatus(a.interface, DeviceState.NOT_INUSE, 100))
    state.apply(AgentCompleted(a.interface, "billing", talk_s=78, at=100, wrapup_s=30))
    status = state.status(a.interface)
    assert status.state is AgentState.WRAP_UP and status.since == 100
    state.apply(ClockTick(129.9))
    assert state.status(a.interface).state is AgentState.WRAP_UP
    snap = state.snapshot(now=130)  # wrap-up ends on the clock: Asterisk sends no event
    assert state.status(a.interface).state is AgentState.READY
    assert snap.skill("billing").ready() == 1 and snap.skill("billing").aht_s == 108


def test_pause_with_reason_is_not_staffed() -> None:
    """A paused agent is logged in but not staffed; the reason is kept until unpause."""
    state = CentreState()
    a = agent(1, {"billing": 4})
    login(state, a)
    state.apply(MemberPaused(a.interface, True, 5, reason="lunch"))
    assert state.status(a.interface).reason == "lunch"
    view = state.snapshot().skill("billing")
    assert (view.logged_in(), view.staffed(), view.count(AgentState.PAUSED)) == (1, 0, 1)
    state.apply(MemberPaused(a.interface, False, 9))
    assert state.status(a.interface).state is AgentState.READY
    assert state.status(a.interface).reason == ""


def test_unreachable_phone_counts_as_logged_in_but_not_staffed() -> None:
    """UNAVAILABLE/INVALID devices are never rung by app_queue."""
    state = CentreState()
    a = agent(1, {"billing": 4})
    login(state, a)
    state.apply(MemberStatus(a.interface, DeviceState.UNAVAILABLE, 3))
    view = state.snapshot().skill("billing")
    assert view.logged_in() == 1 and view.staffed() == 0
    assert state.status(a.interface).state is AgentState.UNAVAILABLE


def test_status_repeated_per_queue_is_counted_once() -> None:
    """app_queue sends one QueueMemberStatus per queue; aggregates must not drift."""
    state = CentreState()
    a = agent(1, {"billing": 5, "sales": 5, "tech": 5})
    login(state, a)
    for _ in a.skills:
        state.apply(MemberStatus(a.interface, DeviceState.INUSE, 4, in_call=True))
    snap = state.snapshot()
    for skill in a.skills:
        assert snap.skill(skill).count(AgentState.BUSY) == 1
        assert snap.skill(skill).logged_in() == 1


def test_removal_from_every_queue_logs_out() -> None:
    """Leaving the last queue makes the agent logged out and zeroes the counts."""
    state = CentreState()
    a = agent(1, {"billing": 5, "sales": 2})
    login(state, a)
    state.apply(MemberRemoved(a.interface, "billing", 5))
    assert state.snapshot().skill("billing").logged_in() == 0
    assert state.status(a.interface).state is AgentState.READY
    state.apply(MemberRemoved(a.interface, "sales", 6))
    snap = state.snapshot()
    assert snap.skill("sales").logged_in() == 0
    assert state.status(a.interface).state is AgentState.LOGGED_OUT
    assert dict(av(snap, "a1").skills) == {}


def test_member_without_profile_gets_one_from_its_penalty() -> None:
    """An agent logged in from the dialplan is still counted; proficiency from the penalty."""
    state = CentreState()
    state.apply(MemberAdded("PJSIP/agent-9", "billing", 1, penalty=2, name="Nine"))
    view = state.snapshot().skill("billing")
    assert view.ready() == 1 and view.ready_agents[0].proficiency == 3
    assert proficiency_for(2) == 3 and proficiency_for(12) == 1
    state.apply(MemberStatus("PJSIP/nobody", DeviceState.INUSE, 2))
    state.apply(CallerLeft("no-such-call", 3))
    assert state.ignored == 2


def test_waiting_callers_are_ordered_by_priority_then_join_time() -> None:
    """Service order: higher priority first, then who came first."""
    state = CentreState()
    state.apply_all([caller("c1", at=1), caller("c2", priority=5, at=2), caller("c3", at=3),
                     caller("c4", priority=5, at=4), caller("x", queue="sales", at=0)])
    assert [c.uniqueid for c in state.waiting("billing")] == ["c2", "c4", "c1", "c3"]
    q = state.snapshot().queue("billing")
    assert q.waiting == 4 and q.by_priority == ((5, 2), (0, 2))
    assert q.ahead_of(5) == 2 and q.ahead_of(0) == 4 and q.ahead_of(9) == 0
    assert q.oldest_joined_at == 1 and q.longest_wait_s(11) == 10
    state.apply(CallerLeft("c2", 6))
    state.apply(AgentConnected("PJSIP/agent-1", "c1", 7))  # answered: leaves the queue too
    assert [c.uniqueid for c in state.waiting("billing")] == ["c4", "c3"]
    assert state.snapshot().queue("billing").oldest_joined_at == 3


def test_aht_is_a_rolling_mean_of_the_last_n_handle_times() -> None:
    """Handle time = talk + wrap-up; only the last ``aht_window`` calls count."""
    state = CentreState(aht_window=3)
    for i, talk in enumerate([100, 200, 300, 400]):
        state.apply(AgentCompleted("PJSIP/agent-1", "billing", talk_s=talk, at=i, wrapup_s=10))
    view = state.snapshot().skill("billing")
    assert view.aht_s == pytest.approx(310) and view.aht_samples == 3


def test_snapshot_is_immutable_and_shares_unchanged_views() -> None:
    """Later inputs never change an earlier snapshot; untouched skills are not rebuilt."""
    state = CentreState()
    a, b = agent(1, {"billing": 5}), agent(2, {"sales": 5})
    login(state, a)
    login(state, b)
    first = state.snapshot()
    state.apply(MemberPaused(a.interface, True, 5, reason="break"))
    state.apply(caller("c1"))
    second = state.snapshot()
    assert first.skill("billing").ready() == 1 and second.skill("billing").ready() == 0
    assert first.queue("billing").waiting == 0 and second.queue("billing").waiting == 1
    assert av(first, "a1").status.state is AgentState.READY
    assert second.skills["sales"] is first.skills["sales"]  # copy-on-write, not rebuilt
    with pytest.raises(TypeError):
        first.skills["x"] = first.skills["sales"]  # type: ignore[index]


def test_best_ready_prefers_proficiency_then_longest_idle_then_region_and_language() -> None:
    """Candidates: best proficiency, longest idle; region and language preferred."""
    state = CentreState()
    login(state, agent(1, {"billing": 3}, region="north"), at=1)
    login(state, agent(2, {"billing": 5}, region="south", languages=("en",)), at=2)
    login(state, agent(3, {"billing": 5}, region="north"), at=3)
    login(state, agent(4, {"billing": 5}, region="north", kind=PARTNER, languages=("en",)), at=0)
    view = state.snapshot().skill("billing")
    assert [r.agent_id for r in view.ready_agents] == ["a2", "a3", "a4", "a1"]
    assert best(view) == "a2"
    assert best(view, region="north") in ("a3", "a4")
    assert best(view, side=OWN, region="north") == "a3"
    assert best(view, side=OWN, region="north", language="en") == "a2"
    assert best(view, side=PARTNER) == "a4"
    assert view.best_staffed_proficiency == {OWN: 5, PARTNER: 5}


def test_reset_forgets_live_state_but_keeps_profiles_and_aht() -> None:
    """Before a QueueStatus resync: memberships and callers go, profiles and AHT stay."""
    state = CentreState()
    a = agent(1, {"billing": 5})
    login(state, a)
    state.apply(caller("c1"))
    state.apply(AgentCompleted(a.interface, "billing", talk_s=60, at=1))
    state.apply(CentreReset(2))
    snap = state.snapshot()
    assert snap.skill("billing").logged_in() == 0 and snap.queue("billing").waiting == 0
    assert snap.skill("billing").aht_s == 60 and av(snap, "a1").agent == a
    login(state, a, at=3)
    assert state.snapshot().skill("billing").ready() == 1


def test_profile_rejects_out_of_range_proficiency() -> None:
    """Proficiency is 1..5; anything else is a configuration error."""
    with pytest.raises(ValueError, match=r"1\.\.5"):
        agent(1, {"billing": 6})


def test_aggregates_match_a_full_recount_after_random_inputs() -> None:
    """Incremental per-skill counts equal a brute-force recount after 5,000 random inputs."""
    rng = random.Random(7)
    skills = ["billing", "sales", "tech", "moves"]
    agents = [agent(i, {s: rng.randint(1, 5) for s in rng.sample(skills, rng.randint(1, 3))},
                    kind=rng.choice([OWN, PARTNER])) for i in range(40)]
    state = CentreState()
    for a in agents:
        state.apply(AgentKnown(a))
    t = 0.0
    for step in range(5000):
        t += rng.random()
        a = rng.choice(agents)
        skill = rng.choice(list(a.skills))
        inputs: list[CentreInput] = [
            MemberAdded(a.interface, skill, t), MemberRemoved(a.interface, skill, t),
            MemberStatus(a.interface, rng.choice(list(DeviceState)), t),
            MemberPaused(a.interface, rng.random() < 0.5, t, reason="r"),
            AgentConnected(a.interface, "x", t),
            AgentCompleted(a.interface, skill, talk_s=30, at=t, wrapup_s=rng.choice([0, 2])),
        ]
        state.apply(rng.choice(inputs))
        if step % 250 == 249:  # snapshots in between exercise the reuse of unchanged views
            _check_against_recount(state, agents, skills, t)


def _check_against_recount(state: CentreState, agents: list[Agent], skills: list[str],
                           now: float) -> None:
    snap = state.snapshot(now=now)
    for skill in skills:
        view = snap.skill(skill)
        members = [a for a in agents if skill in snap.agents[a.interface].skills]
        for kind in (OWN, PARTNER):
            for st in AgentState:
                expected = sum(1 for a in members
                               if a.kind is kind and state.status(a.interface).state is st)
                assert view.count(st, kind) == expected, (skill, kind, st)
        ready = [a for a in members if state.status(a.interface).state is AgentState.READY]
        assert {r.interface for r in view.ready_agents} == {a.interface for a in ready}
        assert view.ready() == len(ready)
        assert view.staffed() == sum(1 for a in members
                                     if state.status(a.interface).state in STAFFED_STATES)
