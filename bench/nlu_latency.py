"""Intent matcher latency: per-language p50/p95/p99 with N calls asking at once,
and the event loop's longest stall meanwhile.

    .venv/bin/python bench/nlu_latency.py                    # 4 callers, en and nl
    .venv/bin/python bench/nlu_latency.py --callers 8 --json
    .venv/bin/python bench/nlu_latency.py --save-decisions /tmp/before.json
    .venv/bin/python bench/nlu_latency.py --check-decisions /tmp/before.json

The production matcher (``default_matcher``, machine-wide embedding cache) is
built once. Each language is timed twice on its heldout_g rows (the open test
set: in-scope, near-domain, far-off and junk requests, every text once):

* ``single``: one query at a time through ``predict`` (wall and process CPU
  time per query; CPU time is less swayed by other work on the machine);
* ``callers``: N calls at once through ``match`` (the bounded worker pool, as
  the flow calls it), each asking its next question when the last is answered,
  while a 5 ms ticker on the same event loop records how late it wakes
  (``loop_max_stall_ms``: the longest the loop was kept from running).

The answer cache for repeated words (``HybridIntentMatcher.match``) never hits
here: every text is asked once per run.

``--save-decisions``/``--check-decisions``: every routed/rejected outcome,
ranked intent and confidence on heldout_e, heldout_f and heldout_g in both
languages, written to or compared with a JSON file (exit 1 on any difference):
the proof that a speed change changed no decision.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.nlu.catalogue import load_catalogue  # noqa: E402
from ivr.nlu.matcher import HybridIntentMatcher, MatcherLimits, default_matcher  # noqa: E402

CACHE = Path.home() / ".cache" / "kanaal" / "nlu"  # the machine-wide embedding cache
DATA = ROOT / "tests" / "nlu" / "data"
DECISION_SETS = ("heldout_e", "heldout_f", "heldout_g")
TICK_S = 0.005


def texts_of(name: str, lang: str) -> list[str]:
    with (DATA / f"{name}_{lang}.csv").open(newline="", encoding="utf-8") as fh:
        return [r["text"] for r in csv.DictReader(fh)]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 3), "p95": round(pct(values, 0.95), 3),
            "p99": round(pct(values, 0.99), 3), "max": round(max(values), 3)}


def single(matcher: HybridIntentMatcher, lang: str, texts: list[str]) -> dict[str, Any]:
    """One query at a time through predict: wall and CPU ms per query."""
    for t in texts[:10]:  # warm-up (first runs allocate)
        matcher.predict(t, lang)
    wall: list[float] = []
    cpu: list[float] = []
    for t in texts:
        q0, c0 = time.perf_counter(), time.process_time()
        matcher.predict(t, lang)
        wall.append((time.perf_counter() - q0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"n": len(texts), "wall_ms": summary(wall), "cpu_ms": summary(cpu)}


def concurrent(matcher: HybridIntentMatcher, lang: str, texts: list[str],
               callers: int) -> dict[str, Any]:
    """``callers`` calls at once through match(), with a loop-lag ticker beside them."""
    per_caller = max(1, len(texts) // callers)
    lat: list[float] = []
    stalls: list[float] = []
    busy = 0

    async def call(k: int) -> None:
        nonlocal busy
        for j in range(per_caller):
            q0 = time.perf_counter()
            m = await matcher.match(texts[(k * per_caller + j) % len(texts)], lang)  # type: ignore[arg-type]
            lat.append((time.perf_counter() - q0) * 1000)
            busy += m.unavailable

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(TICK_S)
            stalls.append((time.perf_counter() - t0 - TICK_S) * 1000)

    async def run() -> float:
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        t0 = time.perf_counter()
        await asyncio.gather(*(call(k) for k in range(callers)))
        wall = time.perf_counter() - t0
        stop.set()
        await tick
        return wall

    wall_s = asyncio.run(run())
    return {"callers": callers, "n": len(lat), "latency_ms": summary(lat),
            "unavailable": busy, "queries_per_s": round(len(lat) / wall_s, 1),
            "loop_max_stall_ms": round(max(stalls, default=0.0), 3),
            "loop_p99_stall_ms": round(pct(stalls, 0.99), 3)}


def decisions(matcher: HybridIntentMatcher) -> dict[str, list[dict[str, Any]]]:
    """Per set and language, per row: rejected or not and the ranked confidences."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in DECISION_SETS:
        for lang in matcher.languages:
            texts = texts_of(name, lang)
            out[f"{name}_{lang}"] = [
                {"text": t, "oos": m.out_of_scope,
                 "ranked": [[s.intent, s.confidence] for s in m.ranked]}
                for t, m in zip(texts, (matcher.predict(t, lang) for t in texts), strict=True)]
    return out


