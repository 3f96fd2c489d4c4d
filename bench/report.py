"""30-day contact report on a million contacts, SQLite and PostgreSQL.

    .venv/bin/python bench/report.py [--contacts 1000000] [--days 90] [--reports 40]
                                     [--backend sqlite|postgresql|both] [--json]

Fills ``contacts`` with synthetic history (ivr.storage.report_seed: ``--days`` of
contacts ending "now" = 10:30 UTC, callers drawn from a pool so some repeat), then
times ``SqlReportStore.report_sync`` for the 30 days before now (target p95 <= 200 ms):
once cold (every closed day and hour gets rolled up), then ``--reports`` times warm,
each with the window start moved by a few minutes so partial hours are read raw, each
followed by the same 30 days again (the console refreshing its report). One
report over raw contacts only (no rollups) is timed for comparison. ``--json``
prints exactly one JSON document on stdout (progress and tables go to stderr).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import delete

from ivr.stats import percentile as pct
from ivr.storage.db import make_engine, upgrade
from ivr.storage.report_seed import seed_contacts, synthetic_contacts
from ivr.storage.reports import SqlReportStore
from ivr.storage.tables import report_buckets, report_rollups
from ivr.testing.postgres import start_postgres

NOW = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)


def say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def fill(url: str, n: int, days: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    done = [0]

    def progress(k: int) -> None:
        done[0] += k
        if done[0] % 100_000 < k:
            say(f"  seeded {done[0]:,} contacts ({time.perf_counter() - t0:.0f} s)")

    seed_contacts(engine, synthetic_contacts(n, end=NOW, days=days, callers=max(n // 5, 1)),
                  progress=progress)
    engine.dispose()


def measure(url: str, reports: int) -> dict[str, Any]:
    engine = make_engine(url)
    with engine.begin() as conn:  # start cold: no rollups from an earlier run
        conn.execute(delete(report_rollups))
        conn.execute(delete(report_buckets))
    store = SqlReportStore(engine, clock=lambda: NOW)
    since = NOW - timedelta(days=30)
    t0 = time.perf_counter()
    first = store.report_sync(since, NOW)
    cold_ms = (time.perf_counter() - t0) * 1000
    rng = random.Random(1)
    warm, fixed = [], []
    for _ in range(reports):
        start = since - timedelta(minutes=rng.randrange(0, 60))
        t0 = time.perf_counter()
        store.report_sync(start, NOW)
        warm.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()  # the console's "last 30 days", asked again
        store.report_sync(since, NOW)
        fixed.append((time.perf_counter() - t0) * 1000)
    # The same window without any rollup: what every report would cost without them.
    raw_store = SqlReportStore(engine, clock=lambda: since)
    t0 = time.perf_counter()
    raw = raw_store.report_sync(since, NOW)
    raw_ms = (time.perf_counter() - t0) * 1000
    assert raw.total == first.total, "rolled-up and raw reports disagree"
    engine.dispose()
    return {"contacts_in_window": first.as_dict()["contacts"], "cold_ms": round(cold_ms, 1),
            "warm_p50_ms": round(statistics.median(warm), 1),
            "warm_p95_ms": round(pct(warm, 95), 1), "warm_max_ms": round(max(warm), 1),
            "same_window_p50_ms": round(statistics.median(fixed), 1),
            "same_window_p95_ms": round(pct(fixed, 95), 1),
            "raw_only_ms": round(raw_ms, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=90, help="history the contacts spread over")
    ap.add_argument("--reports", type=int, default=40)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--sqlite-path", default="var/bench/report.db")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()
    results: dict[str, Any] = {}
    if args.backend in ("sqlite", "both"):
        path = Path(args.sqlite_path)
        marker = path.with_suffix(f".{args.contacts}.{args.days}.ok")
        if not marker.exists():  # cache the filled file between runs
            path.unlink(missing_ok=True)
            say(f"filling SQLite with {args.contacts:,} contacts")
            fill(f"sqlite:///{path.resolve()}", args.contacts, args.days)
            marker.touch()
        results["sqlite"] = measure(f"sqlite:///{path.resolve()}", args.reports)
    if args.backend in ("postgresql", "both"):
        server = start_postgres()
        try:
            url = server.create_database("bench")
            say(f"filling PostgreSQL with {args.contacts:,} contacts")
            fill(url, args.contacts, args.days)
            results["postgresql"] = measure(url, args.reports)
        finally:
            server.stop()
    doc = {"contacts": args.contacts, "days": args.days, "window_days": 30,
           "reports": args.reports, "target_p95_ms": 200, "results": results}
    if args.json:
        print(json.dumps(doc))
        return
    print(f"30-day report, {args.contacts:,} contacts over {args.days} days, "
          f"{args.reports} warm reports")
    print(f"{'backend':<12}{'in window':>10}{'cold ms':>10}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'max ms':>9}{'same p50':>10}{'same p95':>10}{'raw ms':>10}")
    for name, r in results.items():
        print(f"{name:<12}{r['contacts_in_window']:>10,}{r['cold_ms']:>10.0f}"
              f"{r['warm_p50_ms']:>9.1f}{r['warm_p95_ms']:>9.1f}{r['warm_max_ms']:>9.1f}"
              f"{r['same_window_p50_ms']:>10.1f}{r['same_window_p95_ms']:>10.1f}"
              f"{r['raw_only_ms']:>10.0f}")


if __name__ == "__main__":
    main()
