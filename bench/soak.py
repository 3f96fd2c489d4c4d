"""Soak: many real calls through the rig at a steady rate, mixed caller behaviour.

    .venv/bin/python bench/soak.py [--calls 200] [--rate 0.5] [--window 60] [--json]

One warm node (this process: ARI app, Whisper tiny.en, matcher, SQLite) serves
SIP calls placed at ``--rate`` calls per second by the test callers, in a mix:
a question answered in the IVR (6 in 10), silence (1), a DTMF flood (1), a
hang-up in the middle of the greeting (1), barge-in over the question (1).
Reports calls completed / failed, turn-gap p95 per window of call starts,
resident memory and open file descriptors of this process (node and callers)
per window with the growth after the first (warm-up) window, the longest event
loop stall (the call lease tolerates lease - lease/5 s), and afterwards what
Asterisk still holds (ARI channels, bridges, snoops: must be 0) and contact
records missing or without an outcome (must be 0). Figures on a shared machine
carry the load average next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from ivr.cli.demo_cmd import demo_moment
from ivr.cli.voice_call import VoiceCallReport, VoiceCallSpec, VoiceLine, voice_node
from ivr.clock import PinnedClock
from ivr.config import load_settings
from ivr.stats import percentile_or_none as pct
from ivr.stats import rss_mb
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo, seed_synthetic, synthetic_number
from ivr.storage.tables import contacts
from ivr.testing.rig import Rig, rig_from_env
from ivr.testing.turncaller import TurnCaller

QUESTIONS = ("where is my order", "what are your opening hours",
             "has my package been shipped", "when are you open")
FLOOD = "1234567890*#" * 4


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Outcome:
    kind: str
    started: float
    ok: bool
    gaps: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class Window:
    at_s: float
    rss_mb: float
    fds: int
    in_flight: int


def scenario(i: int) -> str:
    return {6: "silence", 7: "dtmf_flood", 8: "hangup_mid_prompt", 9: "barge_in"}.get(
        i % 10, "question")


async def one_call(line: VoiceLine, rig: Rig, i: int, t0: float) -> Outcome:
    kind = scenario(i)
    number = synthetic_number(9 + 3 * i)  # English synthetic customers, one per call
    started = time.monotonic() - t0
    try:
        if kind == "hangup_mid_prompt":
            caller = TurnCaller(rig.ports.sip, from_number=number,
                                dialed=f"test-{line.settings.ari_app}")
            # No turns: the caller listens to the greeting and hangs up within it.
            result = await caller.run([], max_call_s=1.5 + (i % 3) * 0.5)
            return Outcome(kind, started, result.answered, error=None if result.answered
                           else result.error)
        spec = {
            "question": VoiceCallSpec(QUESTIONS[i % len(QUESTIONS)], number),
            "silence": VoiceCallSpec("", number, silent_turns=2),
            "dtmf_flood": VoiceCallSpec("", number, dtmf=FLOOD),
            # Silent at the question, then talks over the re-prompt (the IVR listens
            # then; the first loud prompt is the greeting, before it listens).
            "barge_in": VoiceCallSpec(QUESTIONS[i % len(QUESTIONS)], number,
                                      silent_turns=1, barge_in_after_s=0.8),
        }[kind]
        report: VoiceCallReport = await line.place(spec)
        ok = report.sip_ok and report.contact is not None and report.contact.outcome is not None
        if kind in ("question", "barge_in"):
            ok = ok and report.contact is not None and report.contact.intent is not None
        c = report.contact
        why = report.error or (None if ok else (
            "no contact" if c is None else
            f"outcome {c.outcome.value if c.outcome else None}, intent {c.intent}, "
            f"heard {[t for t in c.transcript if t.startswith('caller:')]}"))
        return Outcome(kind, started, ok, list(report.turn_gap_ms), why)
    except Exception as exc:  # a broken call is a figure, not the end of the soak
        return Outcome(kind, started, False, error=f"{type(exc).__name__}: {exc}")


async def loop_stalls(out: list[float], every_s: float = 0.1) -> None:
    while True:
        t = time.monotonic()
        await asyncio.sleep(every_s)
        out.append(max(0.0, time.monotonic() - t - every_s))


async def sample(windows: list[Window], every_s: float, t0: float,
                 in_flight: list[int]) -> None:
    while True:
        windows.append(Window(round(time.monotonic() - t0, 1), round(rss_mb(), 1),
                              open_fds(), in_flight[0]))
        await asyncio.sleep(every_s)


async def leftovers(line: VoiceLine, before: set[str], settle_s: float = 20.0
                    ) -> dict[str, int]:
    """What Asterisk still holds (ARI lists) that was not there before the soak, after
    the last call's teardown settles (``before``: ids already there, e.g. a killed test
    node's legs on a shared rig, reported apart)."""
    ari = line.node.ari
    deadline = time.monotonic() + settle_s
    while True:
        chans = [c for c in await ari.channels() if c.id not in before]
        bridges = [b for b in await ari.bridges() if b.id not in before]
        if (not chans and not bridges) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    return {"channels": len(chans), "bridges": len(bridges),
            "snoops": sum(1 for c in chans if c.name.startswith("Snoop/")),
            "external_media": sum(1 for c in chans if c.name.startswith("UnicastRTP/")),
            "there_before": len(before)}