def differences(before: dict[str, Any], after: dict[str, Any], tol: float
                ) -> tuple[list[str], dict[str, int]]:
    """Rows whose outcome, intents or confidences (beyond ``tol``) differ, and how
    many differ by kind: ``outcome`` (routed vs rejected), ``ranking`` (the
    ranked intents), ``confidence`` (only a confidence, beyond ``tol``)."""
    diffs: list[str] = []
    kinds = {"outcome": 0, "ranking": 0, "confidence": 0}
    for key, rows in before.items():
        for a, b in zip(rows, after.get(key, []), strict=False):
            if a["oos"] != b["oos"]:
                kind = "outcome"
            elif [r[0] for r in a["ranked"]] != [r[0] for r in b["ranked"]]:
                kind = "ranking"
            elif any(abs(x[1] - y[1]) > tol + 1e-9  # 4-digit values: no float noise
                     for x, y in zip(a["ranked"], b["ranked"], strict=True)):
                kind = "confidence"
            else:
                continue
            kinds[kind] += 1
            diffs.append(f"{key}: {kind}: {a['text']!r}: {a} -> {b}")
        if len(after.get(key, [])) != len(rows):
            kinds["outcome"] += 1
            diffs.append(f"{key}: {len(rows)} rows before, {len(after.get(key, []))} after")
    return diffs, kinds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--callers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=MatcherLimits().workers,
                    help="the matcher's worker threads (IVR_NLU_WORKERS)")
    ap.add_argument("--langs", default="en,nl")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--save-decisions", type=Path)
    ap.add_argument("--check-decisions", type=Path)
    ap.add_argument("--tolerance", type=float, default=1e-4,
                    help="confidence difference allowed (confidences are rounded to 4 digits)")
    args = ap.parse_args()
    say = (lambda *_: None) if args.json else print
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    matcher = default_matcher(load_catalogue(ROOT / "grammars"), cache_dir=CACHE,
                              limits=MatcherLimits(workers=args.workers, max_pending=64))
    say(f"matcher built in {time.perf_counter() - t0:.1f} s")
    report: dict[str, Any] = {"callers": args.callers, "workers": args.workers, "languages": {}}
    for lang in args.langs.split(","):
        texts = texts_of("heldout_g", lang)
        one = single(matcher, lang, texts)
        many = concurrent(matcher, lang, texts, args.callers)
        report["languages"][lang] = {"single": one, "concurrent": many}
        w, c, m = one["wall_ms"], one["cpu_ms"], many["latency_ms"]
        say(f"{lang}: one at a time p50/p95/p99 {w['p50']:.2f} / {w['p95']:.2f} / {w['p99']:.2f} ms"
            f" (CPU {c['p50']:.2f} / {c['p95']:.2f} / {c['p99']:.2f} ms); {args.callers} callers "
            f"p50/p95/p99 {m['p50']:.2f} / {m['p95']:.2f} / {m['p99']:.2f} ms, "
            f"{many['queries_per_s']} queries/s, unavailable {many['unavailable']}, "
            f"event loop max stall {many['loop_max_stall_ms']:.2f} ms")
    report["load_average"] = {"start": [round(x, 2) for x in load_start],
                              "end": [round(x, 2) for x in os.getloadavg()]}
    start, end = (" / ".join(map(str, report["load_average"][k])) for k in ("start", "end"))
    say(f"load average (1/5/15 min) at start {start}, at end {end}; {os.cpu_count()} cores")
    rc = 0
    if args.save_decisions or args.check_decisions:
        got = decisions(matcher)
        if args.save_decisions:
            args.save_decisions.write_text(json.dumps(got, ensure_ascii=False, indent=0))
            say(f"decisions on {sum(map(len, got.values()))} rows saved to {args.save_decisions}")
        if args.check_decisions:
            diffs, kinds = differences(json.loads(args.check_decisions.read_text()), got,
                                       args.tolerance)
            report["decision_differences"] = kinds
            for d in diffs[:20]:
                say("DIFFERS " + d)
            say(f"decisions on {sum(map(len, got.values()))} rows: {len(diffs)} differ "
                f"({', '.join(f'{k} {v}' for k, v in kinds.items())}; confidences within "
                f"{args.tolerance} count as equal)")
            rc = 1 if diffs else 0
    matcher.close()
    if args.json:
        print(json.dumps(report))
    return rc


if __name__ == "__main__":
    sys.exit(main())
