"""CLI -> customer lookup latency with N synthetic customers, SQLite and PostgreSQL.

    .venv/bin/python bench/lookup.py [--customers 1000000] [--lookups 20000] [--backend both]

Prints p50/p95/p99/max per backend (target p99 <= 1 ms) for hits and misses,
through the same SqlCustomerDirectory the call flow uses (sync path, i.e. the
work a worker thread does; add ~50 us for the asyncio.to_thread hop).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.storage.db import make_engine, upgrade
from ivr.storage.repositories import SqlCustomerDirectory
from ivr.storage.seed import seed_demo, seed_synthetic, synthetic_number
from ivr.testing.postgres import start_postgres


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def fill(url: str, n: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(f"seeding {n:,}", total=n)
        seed_synthetic(engine, n, progress=lambda k: bar.advance(task, k))
    engine.dispose()


def measure(url: str, n: int, lookups: int) -> dict[str, float]:
    engine = make_engine(url)
    directory = SqlCustomerDirectory(engine)
    rng = random.Random(42)
    for _ in range(500):  # warm the pool and caches
        directory.lookup_number(synthetic_number(rng.randrange(9, n)))
    hits, misses = [], []
    for i in range(lookups):
        if i % 10 == 0:
            number = f"+4420{rng.randrange(10**7, 10**8)}"
            t0 = time.perf_counter_ns()
            assert directory.lookup_number(number) is None
            misses.append((time.perf_counter_ns() - t0) / 1e6)
        else:
            idx = rng.randrange(9, 9 + n)
            t0 = time.perf_counter_ns()
            c = directory.lookup_number(synthetic_number(idx))
            hits.append((time.perf_counter_ns() - t0) / 1e6)
            assert c is not None and c.id == idx
    engine.dispose()
    return {"p50": statistics.median(hits), "p95": pct(hits, 95), "p99": pct(hits, 99),
            "max": max(hits), "miss_p99": pct(misses, 99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=20_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--sqlite-path", default="var/bench/lookup.db")
    args = ap.parse_args()
    results = {}
    if args.backend in ("sqlite", "both"):
        path = Path(args.sqlite_path)
        marker = path.with_suffix(f".{args.customers}.ok")
        if not marker.exists():  # cache the filled file between runs
            path.unlink(missing_ok=True)
            fill(f"sqlite:///{path.resolve()}", args.customers)
            marker.touch()
        results["sqlite"] = measure(f"sqlite:///{path.resolve()}", args.customers, args.lookups)
    if args.backend in ("postgresql", "both"):
        server = start_postgres()
        try:
            url = server.create_database("bench")
            fill(url, args.customers)
            results["postgresql"] = measure(url, args.customers, args.lookups)
        finally:
            server.stop()
    print(f"\nCLI -> customer lookup, {args.customers:,} customers, {args.lookups:,} lookups")
    print(f"{'backend':<12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'miss p99':>10}")
    for name, r in results.items():
        print(f"{name:<12}{r['p50']:>9.3f}{r['p95']:>9.3f}{r['p99']:>9.3f}{r['max']:>9.2f}"
              f"{r['miss_p99']:>10.3f}")


if __name__ == "__main__":
    main()
