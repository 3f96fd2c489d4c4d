"""Smart routing: decision latency and live-state update throughput.

    .venv/bin/python bench/routing.py [--agents 1000] [--waiting 10000] [--decisions 100000]
                                      [--json]

Builds a synthetic centre (agents over 20 skills, own/partner, 6 regions, half the
skills load-split, waiting callers over their queues), then measures:

* ``decide()`` latency on a snapshot (targets: p99 <= 100 us), with the snapshot
  refreshed every 1,000 decisions after a burst of state changes;
* ``snapshot()`` latency after 10 state changes, i.e. the extra cost when a
  decision takes a fresh snapshot while the centre churns;
* ``CentreState.apply`` throughput of AMI-like inputs (target >= 5,000 events/s),
  and the same from raw AMI text (parse + typed event + translation + apply).

``--json`` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.domain.centre import (
    Agent,
    AgentCompleted,
    AgentConnected,
    AgentKnown,
    CallerJoined,
    CallerLeft,
    CentreInput,
    CentreKind,
    CentreState,
    DeviceState,
    MemberAdded,
    MemberPaused,
    MemberStatus,
    WaitingCaller,
    penalty_for,
)
from ivr.domain.smart_routing import (
    LoadSplit,
    OverflowStep,
    PreviousAgent,
    RoutingPolicy,
    RoutingRequest,
    SplitState,
    decide,
)
from ivr.stats import percentile as pct
from ivr.telephony.ami.events import (
    QueueCallerJoin,
    QueueCallerLeave,
    QueueMemberStatus,
    parse_event,
)
from ivr.telephony.ami.wire import parse_message

SKILLS = [f"skill{i:02d}" for i in range(20)]
REGIONS = ["north", "south", "east", "west", "centre", "islands"]
TIERS = ["standard"] * 7 + ["gold"] * 2 + ["platinum"]


def build(n_agents: int, n_waiting: int, rng: random.Random) -> tuple[CentreState, list[Agent],
                                                                      RoutingPolicy]:
    policy = RoutingPolicy(
        overflow={s: (OverflowStep(SKILLS[(i + 1) % len(SKILLS)], 120),)
                  for i, s in enumerate(SKILLS) if i % 3 == 0},
        load_split={s: LoadSplit(70, 30) for s in SKILLS[::2]},
    )
    state = CentreState()
    agents: list[Agent] = []
    for i in range(n_agents):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 3))}
        langs = frozenset(rng.choice([("nl",), ("nl", "en"), ("en",)]))
        kind = CentreKind.OWN if rng.random() < 0.7 else CentreKind.PARTNER
        a = Agent(id=f"a{i}", name=f"Agent {i}", interface=f"PJSIP/agent-{i}",
                  region=rng.choice(REGIONS), kind=kind, languages=langs, skills=skills)
        agents.append(a)
        state.apply(AgentKnown(a))
        device = rng.choice([DeviceState.NOT_INUSE] * 3 + [DeviceState.INUSE] * 5)
        paused = rng.random() < 0.1
        for skill, prof in skills.items():
            state.apply(MemberAdded(a.interface, skill, 0.0, penalty=penalty_for(prof),
                                    device=device, paused=paused, reason="break"))
    for j in range(n_waiting):
        skill = rng.choice(SKILLS)
        side = CentreKind.OWN if rng.random() < 0.7 else CentreKind.PARTNER
        state.apply(CallerJoined(WaitingCaller(
            f"w{j}", policy.queue_for(skill, side), rng.choice([0, 0, 0, 5, 8, 10]),
            joined_at=-rng.random() * 600)))
    return state, agents, policy


def churn(agents: list[Agent], policy: RoutingPolicy, n: int, rng: random.Random,
          t0: float) -> list[CentreInput]:
    """AMI-like inputs in realistic proportions: device changes, calls, joins, leaves."""
    out: list[CentreInput] = []
    for k in range(n):
        t = t0 + k * 0.001
        a = rng.choice(agents)
        skill = next(iter(a.skills))
        r = rng.random()
        if r < 0.35:
            out.append(MemberStatus(a.interface, rng.choice(
                [DeviceState.NOT_INUSE, DeviceState.INUSE, DeviceState.RINGING]), t))
        elif r < 0.55:
            uid = f"c{t0}-{k}"
            out.append(CallerJoined(WaitingCaller(uid, policy.queue_for(skill, a.kind),
                                                  rng.choice([0, 5]), t)))
            out.append(CallerLeft(uid, t))
        elif r < 0.75:
            out.append(AgentConnected(a.interface, f"x{k}", t))
        elif r < 0.95:
            out.append(AgentCompleted(a.interface, skill, rng.uniform(60, 600), t,
                                      wrapup_s=rng.choice([0, 0, 15])))
        else:
            out.append(MemberPaused(a.interface, rng.random() < 0.5, t, reason="break"))
    return out


def requests(agents: list[Agent], n: int, rng: random.Random) -> list[RoutingRequest]:
    out = []
    for _ in range(n):
        prev = None
        if rng.random() < 0.1:
            prev = PreviousAgent(rng.choice(agents).id, rng.random() < 0.7, rng.uniform(0, 14))
        out.append(RoutingRequest(
            skill=rng.choice(SKILLS), now=0.0, tier=rng.choice(TIERS),
            sensitive=rng.random() < 0.05, region=rng.choice(REGIONS),
            language=rng.choice(["nl", "nl", "en"]), previous_agent=prev))
    return out


def measure_decisions(state: CentreState, agents: list[Agent], policy: RoutingPolicy,
                      n: int, rng: random.Random) -> tuple[list[float], list[float]]:
    reqs = requests(agents, n, rng)
    split = SplitState()
    decide_us: list[float] = []
    snap_us: list[float] = []
    snap = state.snapshot()
    for i, req in enumerate(reqs):
        if i % 1000 == 0 and i:
            state.apply_all(churn(agents, policy, 200, rng, float(i)))
            snap = state.snapshot()
        if i % 100 == 50:
            state.apply_all(churn(agents, policy, 10, rng, float(i) + 0.5))
            t0 = time.perf_counter_ns()
            state.snapshot()
            snap_us.append((time.perf_counter_ns() - t0) / 1e3)
        t0 = time.perf_counter_ns()
        out = decide(req, snap, policy, split)
        decide_us.append((time.perf_counter_ns() - t0) / 1e3)
        split = out.split
    return decide_us, snap_us


def measure_apply(agents: list[Agent], policy: RoutingPolicy, n: int,
                  rng: random.Random, state: CentreState) -> float:
    inputs = churn(agents, policy, n, rng, 1e6)
    t0 = time.perf_counter()
    state.apply_all(inputs)
    return len(inputs) / (time.perf_counter() - t0)


def ami_text(agents: list[Agent], n: int, rng: random.Random) -> list[bytes]:
    """Raw AMI blocks as Asterisk writes them (member status, caller join/leave)."""
    blocks = []
    for k in range(n):
        a = rng.choice(agents)
        skill = next(iter(a.skills))
        if k % 2:
            blocks.append(
                f"Event: QueueMemberStatus\r\nPrivilege: agent,all\r\nQueue: {skill}\r\n"
                f"MemberName: {a.name}\r\nInterface: {a.interface}\r\nStateInterface: "
                f"{a.interface}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 3\r\n"
                f"LastCall: 0\r\nLastPause: 0\r\nLoginTime: 0\r\nInCall: 0\r\n"
                f"Status: {rng.choice([1, 2, 6])}\r\nPaused: 0\r\nPausedReason: \r\n"
                f"Ringinuse: 0\r\nWrapuptime: 0\r\n\r\n".encode())
        else:
            event = "QueueCallerJoin" if k % 4 == 0 else "QueueCallerLeave"
            blocks.append(
                f"Event: {event}\r\nPrivilege: agent,all\r\nChannel: PJSIP/c-{k // 4}\r\n"
                f"ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: +3120{k:07d}\r\n"
                f"CallerIDName: \r\nUniqueid: 1700000000.{k // 4}\r\nLinkedid: 1700000000.{k}"
                f"\r\nQueue: {skill}\r\nPosition: 1\r\nCount: 1\r\n\r\n".encode())
    return blocks


def measure_ami(blocks: list[bytes], state: CentreState) -> float:
    t0 = time.perf_counter()
    for block in blocks:
        ev = parse_event(parse_message(block))
        now = time.time()
        if isinstance(ev, QueueMemberStatus):
            state.apply(MemberStatus(ev.interface, ev.status, now, in_call=ev.in_call))
        elif isinstance(ev, QueueCallerJoin):
            state.apply(CallerJoined(WaitingCaller(ev.uniqueid, ev.queue, 0, now, ev.position)))
        elif isinstance(ev, QueueCallerLeave):
            state.apply(CallerLeft(ev.uniqueid, now))
    return len(blocks) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--waiting", type=int, default=10_000)
    ap.add_argument("--decisions", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    state, agents, policy = build(args.agents, args.waiting, rng)
    decide_us, snap_us = measure_decisions(state, agents, policy, args.decisions, rng)
    events_per_s = measure_apply(agents, policy, args.events, rng, state)
    ami_per_s = measure_ami(ami_text(agents, args.events // 4, rng), state)
    result = {
        "agents": args.agents, "waiting": args.waiting, "decisions": args.decisions,
        "decision_p50_us": round(statistics.median(decide_us), 2),
        "decision_p99_us": round(pct(decide_us, 99), 2),
        "decision_max_us": round(max(decide_us), 1),
        "snapshot_after_10_events_p50_us": round(statistics.median(snap_us), 2),
        "snapshot_after_10_events_p99_us": round(pct(snap_us, 99), 2),
        "events_per_s": round(events_per_s),
        "ami_text_events_per_s": round(ami_per_s),
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"\nsmart routing: {args.agents:,} agents, {args.waiting:,} waiting callers, "
          f"{args.decisions:,} decisions")
    rows = [
        ("decide() p50", f"{result['decision_p50_us']} us", ""),
        ("decide() p99", f"{result['decision_p99_us']} us", "<= 100 us"),
        ("snapshot() after 10 events p50", f"{result['snapshot_after_10_events_p50_us']} us", ""),
        ("snapshot() after 10 events p99", f"{result['snapshot_after_10_events_p99_us']} us", ""),
        ("CentreState.apply", f"{result['events_per_s']:,} events/s", ">= 5,000/s"),
        ("AMI text -> apply", f"{result['ami_text_events_per_s']:,} events/s", ""),
    ]
    print(f"{'metric':<34}{'value':>20}  {'target':<12}")
    for name, value, target in rows:
        print(f"{name:<34}{value:>20}  {target:<12}")


if __name__ == "__main__":
    main()
