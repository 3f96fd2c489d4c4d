"""Benchmark: send_link latency and outbox throughput against the local Twilio sandbox.

    .venv/bin/python bench/twilio_outbox.py [--n 200] [--concurrency 4]

Prints: send_link latency (p50/p95/max) as the call flow sees it (DB write + first
attempt through the real twilio client over HTTP), time to learn a permanent
failure (21211), and drain throughput of a backlog of pending rows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from ivr.notify.outbox import Outbox, OutboxStore
from ivr.notify.twilio_messenger import TwilioMessenger, TwilioTransport, make_twilio_client
from ivr.storage.db import make_engine, upgrade
from ivr.testing.twilio_sandbox import ServerThread, create_sandbox_app

ACCOUNT, TOKEN = "AC" + "2" * 32, "bench-token"


async def main(n: int, concurrency: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    store = OutboxStore(make_engine(url))
    app = create_sandbox_app(account_sid=ACCOUNT, auth_token=TOKEN, callback_delay_s=0.0,
                             log=None)
    with ServerThread(app) as srv:
        client = make_twilio_client(ACCOUNT, TOKEN, base_url=srv.url)
        outbox = Outbox(store=store, transport=TwilioTransport(client),
                        concurrency=concurrency, poll_s=0.5)
        messenger = TwilioMessenger(outbox=outbox, senders={"sms": "+3197010000001"})
        async with asyncio.TaskGroup() as tg:
            worker = tg.create_task(outbox.run())
            lat = []
            for i in range(n):
                t0 = time.perf_counter()
                r = await messenger.send_link(to="+31612345678", channel="sms",
                                              body=f"link {i}", contact_id=f"c{i}",
                                              language="en")
                lat.append((time.perf_counter() - t0) * 1000)
                assert r.ok, r
            t0 = time.perf_counter()
            r = await messenger.send_link(to="+15005550001", channel="sms", body="x",
                                          contact_id="bad", language="en")
            perm_ms = (time.perf_counter() - t0) * 1000
            assert r.permanent and r.error_code == "21211", r
            lat.sort()
            print(f"send_link latency (n={n}, sequential): p50 {statistics.median(lat):.1f} ms, "
                  f"p95 {lat[int(0.95 * (n - 1))]:.1f} ms, max {lat[-1]:.1f} ms")
            print(f"permanent failure (21211) reported to the flow in {perm_ms:.1f} ms")

            worker.cancel()
        # Backlog: rows written while no worker ran (e.g. restart after an outage).
        for i in range(n):
            await asyncio.to_thread(store.insert, contact_id=f"b{i}", channel="sms",
                                    to="+31612345678", from_="+3197010000001",
                                    body=f"backlog {i}", language="en")
        outbox2 = Outbox(store=store, transport=TwilioTransport(client),
                         concurrency=concurrency, poll_s=0.05)
        t0 = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            w2 = tg.create_task(outbox2.run())
            while sum(r.state == "accepted" for r in await asyncio.to_thread(store.rows)) < 2 * n:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            w2.cancel()
        dt = time.perf_counter() - t0
        print(f"backlog drain: {n} pending rows in {dt:.2f} s = {n / dt:.0f} msg/s "
              f"(concurrency {concurrency}, SQLite, sandbox over HTTP)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    asyncio.run(main(args.n, args.concurrency))
