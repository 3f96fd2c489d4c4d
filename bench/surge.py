"""Surge detection on a synthetic month: detection delay, false alarms, cost per event.

    .venv/bin/python bench/surge.py [--weeks-history 3] [--days 30] [--calls-per-day 4000]
                                    [--surges 10] [--seed 7] [--realtime-minutes 30]
                                    [--speed 100] [--json]

Synthetic traffic: 14 Dutch regions of different sizes, a daily shape (quiet nights,
a 09:00-11:00 peak, a lunch dip, evenings), a weekly one (Monday the busiest day,
weekends a third), a few per cent of calls about faults, Poisson arrivals. The first
``--weeks-history`` weeks are learned as contact history (``SurgeDetector.learn``),
then ``--days`` days are replayed with ``--surges`` injected surges: 20-60 minutes of
3-10 extra calls a minute from one region (the issue's check: 30 calls
within a few minutes), 80 % about faults (one on a Monday 09:00
peak, one at night, one in the smallest region).

Reports, per injected surge, the detection delay after onset (target <= 2 min) and
the end after the surge stopped; false alarms per week (a region surge that overlaps
no injected surge; target 0); intent alerts; and the detector's cost per call event
(µs). The detector has no clock of its own (time comes with the events), so the
month is replayed as fast as the CPU allows; ``--realtime-minutes`` then replays the
minutes around one surge through the real service (flow-event observer, outage board
on a SQLite file, supervisor push) paced at ``--speed`` x real time, and reports when
the announcement went on, in simulated minutes after onset.

``--json`` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.domain.surge import SurgeConfig, SurgeDetector, SurgeEnded, SurgeStarted

REGIONS = {  # relative size (share of calls)
    "Amsterdam": 18, "Rotterdam": 14, "Den Haag": 11, "Utrecht": 9, "Eindhoven": 7,
    "Groningen": 6, "Tilburg": 5, "Almere": 5, "Breda": 5, "Nijmegen": 5, "Arnhem": 5,
    "Zwolle": 4, "Leeuwarden": 3, "Middelburg": 3,
}
INTENTS = {  # normal mix; fault intents are a small share
    "order_status": 20, "invoice_question": 14, "opening_hours": 6, "address_change": 8,
    "password_reset": 8, "tech_support_app": 8, "product_question": 8, "complaint": 5,
    "cancel_contract": 5, "tech_support_internet": 5, "report_fault": 3, "outage_info": 2,
    "speak_to_agent": 8,
}
SURGE_INTENTS = {"report_fault": 45, "outage_info": 35, "tech_support_internet": 10,
                 "speak_to_agent": 10}
# Share of a day's calls per hour (local time): quiet nights, morning peak, lunch dip.
HOUR_SHAPE = [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 2.0, 5.0, 8.0, 8.5, 7.5, 5.5, 6.0, 7.0,
              6.5, 6.0, 5.5, 4.0, 3.5, 3.0, 2.0, 1.0, 0.5]
DAY_SHAPE = [1.45, 1.1, 1.0, 1.0, 0.95, 0.35, 0.3]  # Monday .. Sunday
START = datetime(2026, 9, 7, 0, 0, tzinfo=UTC)  # a Monday (UTC; slots are local time)


@dataclass(frozen=True)
class Surge:
    region: str
    start: datetime
    minutes: int
    per_minute: float


def poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def traffic(rng: random.Random, start: datetime, days: int, per_day: float,
            surges: list[Surge]) -> list[tuple[datetime, str, str]]:
    """Every call (time, region, intent) of ``days`` days, surges included, sorted."""
    norm = sum(HOUR_SHAPE)
    total = sum(REGIONS.values())
    calls: list[tuple[datetime, str, str]] = []
    for h in range(days * 24):
        at = start + timedelta(hours=h)
        local = at.astimezone(_TZ)
        lam = per_day * DAY_SHAPE[local.weekday()] * HOUR_SHAPE[local.hour] / norm
        for region, size in REGIONS.items():
            for _ in range(poisson(rng, lam * size / total)):
                calls.append((at + timedelta(seconds=rng.random() * 3600), region,
                              pick(rng, INTENTS)))
    for s in surges:
        t = s.start
        end = s.start + timedelta(minutes=s.minutes)
        while True:
            t += timedelta(seconds=rng.expovariate(s.per_minute / 60.0))
            if t >= end:
                break
            calls.append((t, s.region, pick(rng, SURGE_INTENTS)))
    calls.sort(key=lambda c: c[0])
    return calls


def plan_surges(rng: random.Random, start: datetime, days: int, n: int) -> list[Surge]:
    """``n`` surges spread over the month: a Monday 09:00 peak, a night, the smallest
    region, the rest at random daytime hours; never two in one region within a day."""
    smallest = min(REGIONS, key=lambda r: REGIONS[r])
    fixed = [
        Surge("Amsterdam", _local(start, 7, 9, 5), 45, 6.0),  # second Monday, peak hour
        Surge("Groningen", _local(start, 10, 2, 30), 30, 3.0),  # a night
        Surge(smallest, _local(start, 15, 14, 10), 30, 4.0),
    ]
    out = fixed[:n]
    while len(out) < n:
        day = rng.randrange(1, days - 1)
        s = Surge(pick(rng, dict.fromkeys(REGIONS, 1)),
                  _local(start, day, rng.randrange(8, 20), rng.randrange(0, 60)),
                  rng.choice((20, 30, 45, 60)), rng.choice((4.0, 6.0, 8.0, 10.0)))
        if all(abs((s.start - o.start).total_seconds()) > 86400 or s.region != o.region
               for o in out):
            out.append(s)
    return sorted(out, key=lambda s: s.start)


_TZ = datetime.now().astimezone().tzinfo  # replaced in main() by the configured zone


def _local(start: datetime, day: int, hour: int, minute: int) -> datetime:
    d = (start + timedelta(days=day)).astimezone(_TZ)
    return d.replace(hour=hour, minute=minute, second=0, microsecond=0)


def score(changes: list[tuple[datetime, Any]], surges: list[Surge], weeks: float
          ) -> dict[str, Any]:
    per: list[dict[str, Any]] = []
    matched: set[int] = set()
    for s in surges:
        stop = s.start + timedelta(minutes=s.minutes)
        hit = next((i for i, (_, c) in enumerate(changes) if isinstance(c, SurgeStarted)
                    and c.region == s.region and s.start <= c.at <= stop), None)
        end = None
        if hit is not None:
            matched.add(hit)
            end = next((c for _, c in changes[hit:] if isinstance(c, SurgeEnded)
                        and c.key == changes[hit][1].key), None)
        started = changes[hit][1] if hit is not None else None
        per.append({
            "region": s.region, "onset": s.start.isoformat(), "minutes": s.minutes,
            "extra_per_minute": s.per_minute,
            "detected": started is not None,
            "delay_s": round((started.at - s.start).total_seconds(), 1) if started else None,
            "calls_at_detection": started.calls if started else None,
            "expected_at_detection": started.expected if started else None,
            "ended_after_stop_s": round((end.at - stop).total_seconds(), 1) if end else None,
        })
    false_alarms = [c for i, (_, c) in enumerate(changes) if isinstance(c, SurgeStarted)
                    and c.region is not None and i not in matched]
    intent_alerts = [c for _, c in changes if isinstance(c, SurgeStarted) and c.region is None]
    during = [c for c in intent_alerts if any(
        s.start <= c.at <= s.start + timedelta(minutes=s.minutes + 10) for s in surges)]
    delays = [p["delay_s"] for p in per if p["delay_s"] is not None]
    return {
        "surges": per,
        "detected": sum(p["detected"] for p in per),
        "delay_max_s": max(delays) if delays else None,
        "delay_median_s": sorted(delays)[len(delays) // 2] if delays else None,
        "false_alarms": len(false_alarms),
        "false_alarms_per_week": round(len(false_alarms) / weeks, 2),
        "false_alarm_list": [{"region": c.region, "at": c.at.isoformat(), "calls": c.calls,
                              "expected": c.expected} for c in false_alarms],
        "intent_alerts": len(intent_alerts),
        "intent_alerts_outside_surges": len(intent_alerts) - len(during),
        "intent_alert_list": [{"key": c.key, "at": c.at.isoformat(), "calls": c.calls}
                              for c in intent_alerts],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    global _TZ
    from zoneinfo import ZoneInfo

    cfg = SurgeConfig(min_calls=args.min_calls)
    _TZ = ZoneInfo(cfg.timezone)
    rng = random.Random(args.seed)
    history_days = args.weeks_history * 7
    history = traffic(rng, START, history_days, args.calls_per_day, [])
    month_start = START + timedelta(days=history_days)
    surges = plan_surges(rng, month_start, args.days, args.surges)
    month = traffic(rng, month_start, args.days, args.calls_per_day, surges)

    det = SurgeDetector(cfg)
    t0 = time.perf_counter()
    det.learn(history)
    learn_s = time.perf_counter() - t0
    changes: list[tuple[datetime, Any]] = []
    t0 = time.perf_counter()
    tick_every = timedelta(seconds=30)  # the service ticks the detector on a timer
    next_tick = month[0][0] + tick_every
    for at, region, intent in month:
        while at >= next_tick:
            changes.extend((next_tick, c) for c in det.tick(next_tick))
            next_tick += tick_every
        for c in det.observe(at, region, intent):
            changes.append((at, c))
    elapsed = time.perf_counter() - t0
    # Let the last surge end.
    for c in det.tick(month[-1][0] + timedelta(hours=1)):
        changes.append((month[-1][0], c))
    result = score(changes, surges, args.days / 7)
    result.update({
        "history_calls": len(history), "history_weeks": args.weeks_history,
        "month_calls": len(month), "days": args.days,
        "us_per_event": round(elapsed / len(month) * 1e6, 2),
        "learn_s": round(learn_s, 2),
        "learned_share": round(det.learned_share(), 3),
        "config": {"window_s": cfg.window_s, "ratio": cfg.ratio, "min_calls": cfg.min_calls,
                   "z": cfg.z, "fault_share": cfg.fault_share, "alpha": cfg.alpha,
                   "end_hold_s": cfg.end_hold_s},
    })
    if args.realtime_minutes > 0:
        result["realtime"] = asyncio.run(realtime(args, history, month, surges))
    return result


async def realtime(args: argparse.Namespace, history: list[tuple[datetime, str, str]],
                   month: list[tuple[datetime, str, str]], surges: list[Surge]
                   ) -> dict[str, Any]:
    """Replay minutes around the first surge through SurgeService + SQLite at ``speed``x."""
    from ivr.outages.surge import SurgeService, SurgeSettings
    from ivr.storage.db import make_engine, upgrade
    from ivr.storage.outages import SqlOutageBoard

    s = surges[0]
    begin = s.start - timedelta(minutes=args.realtime_minutes / 3)
    end = begin + timedelta(minutes=args.realtime_minutes)
    window = [c for c in month if begin <= c[0] < end]
    before = [c for c in month if c[0] < begin]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/surge.db"
        upgrade(url)
        engine = make_engine(url)
        board = SqlOutageBoard(engine)
        det = SurgeDetector(SurgeConfig(min_calls=args.min_calls))
        det.learn(history + before)
        announced: list[float] = []
        service = SurgeService(det, board, SurgeSettings(auto_activate=True))
        service.on_change.append(lambda change: announced.append(time.perf_counter()))
        wall0 = time.perf_counter()
        for at, region, intent in window:
            due = wall0 + (at - begin).total_seconds() / args.speed
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await service.record_call(at, region, intent)
            await service.drain()
        wall = time.perf_counter() - wall0
        heard = await board.listing()
        engine.dispose()
    first = (announced[0] - wall0) * args.speed if announced else None
    onset = (s.start - begin).total_seconds()
    return {
        "region": s.region, "speed": args.speed, "simulated_minutes": args.realtime_minutes,
        "calls": len(window), "wall_s": round(wall, 1),
        "announcement_after_onset_s": round(first - onset, 1) if first is not None else None,
        "outages_created": [{"id": o.id, "regions": list(o.regions), "status": o.status.value,
                             "source": o.source.value} for o in heard],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weeks-history", type=int, default=3)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--calls-per-day", type=float, default=4000)
    ap.add_argument("--surges", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--min-calls", type=int, default=SurgeConfig().min_calls,
                    help="IVR_SURGE_MIN_CALLS: calls in a window before anything is a surge")
    ap.add_argument("--realtime-minutes", type=float, default=0.0,
                    help="also replay this many minutes around the first surge through the "
                         "real service (SQLite) at --speed x real time")
    ap.add_argument("--speed", type=float, default=100.0)
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"history: {result['history_calls']} calls over {result['history_weeks']} weeks "
          f"(learned in {result['learn_s']} s); month: {result['month_calls']} calls over "
          f"{result['days']} days")
    print(f"{'region':<12} {'onset (local)':<17} {'min':>4} {'+/min':>5} {'delay':>7} "
          f"{'calls':>5} {'expect':>6} {'end after stop':>14}")
    for p in result["surges"]:
        onset = datetime.fromisoformat(p["onset"]).strftime("%a %d %H:%M")
        delay = f"{p['delay_s']:.0f} s" if p["delay_s"] is not None else "missed"
        endd = f"{p['ended_after_stop_s']:.0f} s" if p["ended_after_stop_s"] is not None else "-"
        print(f"{p['region']:<12} {onset:<17} {p['minutes']:>4} {p['extra_per_minute']:>5} "
              f"{delay:>7} {p['calls_at_detection'] or '-':>5} "
              f"{p['expected_at_detection'] if p['expected_at_detection'] is not None else '-':>6}"
              f" {endd:>14}")
    print(f"detected {result['detected']}/{len(result['surges'])}; delay median "
          f"{result['delay_median_s']} s, max {result['delay_max_s']} s (target <= 120 s)")
    print(f"false alarms: {result['false_alarms']} ({result['false_alarms_per_week']} per "
          f"week; target 0); intent alerts (alert only, no announcement): "
          f"{result['intent_alerts']}, {result['intent_alerts_outside_surges']} outside "
          f"the injected surges")
    for fa in result["false_alarm_list"]:
        print(f"  false alarm {fa}")
    print(f"cost: {result['us_per_event']} µs per call event")
    if "realtime" in result:
        rt = result["realtime"]
        print(f"real service at {rt['speed']:.0f}x: {rt['calls']} calls in {rt['wall_s']} s; "
              f"announcement {rt['announcement_after_onset_s']} s (simulated) after onset; "
              f"outages {rt['outages_created']}")


if __name__ == "__main__":
    main()
