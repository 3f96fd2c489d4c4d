"""CLI -> customer lookup latency with N synthetic customers, SQLite and PostgreSQL;
with ``--contacts``, the screen-pop and timeline queries on that much contact history.

    .venv/bin/python bench/lookup.py [--customers 1000000] [--lookups 20000] [--backend both]
    .venv/bin/python bench/lookup.py --customers 10000000 --contacts 10000000 --in-flight 50

Prints p50/p95/p99/max per backend (targets: lookup p99 <= 1 ms; screen-pop and
timeline p99 < 20 ms) through the adapters the node uses. ``--in-flight 1`` (default)
times the sync lookup, i.e. the work a worker thread does; ``--in-flight N`` keeps N
lookups running at once through the async path (``find_by_number``: thread hop and
connection pool included) and also reports the time inside the worker thread, so a
queueing tail (N lookups on a few threads) is told apart from a slow query.

Before timing, the tables are read into memory (``--cold`` skips it): a production
database server holds its hot set in RAM, a freshly started one reads the disk.
Filled databases are cached under ``--cache-dir`` (default var/bench): SQLite files and
a PostgreSQL cluster per size, so reruns skip the fill (10 M rows take long to write).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from sqlalchemy import Engine, func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.clock import PinnedClock
from ivr.stats import percentile as pct
from ivr.storage.db import make_engine, upgrade
from ivr.storage.report_seed import synthetic_contacts
from ivr.storage.repositories import SqlContactLog, SqlCustomerDirectory, SqlKnowledgeBase
from ivr.storage.seed import (
    SYNTHETIC_BASE_NO,
    SYNTHETIC_BASE_NUMBER,
    seed_demo,
    synthetic_number,
)
from ivr.storage.tables import contacts, customer_numbers
from ivr.storage.tables import customers as customers_t
from ivr.storage.timeline import SqlTimeline
from ivr.testing.postgres import start_postgres
from ivr.web.app import customer_card_of

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
FIRST = 9  # seed_demo's customers come first; synthetic ids start here


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(ms), "p95": pct(ms, 95), "p99": pct(ms, 99),
            "max": max(ms), "n": len(ms)}


def _contact_rows(n: int, customers: int) -> Iterator[dict[str, Any]]:
    """Contacts over 365 days, each of a synthetic customer calling from their number."""
    rng = random.Random(11)
    for row in synthetic_contacts(n, end=NOW, days=365, callers=max(customers, 1)):
        cid = rng.randrange(FIRST, FIRST + customers)
        row.update(customer_id=cid, caller=synthetic_number(cid))
        yield row


_REGIONS = ("Utrecht", "Amsterdam", "Rotterdam", "Eindhoven", "Groningen", "Leeds", "London")
_TIERS = ("standard",) * 8 + ("gold", "platinum")
_BATCH = 200_000  # rows per transaction (SQLite) / per COPY progress tick (PostgreSQL)


def _customer_rows(start: int, n: int) -> Iterator[tuple[Any, ...]]:
    """The rows ``seed_synthetic`` writes, as tuples in ``customers`` column order."""
    for i in range(start, start + n):
        yield (i, str(SYNTHETIC_BASE_NO + i), f"Customer {i}", "nl" if i % 3 else "en",
               _REGIONS[i % len(_REGIONS)], f"{1000 + i % 9000}AB", _TIERS[i % len(_TIERS)],
               None, "sms")


_CUSTOMER_COLS = ("id", "customer_no", "name", "language", "region", "postcode", "tier",
                  "pin_hash", "preferred_channel")


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _fill_sqlite(engine: Engine, start: int, customers: int,
                 advance: Callable[[str, int], None]) -> None:
    """executemany in big transactions through SQLAlchemy (its type processors)."""
    for batch in _chunks(_customer_rows(start, customers), _BATCH):
        with engine.begin() as conn:
            conn.execute(insert(customers_t),
                         [dict(zip(_CUSTOMER_COLS, r, strict=True)) for r in batch])
            conn.execute(insert(customer_numbers), [
                {"number": synthetic_number(r[0]), "customer_id": r[0], "kind": "mobile"}
                for r in batch])
        advance("customers", len(batch))


def _fill_postgres(engine: Engine, start: int, customers: int,
                   advance: Callable[[str, int], None]) -> None:
    """COPY FROM STDIN (psycopg), one COPY per table."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY customers ({', '.join(_CUSTOMER_COLS)}) FROM STDIN") as copy:
            for batch in _chunks(_customer_rows(start, customers), _BATCH):
                for row in batch:
                    copy.write_row(row)
                advance("customers", len(batch))
        with cur.copy("COPY customer_numbers (number, customer_id, kind) FROM STDIN") as copy:
            for i in range(start, start + customers):
                copy.write_row((synthetic_number(i), i, "mobile"))
        raw.commit()
    finally:
        raw.close()


