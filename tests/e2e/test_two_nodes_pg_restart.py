"""Two nodes, two Asterisks, one PostgreSQL restarted under calls: no contact is lost;
and each node's wallboard shows the other Asterisk's queues.

Node A serves Asterisk A and node B serves Asterisk B, both on one PostgreSQL and one
contact spool folder (what the compose file and README ask for). Two callers on each
Asterisk have asked their question when PostgreSQL stops for a few seconds and starts
again on the same port. What the nodes could not save went to the spool
(ivr.storage.repositories.SpoolingContactLog), replayed every few seconds once the
database is back. Every call then has exactly one contact with its question and an
outcome.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.storage.tables import contacts
from ivr.testing.node_process import node_env, start_node_process
from ivr.testing.postgres import start_postgres
from ivr.testing.rig import Rig
from ivr.testing.sipcaller import place_call, synthesize_utterance

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

FIRST = ["+31655558801", "+31655558802", "+31655558803", "+31655558804"]
DOWN_S = 6.0


def _contacts_of(url: str, callers: list[str]) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(contacts).where(contacts.c.caller.in_(callers))).all()
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


async def _until(check: Any, timeout_s: float) -> Any:
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                found = await asyncio.to_thread(check)
            except Exception:  # the database is starting: ask again
                found = None
            if found:
                return found
            await asyncio.sleep(0.3)


async def _other_centre(port: int, asterisk: str) -> dict[str, Any]:
    """Asterisk ``asterisk``'s view, with agents in it, in GET /api/queues of the node on
    ``port``."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={
            "Authorization": "Bearer change-me"}) as http, asyncio.timeout(20):
        while True:  # broadcast every 2 s
            body = (await http.get("/api/queues")).json()
            # once node B's AMI state is in: its first views may come before the resync
            found: list[dict[str, Any]] = [o for o in body["others"]
                                           if o["asterisk"] == asterisk and o["skills"]]
            if found:
                return found[0]
            await asyncio.sleep(0.5)


async def test_a_postgres_restart_under_calls_on_two_nodes_loses_no_contact(
        rig: Rig, rig2: Rig, tmp_path: Path) -> None:
    # Kept on disk, so it can start again as it was; outside pytest's tmp_path, which
    # the postgres user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="kanaal-pg-restart-"))
    pg = start_postgres(root)
    nodes: list[asyncio.subprocess.Process] = []
    calls: list[asyncio.Task[Any]] = []
    try:
        url = pg.create_database("kanaal_restart")
        upgrade(url)
        engine = make_engine(url)
        seed_demo(engine, staffed=True)  # agents in queues: the wallboards have rows
        engine.dispose()
        spool = {"IVR_SPOOL_DIR": str(tmp_path / "spool")}  # shared, as in production
        web_a: dict[str, int] = {}
        nodes = list(await asyncio.gather(
            start_node_process(url, node_env(rig, **spool), info=web_a),
            start_node_process(url, node_env(rig2, **spool))))
        # Node A's wallboard shows Asterisk B's queues, broadcast by node B.
        other = await _other_centre(web_a["web_port"], rig2.ari_url.rstrip("/"))
        audio = await asyncio.to_thread(synthesize_utterance, "what are your opening hours")
        calls = [asyncio.create_task(place_call(
            r, audio, caller, dialed="100", hangup_after_s=22, audio_delay_s=4.0))
            for r, caller in zip((rig, rig, rig2, rig2), FIRST, strict=True)]
        await _until(lambda: len([c for c in _contacts_of(url, FIRST) if c["question"]])
                     == len(FIRST), 60)
        pg.stop()  # fast shutdown: every node's connections are cut
        stopped_at = time.monotonic()
        await asyncio.sleep(DOWN_S)
        pg = start_postgres(root, port=pg.port)
        down_s = time.monotonic() - stopped_at
        results = await asyncio.gather(*calls)
        everyone = FIRST

        def all_closed() -> list[dict[str, Any]] | None:
            found = _contacts_of(url, everyone)
            done = len(found) == len(everyone) and all(r["outcome"] for r in found)
            return found if done else None

        rows = await _until(all_closed, 40)
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        for node in nodes:
            node.kill()
            await node.wait()
        pg.keep = False  # remove the cluster with the test
        pg.stop()
    print(f"\nPostgreSQL down {down_s:.1f}s; callers: {[str(r) for r in results]}")
    print(sorted((r["caller"][-2:], r["outcome"]) for r in rows))
    assert other["stale_s"] is not None and "general" in other["skills"], other  # synced once
    assert sorted(r["caller"] for r in rows) == sorted(everyone)  # one contact each
    assert all(r["question"] and r["ended_at"] is not None for r in rows), rows
