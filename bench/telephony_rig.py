"""Rig and FastAGI figures: rig start/stop, SIPp call setup, AGI throughput.

    .venv/bin/python bench/telephony_rig.py [--calls 5] [--agi-sessions 300] [--no-restart]

Needs root (chroot) and a built rig (`ivr rig up` builds it). With
--no-restart the running rig is reused and start/stop are not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from ivr.telephony.agi import AgiSession, FastAgiServer
from ivr.testing.rig import Rig, rig_from_env
from ivr.testing.sipcaller import place_call, synthesize_utterance


async def agi_bench(sessions: int, concurrency: int = 20, commands: int = 5) -> None:
    """Raw-TCP clients playing Asterisk against the in-process server."""

    async def handler(session: AgiSession) -> None:
        for i in range(commands):
            await session.set_variable(f"V{i}", "x")

    env = (b"agi_network: yes\nagi_request: agi://127.0.0.1/route\n"
           b"agi_network_script: route\nagi_callerid: +31201234567\n\n")
    latencies: list[float] = []

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(env)
        await writer.drain()
        while True:
            t = time.perf_counter()
            line = await reader.readline()
            if not line:
                break
            writer.write(b"200 result=1\n")
            await writer.drain()
            latencies.append(time.perf_counter() - t)
        writer.close()

    async with FastAgiServer({"route": handler}, port=0) as server:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(50)]
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await client(server.port)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(sessions)))
        elapsed = time.perf_counter() - t0
        for _, w in idle:
            w.close()
    print(f"fastagi: {sessions} sessions x {commands} commands, {concurrency} concurrent, "
          f"50 idle connections open: {sessions / elapsed:.0f} sessions/s, "
          f"command round trip p50 {statistics.median(latencies) * 1e3:.2f} ms")


async def call_bench(rig: Rig, calls: int) -> None:
    """Sequential echo calls: INVITE -> 200 OK setup time."""
    audio = await asyncio.to_thread(synthesize_utterance, "where is my order", "en")
    setups = []
    for _ in range(calls):
        r = await place_call(rig, audio, "+31201234567", dialed="600", hangup_after_s=0.5)
        assert r.ok and r.setup_s is not None, r.errors
        setups.append(r.setup_s)
    print(f"sipp echo calls: {calls}, setup median {statistics.median(setups) * 1e3:.1f} ms, "
          f"max {max(setups) * 1e3:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--agi-sessions", type=int, default=300)
    ap.add_argument("--no-restart", action="store_true")
    args = ap.parse_args()
    rig = rig_from_env()
    if not args.no_restart:
        t = time.perf_counter()
        rig.down()
        print(f"rig down: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        rig.up()
        print(f"rig up (cached root, until ARI answers): {time.perf_counter() - t:.2f} s")
    else:
        rig.up()
    asyncio.run(call_bench(rig, args.calls))
    asyncio.run(agi_bench(args.agi_sessions))


if __name__ == "__main__":
    main()