def fill(url: str, customers: int, contacts_n: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine)
    with engine.begin() as conn:
        start = (conn.execute(select(func.max(customers_t.c.id))).scalar() or 0) + 1
    assert start == FIRST, start
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:  # stdout: the figures only
        task = bar.add_task(f"customers {customers:,}", total=customers)
        with engine.begin() as conn:
            for idx in customer_numbers.indexes:
                idx.drop(conn, checkfirst=True)  # a cut run may have dropped it
        filler = _fill_sqlite if engine.dialect.name == "sqlite" else _fill_postgres
        filler(engine, start, customers, lambda _name, k: bar.advance(task, k))
        with engine.begin() as conn:
            for idx in customer_numbers.indexes:
                idx.create(conn)
    engine.dispose()
    add_contacts(url, customers, contacts_n)


_TEMPLATES = 4096  # distinct contact rows, repeated with their own id, customer and time


def _templates(engine: Engine, customers: int) -> None:
    """``bench_tpl``: the report seed's varied contacts (intents, outcomes, steps, agent
    figures) with a question and a transcript, so rows are the size the node writes."""
    rows = []
    for k, row in enumerate(_contact_rows(_TEMPLATES, customers)):
        topic = (row['intent'] or 'account').replace('_', ' ')
        question = f"I have a question about my {topic} ({k})"
        row.update(id=f"tpl-{k:05d}", question=question, transcript=[
            "ivr: Welcome to Kanaal. In a few words, how can I help you?",
            f"caller: {question}", "ivr: One moment, I will put you through.",
            "ivr: You are number 2 in the queue."])
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_tpl"))
        conn.execute(insert(contacts), rows)
        conn.execute(text("CREATE TABLE bench_tpl AS SELECT c.*, "
                          "row_number() OVER (ORDER BY c.id) - 1 AS k "
                          "FROM contacts c WHERE c.id LIKE 'tpl-%'"))
        conn.execute(text("DELETE FROM contacts WHERE id LIKE 'tpl-%'"))


