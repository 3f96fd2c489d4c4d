"""Real calls through the Asterisk rig: response latency and concurrency.

    .venv/bin/python bench/calls.py [--latency-calls 20] [--batch 4] [--steps 20,40,60,80,100]

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
import logging
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
from ivr.speech.vad import EndpointConfig
from ivr.stats import percentile as pct
from ivr.stats import rss_mb
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo, seed_synthetic, synthetic_number
from ivr.testing.rig import rig_from_env

UTTERANCES = ("where is my order", "what are your opening hours",
              "has my package been shipped", "when are you open")


def specs(n: int, offset: int) -> list[VoiceCallSpec]:
    # Synthetic customers with index % 3 == 0 speak English (seed_synthetic).
    return [VoiceCallSpec(say=UTTERANCES[i % len(UTTERANCES)],
                          from_number=synthetic_number(9 + 3 * (offset + i)))
            for i in range(n)]


def _cpu_and_name(proc_dir: str) -> tuple[float, str] | None:
    """(user + system CPU seconds, comm name) of a /proc process or task, None if gone."""
    try:
        with open(f"{proc_dir}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"{proc_dir}/comm") as fh:
            name = fh.read().strip()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), name


def asterisk_cpu_s() -> float:
    found = (_cpu_and_name(f"/proc/{pid}") for pid in os.listdir("/proc") if pid.isdigit())
    return sum(cpu for cpu, name in filter(None, found) if name == "asterisk")


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds of this process's threads: the event loop's vs the others, by name.

    Python threads all carry the process name, so the loop (the main thread)
    is told apart by its id."""
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        got = _cpu_and_name(f"/proc/self/task/{tid}")
        if got is None:
            continue
        cpu, name = got
        name = name.rstrip("0123456789_-").lower() or "?"
        if tid == str(os.getpid()):
            name = "event loop"
        elif name.startswith("python"):
            name = "worker threads"
        out[name] = out.get(name, 0.0) + cpu
    return out


async def loop_lag(out: list[float], every_s: float = 0.05) -> None:
    """How late the event loop wakes a sleeper (ms): its backlog under load."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(every_s)
        out.append(max(0.0, (time.monotonic() - t - every_s) * 1000))


def summary(reports: list[VoiceCallReport]) -> dict[str, float]:
    resp = [x for r in reports for x in r.response_ms]
    asr = [x for r in reports for x in r.asr_ms]
    ok = sum(1 for r in reports if r.contact and r.contact.intent)
    return {"calls": len(reports), "understood": ok, "turns": len(resp),
            "p50": statistics.median(resp) if resp else float("nan"),
            "p95": pct(resp, 95) if resp else float("nan"),
            "asr_p50": statistics.median(asr) if asr else float("nan")}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-calls", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4, help="calls at once in part (a)")
    ap.add_argument("--steps", default="20,40,60,80,100")
    ap.add_argument("--spread", type=float, default=15.0,
                    help="seconds over which the N call starts are spread")
    ap.add_argument("--log", type=Path, help="write the node's INFO log to this file")
    args = ap.parse_args()
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("ivr.telephony.ari.channel").setLevel(logging.DEBUG)
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
    rig = rig_from_env()
    await asyncio.to_thread(rig.up)
    offset = 0

    async with voice_node(settings, rig=rig, clock=clock, hangup_after_s=60) as line:
        place = line.place

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
              f"{s['asr_p50']:.0f} ms); before that the endpointer waits "
              f"{EndpointConfig().end_silence_ms} ms of trailing silence (not included)")
        order = sorted((x, i) for i, r in enumerate(reports) for x in r.response_ms)
        print("    slowest turns (ms, call #): "
              + ", ".join(f"{x:.0f} (#{i})" for x, i in order[::-1][:4]))

        print("(b) concurrent calls (one warm node)")
        print(f"    {'calls':>5} {'ok':>4} {'p50 ms':>7} {'p95 ms':>7} {'node CPU s/call':>16} "
              f"{'asterisk CPU s/call':>20} {'node RSS MB':>12} {'wall s':>7}")
        for n in (int(x) for x in args.steps.split(",") if x.strip()):
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            lags: list[float] = []
            lag_task = asyncio.create_task(loop_lag(lags))
            ast0, t0, thr0 = asterisk_cpu_s(), time.monotonic(), thread_cpu_s()
            batch = await staggered(specs(n, offset), args.spread)
            offset += n
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            lag_task.cancel()
            sipp_cpu = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
            node_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            s = summary(batch)
            print(f"    {n:>5} {s['understood']:>4} {s['p50']:>7.0f} {s['p95']:>7.0f} "
                  f"{node_cpu / n:>16.2f} {(asterisk_cpu_s() - ast0) / n:>20.2f} "
                  f"{rss_mb():>12.0f} {time.monotonic() - t0:>7.0f}")
            thr1 = thread_cpu_s()
            split = sorted(((thr1[k] - thr0.get(k, 0.0)) / n, k) for k in thr1)[::-1]
            print("      node CPU s/call by thread: " + ", ".join(
                f"{k} {v:.2f}" for v, k in split[:6] if v >= 0.005)
                + f"; SIPp callers (same machine) {sipp_cpu / n:.2f} s/call; event-loop lag "
                f"p99 {pct(lags, 99):.0f} ms, max {max(lags, default=0):.0f} ms")
            for r in batch:
                if not (r.contact and r.contact.intent):
                    d = r.as_dict()
                    print(f"      not understood: said {d['said']!r}, heard {d['transcript']}, "
                          f"outcome {d['outcome']}, error {d['error']}")
            stuck = [t for t in asyncio.all_tasks() if "StasisApp._call" in repr(t.get_coro())]
            for t in stuck[:3]:
                print(f"      call task still running after its caller hung up: {t.get_name()}")
                t.print_stack(limit=40)
            if s["p95"] > 1000 or s["understood"] < n:
                print(f"    stopped: at {n} calls p95 {s['p95']:.0f} ms, "
                      f"{n - s['understood']} calls not understood")
                break


if __name__ == "__main__":
    asyncio.run(main())
