"""The fault matrix: real calls through the rig while one thing breaks at a time.

    .venv/bin/python bench/faults.py [--rows ari,ami,asr_raise,asr_hang,disk,twilio,
                                             postgres,kill,restart]
                                     [--calls 3] [--pg-down 30] [--json]

Rows (see ivr/testing/fault_matrix.py and fault_outages.py): the ARI websocket cut;
AMI cut for 20 s (behind a killable TCP proxy); the recogniser raising, and hanging;
the prompt folder's disk full (a filled tmpfs over it: needs root); Twilio (the
`ivr twilio-sandbox` process) answering 500s, then timing out, while callers ask for
a self-service link; PostgreSQL stopped for --pg-down seconds under a node on it; a
node process killed with SIGKILL and not restarted (its callers reach the human
queue by the lease; a node started later closes their contact records); killed and
restarted at once (its lease off, so the new node's adoption of orphaned channels is
what saves the callers). For each: calls in flight, calls lost, time from the fault
to the human queue, contact records complete, and the row's own figures. Prints the
table (or one JSON document with --json) with the load average next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing import fault_matrix as fm
from ivr.testing import fault_outages as fo
from ivr.testing.rig import rig_from_env
from ivr.testing.sipcaller import synthesize_utterance

IN_PROCESS = ("ari", "ami", "asr_raise", "asr_hang", "disk", "twilio")


def seeded(tmp: Path, name: str, *, staffed: bool) -> str:
    url = f"sqlite:///{tmp / name}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=staffed)
    engine.dispose()
    return url


async def run(rows: list[str], calls: int, pg_down_s: float) -> list[fm.Row]:
    tmp = Path(tempfile.mkdtemp(prefix="kanaal-faults-"))
    rig = rig_from_env(log=lambda line: print(line, file=sys.stderr))  # stdout: the table
    await asyncio.to_thread(rig.up)
    out: list[fm.Row] = []
    if any(r in IN_PROCESS for r in rows):
        out += await in_process(rows, calls, tmp, rig)
    if "postgres" in rows:
        print("row postgres ...", file=sys.stderr)
        out.append(await fo.postgres_outage(rig, tmp, n=calls, down_s=pg_down_s))
    for row in ("kill", "restart"):
        if row in rows:
            print(f"row {row} ...", file=sys.stderr)
            url = seeded(tmp, f"{row}.db", staffed=True)
            out.append(await fm.node_loss(rig, url, n=calls, restart=row == "restart",
                                          say=synthesize_utterance))
    return out


async def in_process(rows: list[str], calls: int, tmp: Path, rig: Any) -> list[fm.Row]:
    """The rows that share one in-process node (and, for twilio, a sandbox process)."""
    out: list[fm.Row] = []
    settings = fm.default_settings(seeded(tmp, "node.db", staffed=False), tmp)
    async with contextlib.AsyncExitStack() as stack:
        sandbox = ""
        if "twilio" in rows:
            sandbox = await stack.enter_async_context(fo.sandbox_process(settings))
            settings = replace(settings, twilio_base_url=sandbox)
        h = await stack.enter_async_context(fm.harness(settings, rig))
        steps: dict[str, Any] = {
            "ari": lambda: fm.ari_cut(h, calls), "ami": lambda: fm.ami_cut(h, calls),
            "asr_raise": lambda: fm.asr_fault(h, "raise", calls),
            "asr_hang": lambda: fm.asr_fault(h, "hang", calls),
            "disk": lambda: fm.disk_full(h, calls),
            "twilio": lambda: fo.twilio_outage(h, sandbox, calls)}
        for row in rows:
            if row in steps:
                print(f"row {row} ...", file=sys.stderr)
                out.append(await steps[row]())
    return out


def table(rows: list[fm.Row]) -> str:
    head = ("| fault (calls in flight) | in flight | lost | to a human | contacts complete "
            "| note |\n|---|---|---|---|---|---|")
    lines = [f"| {r.fault} | {r.in_flight} | {r.lost} | "
             f"{'-' if r.to_human_s is None else f'{r.to_human_s:.1f} s'} | "
             f"{r.contacts_complete} | {r.note} |" for r in rows]
    return "\n".join([head, *lines])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="ari,ami,asr_raise,asr_hang,disk,twilio,postgres,kill,"
                                      "restart")
    ap.add_argument("--calls", type=int, default=3, help="calls in flight per row")
    ap.add_argument("--pg-down", type=float, default=30.0,
                    help="seconds PostgreSQL stays stopped (postgres row)")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()
    before = os.getloadavg()
    rows = asyncio.run(run([r.strip() for r in args.rows.split(",") if r.strip()],
                           args.calls, args.pg_down))
    load = {"before": [round(x, 2) for x in before],
            "after": [round(x, 2) for x in os.getloadavg()]}
    if args.json:
        print(json.dumps({"rows": [r.as_dict() for r in rows], "load_average": load,
                          "table": table(rows)}))
    else:
        print(table(rows))
        print(f"load average before {load['before']}, after {load['after']}")
        for r in rows:
            for d in r.details:
                print(f"  {r.fault}: {d}")
            if r.figures:
                print(f"  {r.fault}: {json.dumps(r.figures)}")


if __name__ == "__main__":
    main()