def _contacts_sql(dialect: str, customers: int, n: int) -> str:
    """One INSERT ... SELECT over a generated series: the database writes the rows itself
    (the Python path managed about 4 M rows in 45 minutes on this machine). Contact g
    belongs to a customer scattered by a multiplicative hash, calls from that customer's
    number and starts at an even step through the 365 days before NOW."""
    cols = [c.name for c in contacts.c]
    own = {"id", "caller", "customer_id", "started_at", "ended_at"}
    copied = ", ".join(f"t.{c}" for c in cols if c not in own)
    cid = f"({FIRST} + (g.i * 2654435761) % {customers})"
    step_s = 365 * 86400 / max(n, 1)
    if dialect == "sqlite":
        series = (f"WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g "
                  f"WHERE i < {n - 1}) ")
        start = f"strftime('%Y-%m-%d %H:%M:%f', '{NOW:%Y-%m-%d %H:%M:%S}', '-365 days', " \
                f"'+' || (g.i * {step_s!r}) || ' seconds')"
        end = f"strftime('%Y-%m-%d %H:%M:%f', {start}, '+240 seconds')"
        caller = f"'+' || ({SYNTHETIC_BASE_NUMBER} + {cid})"
        source = "g"
    else:
        series = ""
        start = (f"(timestamptz '{NOW.isoformat()}' - interval '365 days' "
                 f"+ g.i * interval '{step_s!r} seconds')")
        end = f"({start} + interval '240 seconds')"
        caller = f"'+' || ({SYNTHETIC_BASE_NUMBER} + {cid})::text"
        source = f"generate_series(0::bigint, {n - 1}) AS g(i)"
    return (f"{series}INSERT INTO contacts (id, caller, customer_id, started_at, ended_at, "
            f"{', '.join(c for c in cols if c not in own)}) "
            f"SELECT 'bench-' || g.i, {caller}, {cid}, {start}, {end}, {copied} "
            f"FROM {source} JOIN bench_tpl t ON t.k = g.i % {_TEMPLATES}")


def add_contacts(url: str, customers: int, contacts_n: int) -> None:
    """``contacts_n`` contacts of the ``customers`` synthetic customers, in SQL."""
    if contacts_n <= 0:
        return
    engine = make_engine(url)
    t0 = time.monotonic()
    with engine.begin() as conn:
        for idx in contacts.indexes:
            idx.drop(conn, checkfirst=True)  # a cut run may have dropped it
    _templates(engine, customers)
    with engine.begin() as conn:
        conn.execute(text(_contacts_sql(engine.dialect.name, customers, contacts_n)))
        conn.execute(text("DROP TABLE bench_tpl"))
    filled = time.monotonic() - t0
    with engine.begin() as conn:
        for idx in contacts.indexes:
            idx.create(conn)
        conn.execute(text("ANALYZE"))
    print(f"{contacts_n:,} contacts written in {filled:.0f} s, indexed and analysed in "
          f"{time.monotonic() - t0 - filled:.0f} s", file=sys.stderr)
    engine.dispose()


def measure_sync(directory: SqlCustomerDirectory, n: int, lookups: int) -> dict[str, Any]:
    rng = random.Random(42)
    hits, misses, cpu = [], [], []
    for i in range(lookups):
        if i % 10 == 0:
            number = f"+4420{rng.randrange(10**7, 10**8)}"
            t0 = time.perf_counter_ns()
            assert directory.lookup_number(number) is None
            misses.append((time.perf_counter_ns() - t0) / 1e6)
        else:
            idx = rng.randrange(FIRST, FIRST + n)
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            c = directory.lookup_number(synthetic_number(idx))
            hits.append((time.perf_counter_ns() - t0) / 1e6)
            cpu.append((time.thread_time_ns() - c0) / 1e6)
            assert c is not None and c.id == idx
    # CPU time of this thread per lookup: on a loaded machine the wall time is mostly
    # waiting for a core; the CPU time is what the query itself costs (the PostgreSQL
    # server's share is not in it).
    return {**summary(hits), "miss_p99": pct(misses, 99), "cpu": summary(cpu)}


async def in_flight(jobs: list[Callable[[], Awaitable[object]]], width: int) -> list[float]:
    """Run ``jobs`` with ``width`` at once; each one's latency in ms (queueing included)."""
    sem = asyncio.Semaphore(width)
    out: list[float] = []

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with sem:
            t0 = time.perf_counter_ns()
            await job()
            out.append((time.perf_counter_ns() - t0) / 1e6)

    await asyncio.gather(*(one(j) for j in jobs))
    return out