def contact_check(url: str, served: int) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
        open_ = conn.execute(select(func.count()).select_from(contacts)
                             .where(contacts.c.outcome.is_(None))).scalar_one()
    engine.dispose()
    return {"calls_in_the_app": served, "contacts": int(total),
            "missing": max(0, served - int(total)), "without_outcome": int(open_)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="kanaal-soak-"))
    url = f"sqlite:///{tmp / 'soak.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=False)
    seed_synthetic(engine, 3 * (args.calls + 10))
    engine.dispose()
    settings = replace(load_settings(env_file=None, environ={}), database_url=url,
                       data_dir=tmp, log_level="WARNING")
    rig = rig_from_env(log=lambda line: print(line, file=sys.stderr))  # stdout: the JSON
    await asyncio.to_thread(rig.up)
    load_before = os.getloadavg()
    async with voice_node(settings, rig=rig, clock=PinnedClock(demo_moment()),
                          hangup_after_s=45) as line:
        ari = line.node.ari
        before = {c.id for c in await ari.channels()} | {b.id for b in await ari.bridges()}
        t0 = time.monotonic()
        stalls: list[float] = []
        windows: list[Window] = []
        in_flight = [0]
        monitors = [asyncio.create_task(loop_stalls(stalls)),
                    asyncio.create_task(sample(windows, args.window, t0, in_flight))]

        async def paced(i: int) -> Outcome:
            await asyncio.sleep(i / args.rate)
            in_flight[0] += 1
            try:
                return await one_call(line, rig, i, t0)
            finally:
                in_flight[0] -= 1

        outcomes = await asyncio.gather(*(paced(i) for i in range(args.calls)))
        wall = time.monotonic() - t0
        for m in monitors:
            m.cancel()
        windows.append(Window(round(wall, 1), round(rss_mb(), 1), open_fds(), 0))
        left = await leftovers(line, before)
        stasis = line.node.stasis
        served = stasis.completed + stasis.failed
        lease = line.settings.ari_lease_s
    return {
        "calls": args.calls, "rate_per_s": args.rate, "wall_s": round(wall, 1),
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "completed": sum(o.ok for o in outcomes), "failed": sum(not o.ok for o in outcomes),
        "by_kind": by_kind(outcomes),
        "failures": [{"kind": o.kind, "at_s": round(o.started, 1), "error": o.error}
                     for o in outcomes if not o.ok][:20],
        "turn_gap_p95_ms_per_window": gap_windows(outcomes, args.window),
        "memory": memory(windows), "windows": [w.__dict__ for w in windows],
        "longest_loop_stall_s": round(max(stalls, default=0.0), 2),
        "lease_s": lease, "stall_tolerated_s": round(lease - lease / 5, 1),
        "app_errors": stasis.failed,
        "left_in_asterisk": left,
        "contact_records": contact_check(url, served),
    }


def by_kind(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = out.setdefault(o.kind, {"ok": 0, "failed": 0})
        row["ok" if o.ok else "failed"] += 1
    return out


def gap_windows(outcomes: list[Outcome], window_s: float) -> list[dict[str, Any]]:
    """Turn-gap p95 at the wire by the window the call started in: a rising line is a leak
    or a backlog."""
    buckets: dict[int, list[float]] = {}
    for o in outcomes:
        buckets.setdefault(int(o.started // window_s), []).extend(o.gaps)
    return [{"from_s": k * window_s, "turns": len(v),
             "p95_ms": None if (p := pct(v, 95)) is None else round(p)}
            for k, v in sorted(buckets.items())]


def memory(windows: list[Window]) -> dict[str, Any]:
    start, end = windows[0], windows[-1]
    warm = windows[1] if len(windows) > 2 else start  # after the first window's warm-up
    growth = (end.rss_mb - warm.rss_mb) / warm.rss_mb * 100 if warm.rss_mb else 0.0
    return {"rss_start_mb": start.rss_mb, "rss_after_warmup_mb": warm.rss_mb,
            "rss_end_mb": end.rss_mb, "growth_after_warmup_pct": round(growth, 1),
            "fds_start": start.fds, "fds_after_warmup": warm.fds, "fds_end": end.fds}


def print_text(r: dict[str, Any]) -> None:
    la = r["load_average"]
    print(f"soak: {r['calls']} calls at {r['rate_per_s']}/s in {r['wall_s']} s "
          f"(load average before {la['before']}, after {la['after']})")
    print(f"  completed {r['completed']}, failed {r['failed']}: {r['by_kind']}")
    for f in r["failures"]:
        print(f"    failed {f['kind']} at {f['at_s']} s: {f['error']}")
    print("  turn-gap p95 by window of call starts: " + ", ".join(
        f"{w['from_s']:.0f}s {w['p95_ms']} ms ({w['turns']})"
        for w in r["turn_gap_p95_ms_per_window"]))
    m = r["memory"]
    print(f"  RSS {m['rss_start_mb']} -> {m['rss_after_warmup_mb']} (warm) -> "
          f"{m['rss_end_mb']} MB ({m['growth_after_warmup_pct']:+.1f} % after warm-up); "
          f"fds {m['fds_start']} -> {m['fds_after_warmup']} -> {m['fds_end']}")
    print(f"  longest event-loop stall {r['longest_loop_stall_s']} s (lease {r['lease_s']} s "
          f"tolerates {r['stall_tolerated_s']} s); call tasks that raised: {r['app_errors']}")
    print(f"  left in Asterisk: {r['left_in_asterisk']}")
    print(f"  contact records: {r['contact_records']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rate", type=float, default=0.5, help="call starts per second")
    ap.add_argument("--window", type=float, default=60.0, help="seconds per report window")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--log", type=Path, help="write the node's WARNING log to this file")
    args = ap.parse_args()
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        print_text(result)


if __name__ == "__main__":
    main()
