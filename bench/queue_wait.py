"""The expected-wait estimate against real waits on a real app_queue (the rig).

    .venv/bin/python bench/queue_wait.py [--agents 3] [--callers 24] [--aht 20]
                                         [--load 0.9] [--seed 7] [--json]

SIPp agents (agent1..N, logged in by Kanaal's membership service) answer a real
Asterisk queue, ``ivr-general``; SIPp callers arrive as a Poisson stream and go
straight into it (the diagnostics extension ``queue-general``, no IVR dialogue,
so the measurement is the model and not the speech path). When an agent connects,
the harness ends that call after an exponential handle time of mean ``--aht``
(AMI ``Hangup``), so the centre is an M/M/c queue at offered load ``--load``.

At every ``QueueCallerJoin`` the estimate is taken from Kanaal's live state exactly
as the Router computes it at hand-off (``expected_wait_s(position, ready, working,
AHT)``), three times: with the handle-time estimate the node really has at that
moment (``SkillView.handle_time_s``, running calls counted; the default 300 s until
a call completes: what callers are told), with the mean of completed calls only
(the earlier estimate, for comparison), and with the true mean (the model's own
error). The actual wait is app_queue's ``HoldTime`` at
``AgentConnect``. Prints mean absolute error, bias and the share within 30 s;
``--json`` prints exactly one JSON document.

Uses the rig's environment variables (``KANAAL_RIG_*``) like the e2e tests.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.contact_centre.service import ContactCentre
from ivr.domain.smart_routing import expected_wait_s
from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.db import make_engine, upgrade
from ivr.storage.repositories import SqlAgentPool
from ivr.storage.seed import seed_demo
from ivr.telephony.ami import AmiClient
from ivr.telephony.ami.events import AgentConnect, QueueCallerJoin
from ivr.testing.centre import clear_queue_members
from ivr.testing.rig import Rig, rig_from_env
from ivr.testing.sipcaller import SippAgent, place_call

QUEUE = "ivr-general"
AGENT_CODES = ("1001", "1002", "1003", "1004")


@dataclass
class Sample:
    position: int
    announced_s: float | None  # with the node's handle-time estimate (what callers hear)
    model_s: float | None  # with the true mean AHT (the model's own error)
    aht_used_s: float  # the node's estimate at the join (running calls counted)
    completed_only_s: float | None  # with the mean of completed calls only (the old way)
    actual_s: float | None = None


def centre_for(rig: Rig, db_url: str) -> ContactCentre:
    engine = make_engine(db_url)
    creds = rig.credentials
    ami = AmiClient("127.0.0.1", rig.ports.ami, username=creds.ami_user,
                    secret=creds.ami_password)
    # No overflow, no aging: a plain FIFO M/M/c queue is what is measured.
    return ContactCentre(
        ami=ami, directory=SqlAgentDirectory(engine), pool=SqlAgentPool(engine),
        overflow={}, vip_tiers=("gold", "platinum"), always_pin=frozenset(),
        stale_limit_s=30.0, overflow_after_s=3600.0, repeat_window_days=7.0,
        aging_step_s=0.0)


async def until(pred: Callable[[], bool], timeout_s: float) -> None:
    """Poll live state (it changes on AMI events; there is nothing to await)."""
    async with asyncio.timeout(timeout_s):
        for _ in itertools.count():
            if pred():
                return
            await asyncio.sleep(0.1)


async def measure(args: argparse.Namespace) -> dict[str, object]:
    rig = rig_from_env(log=lambda m: print(m, file=sys.stderr))
    was_running = rig.status().running
    await asyncio.to_thread(rig.up)
    try:
        return await _measure_on(rig, args)
    finally:
        if not was_running:  # leave the machine as we found it
            await asyncio.to_thread(rig.down)


async def _measure_on(rig: Rig, args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        seed_demo(engine, staffed=False)
        engine.dispose()
        centre = centre_for(rig, url)
        runner = asyncio.create_task(centre.run())
        agents = [SippAgent(rig, n + 1) for n in range(args.agents)]
        try:
            await until(centre.feed.synced.is_set, 30)
            await clear_queue_members(centre.ami)
            for agent, code in zip(agents, AGENT_CODES, strict=False):
                await agent.start()
                await centre.membership.login(code)
            await until(lambda: centre.feed.snapshot().skill("general").ready()
                        == args.agents, 30)
            samples = await _run_load(centre, rig, args, rng)
        finally:
            for agent in agents:
                await agent.stop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    return _summary(samples, args)


async def _run_load(centre: ContactCentre, rig: Rig, args: argparse.Namespace,
                    rng: random.Random) -> list[Sample]:
    rate = args.load * args.agents / args.aht  # arrivals per second for load rho
    samples: dict[str, Sample] = {}
    hangups: list[asyncio.Task[None]] = []

    async def end_call(channel: str, after_s: float) -> None:
        await asyncio.sleep(after_s)
        try:
            await centre.ami.action("Hangup", {"Channel": channel})
        except Exception as exc:  # the caller may be gone already
            print(f"hangup {channel}: {exc}", file=sys.stderr)

    def on_event(ev: object) -> None:
        if isinstance(ev, QueueCallerJoin) and ev.queue == QUEUE:
            view = centre.feed.snapshot().skill("general")
            ready, working = view.ready(), view.working()
            default = centre.router.policy.default_aht_s
            rolling = view.handle_time_s(time.time()) or default
            samples[ev.uniqueid] = Sample(
                ev.position, expected_wait_s(ev.position, ready, working, rolling),
                expected_wait_s(ev.position, ready, working, args.aht), rolling,
                expected_wait_s(ev.position, ready, working, view.aht_s or default))
        elif isinstance(ev, AgentConnect) and ev.queue == QUEUE:
            if ev.uniqueid in samples:
                samples[ev.uniqueid].actual_s = float(ev.hold_time)
            talk = min(max(rng.expovariate(1 / args.aht), 2.0), 5 * args.aht)
            hangups.append(asyncio.create_task(end_call(ev.channel, talk)))

    with centre.ami.subscribe(QueueCallerJoin, AgentConnect) as sub:
        async def follow() -> None:
            async for ev in sub:
                on_event(ev)

        follower = asyncio.create_task(follow())
        calls = []
        for i in range(args.callers):
            await asyncio.sleep(rng.expovariate(rate))
            calls.append(asyncio.create_task(place_call(
                rig, None, f"+3120{5550000 + i}", dialed="queue-general",
                hangup_after_s=args.aht * 20 + 300)))
        await asyncio.gather(*calls)
        follower.cancel()
        await asyncio.gather(follower, *hangups, return_exceptions=True)
    return list(samples.values())


def _errors(pairs: list[tuple[float, float]]) -> dict[str, float | None]:
    if not pairs:
        return {"mae_s": None, "bias_s": None, "within_30s": None}
    errs = [est - act for est, act in pairs]
    return {"mae_s": round(statistics.fmean(abs(e) for e in errs), 1),
            "bias_s": round(statistics.fmean(errs), 1),
            "within_30s": round(sum(abs(e) <= 30 for e in errs) / len(errs), 3)}


def _summary(samples: list[Sample], args: argparse.Namespace) -> dict[str, object]:
    done = [s for s in samples if s.actual_s is not None]
    announced = [(s.announced_s, s.actual_s) for s in done
                 if s.announced_s is not None and s.actual_s is not None]
    model = [(s.model_s, s.actual_s) for s in done
             if s.model_s is not None and s.actual_s is not None]
    completed_only = [(s.completed_only_s, s.actual_s) for s in done
                      if s.completed_only_s is not None and s.actual_s is not None]
    waited = [s for s in done if (s.actual_s or 0) > 0]
    return {
        "agents": args.agents, "callers": args.callers, "aht_s": args.aht,
        "load": args.load, "measured": len(done),
        "mean_actual_wait_s": round(statistics.fmean(s.actual_s or 0 for s in done), 1)
        if done else None,
        "waited": len(waited),
        "announced": _errors(announced),  # keys: mae_s, bias_s, within_30s
        "model": _errors(model),
        "completed_only": _errors(completed_only),
        "samples": [{"position": s.position, "announced_s": s.announced_s,
                     "model_s": s.model_s, "aht_used_s": s.aht_used_s,
                     "completed_only_s": s.completed_only_s,
                     "actual_s": s.actual_s} for s in samples],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=3, choices=range(1, 5))
    ap.add_argument("--callers", type=int, default=24)
    ap.add_argument("--aht", type=float, default=20.0)
    ap.add_argument("--load", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    result = asyncio.run(measure(args))
    result["took_s"] = round(time.monotonic() - t0, 1)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['measured']} of {args.callers} callers answered by {args.agents} agents "
          f"(AHT {args.aht:.0f}s, load {args.load}); mean wait {result['mean_actual_wait_s']}s; "
          f"{result['waited']} waited")
    for name in ("announced", "completed_only", "model"):
        e = result[name]
        print(f"  {name:9} estimate: mean abs error {e['mae_s']}s, bias {e['bias_s']}s, "  # type: ignore[index]
              f"within 30s {e['within_30s']}")  # type: ignore[index]


if __name__ == "__main__":
    main()