async def measure_async(directory: SqlCustomerDirectory, n: int, lookups: int,
                        width: int) -> dict[str, Any]:
    rng = random.Random(42)
    inside: list[float] = []

    def timed(number: str) -> object:  # runs in the worker thread
        t0 = time.perf_counter_ns()
        found = directory.lookup_number(number)
        inside.append((time.perf_counter_ns() - t0) / 1e6)
        return found

    async def lookup(idx: int) -> None:
        c = await directory._run(lambda: timed(synthetic_number(idx)))
        assert c is not None and getattr(c, "id", None) == idx

    ids = [rng.randrange(FIRST, FIRST + n) for _ in range(lookups)]
    total = await in_flight([lambda i=i: lookup(i) for i in ids], width)
    return {**summary(total), "query": summary(inside)}


async def measure_history(url: str, customers: int, samples: int,
                          width: int) -> dict[str, Any]:
    """Screen-pop (contact + customer card) and timeline queries on random customers."""
    engine = make_engine(url)
    contacts = SqlContactLog(engine)
    app = type("BenchApp", (), {
        "engine": engine, "directory": SqlCustomerDirectory(engine), "contacts": contacts,
        "knowledge": SqlKnowledgeBase(engine), "clock": PinnedClock(NOW)})()
    card = customer_card_of(app)
    timeline = SqlTimeline(engine)
    rng = random.Random(5)
    sessions = []
    for _ in range(samples):  # contacts to pop: the latest of random customers
        history = await contacts.history(
            customer_id=rng.randrange(FIRST, FIRST + customers), limit=1)
        if history:
            sessions.append((history[0].id, history[0].customer_id))

    async def pop(session: str, customer_id: int) -> None:
        assert await contacts.get(session) is not None
        assert await card(customer_id) is not None

    pops = await in_flight([lambda s=s, c=c: pop(s, c) for s, c in sessions], width)
    ids = [rng.randrange(FIRST, FIRST + customers) for _ in range(samples)]
    lines = await in_flight([lambda c=c: timeline.timeline(c, 50) for c in ids], width)
    engine.dispose()
    return {"screenpop": summary(pops), "timeline": summary(lines)}


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def warm(engine: Engine) -> str:
    """Bring the tables into memory before timing, as on a database server whose RAM
    holds its hot set: the first pass over 10 M random rows of a freshly started
    cluster reads the disk (PostgreSQL p50 4.4 ms cold vs well under 1 ms warm), and
    that is a disk benchmark, not the lookup's. Returns what was warmed, for the log."""
    t0 = time.monotonic()
    if engine.dialect.name == "sqlite":
        path = Path(str(engine.url.database))
        if path.stat().st_size > _mem_available() // 2:
            return f"not warmed ({path.stat().st_size / 2**30:.1f} GB file, too big)"
        with path.open("rb") as fh:  # the OS page cache is SQLite's memory
            while fh.read(8 << 20):
                pass
        return f"file read in {time.monotonic() - t0:.0f} s"
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
        rels = conn.execute(text(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "AND c.relkind IN ('r', 'i') AND (c.relname LIKE '%customer%' "
            "OR c.relname LIKE '%contacts%') ORDER BY 2")).all()
        budget, names = _mem_available() // 2, []
        for name, size in rels:  # smallest first, as long as half the free RAM holds
            if size > budget:
                break
            budget -= size
            names.append(name)  # 'read': into the OS cache, shared_buffers is small
            conn.execute(text("SELECT pg_prewarm(:r, 'read')"), {"r": name})
    return (f"{len(names)} of {len(rels)} relations prewarmed in "
            f"{time.monotonic() - t0:.0f} s")


def run_backend(url: str, args: argparse.Namespace) -> dict[str, Any]:
    engine = make_engine(url)
    if not args.cold:
        print(f"{engine.dialect.name}: {warm(engine)}", file=sys.stderr)
    directory = SqlCustomerDirectory(engine)
    rng = random.Random(1)
    for _ in range(500):  # warm the pool and caches
        directory.lookup_number(synthetic_number(rng.randrange(FIRST, FIRST + args.customers)))
    result: dict[str, Any] = {}
    if args.in_flight <= 1:
        result["lookup"] = measure_sync(directory, args.customers, args.lookups)
    else:
        result["lookup"] = asyncio.run(measure_async(directory, args.customers, args.lookups,
                                                     args.in_flight))
    engine.dispose()
    if args.contacts:
        result.update(asyncio.run(measure_history(url, args.customers, args.history_samples,
                                                  args.in_flight)))
    return result


