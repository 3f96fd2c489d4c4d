"""Real calls through the Asterisk rig: response latency and concurrency.

    .venv/bin/python bench/calls.py [--latency-calls 20] [--batch 4] [--steps 5,10,20,40]

(a) end of the caller's speech -> start of the response playback, p50/p95 over
    N real calls (SIPp caller, Asterisk 22, ARI app, Whisper tiny.en, matcher,
    SQLite). The endpointer's silence wait is reported separately.
(b) N concurrent calls, stepped up until p95 exceeds 1 s (or the steps run
    out), with CPU seconds and resident memory per call for this process (the
    node) and for Asterisk. Call starts are spread evenly over --spread seconds
    (shorter than a call, so all N overlap) as real arrivals are; starting them
    in the same instant would make every caller stop talking at the same moment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.cli.demo_cmd import demo_moment
from ivr.cli.voice_call import VoiceCallReport, VoiceCallSpec, voice_node
from ivr.clock import PinnedClock
from ivr.config import load_settings
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo, seed_synthetic, synthetic_number
from ivr.telephony.rig import Rig

UTTERANCES = ("where is my order", "what are your opening hours",
              "has my package been shipped", "when are you open")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def specs(n: int, offset: int) -> list[VoiceCallSpec]:
    # Synthetic customers with index % 3 == 0 speak English (seed_synthetic).
    return [VoiceCallSpec(say=UTTERANCES[i % len(UTTERANCES)],
                          from_number=synthetic_number(9 + 3 * (offset + i)))
            for i in range(n)]


def asterisk_cpu_s() -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as fh:
                name = fh.read().strip()
        except OSError:
            continue
        if name == "asterisk":
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def summary(reports: list[VoiceCallReport]) -> dict[str, float]:
    resp = [x for r in reports for x in r.response_ms]
    asr = [x for r in reports for x in r.asr_ms]
    wait = [x for r in reports for x in r.silence_wait_ms]
    ok = sum(1 for r in reports if r.contact and r.contact.intent)
    return {"calls": len(reports), "understood": ok, "turns": len(resp),
            "p50": statistics.median(resp) if resp else float("nan"),
            "p95": pct(resp, 95) if resp else float("nan"),
            "asr_p50": statistics.median(asr) if asr else float("nan"),
            "wait_p50": statistics.median(wait) if wait else float("nan")}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-calls", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4, help="calls at once in part (a)")
    ap.add_argument("--steps", default="5,10,20,40")
    ap.add_argument("--spread", type=float, default=15.0,
                    help="seconds over which the N call starts are spread")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kanaal-bench-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine)
    seed_synthetic(engine, 3 * 400)
    engine.dispose()
    settings = replace(load_settings(env_file=None, environ={}), database_url=url,
                       data_dir=tmp, log_level="WARNING")
    clock = PinnedClock(demo_moment())
    rig = Rig()
    await asyncio.to_thread(rig.up)
    offset = 0

    async with voice_node(settings, rig=rig, clock=clock, hangup_after_s=60) as place:
        async def staggered(batch: list[VoiceCallSpec], spread: float) -> list[VoiceCallReport]:
            async def start(i: int, sp: VoiceCallSpec) -> VoiceCallReport:
                await asyncio.sleep(i * spread / len(batch))
                return await place(sp)
            return list(await asyncio.gather(*(start(i, sp) for i, sp in enumerate(batch))))

        print(f"(a) response latency over {args.latency_calls} calls, {args.batch} at a time")
        reports: list[VoiceCallReport] = []
        while len(reports) < args.latency_calls:
            n = min(args.batch, args.latency_calls - len(reports))
            reports += await staggered(specs(n, offset), 2.0 * n)
            offset += n
        s = summary(reports)
        print(f"    understood {s['understood']}/{s['calls']}; end of speech -> response "
              f"playback p50 {s['p50']:.0f} ms, p95 {s['p95']:.0f} ms (ASR decode p50 "
              f"{s['asr_p50']:.0f} ms); silence wait before end of speech p50 "
              f"{s['wait_p50']:.0f} ms")

        print("(b) concurrent calls (one warm node)")
        print(f"    {'calls':>5} {'ok':>4} {'p50 ms':>7} {'p95 ms':>7} {'node CPU s/call':>16} "
              f"{'asterisk CPU s/call':>20} {'node RSS MB':>12} {'wall s':>7}")
        for n in (int(x) for x in args.steps.split(",")):
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            ast0, t0 = asterisk_cpu_s(), time.monotonic()
            batch = await staggered(specs(n, offset), args.spread)
            offset += n
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            node_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            s = summary(batch)
            print(f"    {n:>5} {s['understood']:>4} {s['p50']:>7.0f} {s['p95']:>7.0f} "
                  f"{node_cpu / n:>16.2f} {(asterisk_cpu_s() - ast0) / n:>20.2f} "
                  f"{rss_mb():>12.0f} {time.monotonic() - t0:>7.0f}")
            if s["p95"] > 1000 or s["understood"] < n:
                print(f"    stopped: at {n} calls p95 {s['p95']:.0f} ms, "
                      f"{n - s['understood']} calls not understood")
                break


if __name__ == "__main__":
    asyncio.run(main())