def sqlite_url(args: argparse.Namespace) -> str:
    path = Path(args.cache_dir) / f"lookup-{args.customers}-{args.contacts}.db"
    marker = path.with_suffix(".ok")
    bare = Path(args.cache_dir) / f"lookup-{args.customers}-0.db"
    if not marker.exists():  # cache the filled file between runs
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path.resolve()}"
        if args.contacts and bare.with_suffix(".ok").exists():  # the customers are cached
            shutil.copyfile(bare, path)
            add_contacts(url, args.customers, args.contacts)
        else:
            fill(url, args.customers, args.contacts)
        marker.touch()
    return f"sqlite:///{path.resolve()}"


def run_postgres(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.cache_dir) / f"pg-{args.customers}-{args.contacts}"
    marker = Path(args.cache_dir) / f"pg-{args.customers}-{args.contacts}.ok"
    bare = Path(args.cache_dir) / f"pg-{args.customers}-0"
    from_bare = bool(args.contacts) and not marker.exists() and bare.with_suffix(".ok").exists()
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)  # a half-filled cluster from a cut run
        if from_bare:  # the customers are cached: copy that (stopped) cluster
            # cp -a, not copytree: the cluster's files must stay the postgres user's
            subprocess.run(["cp", "-a", str(bare), str(root)], check=True)
    server = start_postgres(root)
    try:
        if marker.exists() or from_bare:
            url = server.url.rsplit("/", 1)[0] + "/bench"
        else:
            url = server.create_database("bench")
            fill(url, args.customers, args.contacts)
        if from_bare:
            add_contacts(url, args.customers, args.contacts)
        marker.touch()
        return run_backend(url, args)
    finally:
        server.stop()


def print_table(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())  # figures mean little without it
    print(f"\n{args.customers:,} customers, {args.contacts:,} contacts, "
          f"{args.lookups:,} lookups, {args.in_flight} in flight; load average {load}")
    print(f"{'backend':<12}{'query':<22}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, r in results.items():
        rows = [("lookup", r["lookup"])]
        if "query" in r["lookup"]:
            rows.append(("lookup, in thread", r["lookup"]["query"]))
        if "cpu" in r["lookup"]:
            rows.append(("lookup, client CPU", r["lookup"]["cpu"]))
        rows += [(k, r[k]) for k in ("screenpop", "timeline") if k in r]
        for label, s in rows:
            print(f"{name:<12}{label:<22}{s['p50']:>9.3f}{s['p95']:>9.3f}{s['p99']:>9.3f}"
                  f"{s['max']:>9.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--contacts", type=int, default=0,
                    help="contact history to fill and query (screen-pop, timeline)")
    ap.add_argument("--lookups", type=int, default=20_000)
    ap.add_argument("--in-flight", type=int, default=1,
                    help="lookups running at once (1 = the sync path, one after another)")
    ap.add_argument("--history-samples", type=int, default=2_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--cache-dir", default="var/bench")
    ap.add_argument("--cold", action="store_true",
                    help="do not read the tables into memory before timing")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    if args.backend in ("sqlite", "both"):
        results["sqlite"] = run_backend(sqlite_url(args), args)
    if args.backend in ("postgresql", "both"):
        results["postgresql"] = run_postgres(args)
    if args.json:
        print(json.dumps({"customers": args.customers, "contacts": args.contacts,
                          "lookups": args.lookups, "in_flight": args.in_flight,
                          "load_average": os.getloadavg(), "results": results}))
    else:
        print_table(args, results)


if __name__ == "__main__":
    main()
