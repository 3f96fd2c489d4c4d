"""Screen-pops across nodes over PostgreSQL LISTEN/NOTIFY (ivr.storage.broadcast).

On a real PostgreSQL: two broadcasters on one database (the adapter), and two composed
apps on one database where a desktop on node A's web server gets the pop of a call
handled by node B. Chunking is checked without a server too.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ivr.config import Settings, load_settings
from ivr.storage.broadcast import CHUNK_CHARS, PgBroadcast, Reassembler, encode
from ivr.storage.db import make_engine, upgrade
from ivr.web.push import ScreenPopHub

BIG = {"type": "screenpop", "session": "s-1",
       "context": {"transcript": "Ik wil mijn factuur van maart begrijpen, één vraag. " * 600,
                   "customer": {"name": "Zoë Çelik"}}}


def test_a_large_message_is_cut_below_the_notify_limit_and_put_back_together() -> None:
    payloads = encode("node-a", BIG)
    assert len(payloads) > 3
    assert all(len(p.encode()) < 8000 for p in payloads)
    assert all(len(p) <= CHUNK_CHARS + 50 for p in payloads)
    join = Reassembler()
    results = [join.add(p) for p in payloads]
    assert results[:-1] == [None] * (len(payloads) - 1)
    assert results[-1] == ("node-a", BIG)


def test_a_message_with_a_missing_chunk_is_dropped_not_garbled() -> None:
    payloads = encode("node-a", BIG)
    join = Reassembler()
    assert join.add(payloads[0]) is None
    assert join.add(payloads[2]) is None  # chunk 1 never came
    assert all(join.add(p) is None for p in payloads[3:])
    assert join.add("not a chunk") is None
    small = encode("node-b", {"type": "screenpop", "session": "s-2"})
    assert join.add(small[0]) == ("node-b", {"type": "screenpop", "session": "s-2"})


async def _next(queue: asyncio.Queue[dict[str, Any]], within_s: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(within_s):
        return await queue.get()


@asynccontextmanager
async def _node(url: str) -> AsyncIterator[tuple[ScreenPopHub, PgBroadcast]]:
    hub = ScreenPopHub()
    bus = PgBroadcast(url, hub.deliver, reconnect_s=0.2)
    hub.relay_to(bus.post)
    task = asyncio.create_task(bus.run())
    try:
        async with asyncio.timeout(10):
            await bus.listening.wait()
        yield hub, bus
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.postgres
async def test_two_hubs_on_one_database_see_each_others_pops_once(postgres_url: str) -> None:
    async with _node(postgres_url) as (hub_a, bus_a), _node(postgres_url) as (hub_b, _):
        desk_a, desk_b = hub_a.subscribe(), hub_b.subscribe()
        await hub_b.publish("s-1", BIG["context"])
        assert (await _next(desk_a)) == BIG  # across, the large context intact
        assert (await _next(desk_b)) == BIG  # and locally
        await hub_a.publish("s-2", {"skill": "billing"})
        assert (await _next(desk_b))["session"] == "s-2"
        assert (await _next(desk_a))["session"] == "s-2"
        await asyncio.sleep(0.5)  # a node's own pop must not come back a second time
        assert desk_a.empty() and desk_b.empty()
        assert bus_a.received == 1 and bus_a.sent == 1


@pytest.mark.postgres
async def test_a_pop_while_the_other_node_listens_again_after_its_connection_died(
        postgres_url: str) -> None:
    import psycopg

    from ivr.storage.broadcast import conninfo

    async with _node(postgres_url) as (hub_a, bus_a), _node(postgres_url) as (hub_b, bus_b):
        desk_a = hub_a.subscribe()
        with psycopg.connect(conninfo(postgres_url), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()").fetchone()
        assert killed == (2,)
        for _ in range(200):
            if bus_a.listens == bus_b.listens == 2:
                break
            await asyncio.sleep(0.05)
        assert bus_a.listens == bus_b.listens == 2
        await hub_b.publish("s-3", {"skill": "tech"})
        assert (await _next(desk_a))["session"] == "s-3"


# ------------------------------------------------------------- two composed nodes

@pytest.fixture
def pg_settings(postgres_url: str, tmp_path: Path) -> Settings:
    from ivr.storage.seed import seed_demo

    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    seed_demo(engine)
    engine.dispose()
    return replace(load_settings(env_file=None, environ={}), database_url=postgres_url,
                   data_dir=tmp_path, api_token="t0ken-for-tests")


@pytest.mark.postgres
@pytest.mark.slow
async def test_desktop_on_node_a_gets_the_pop_of_a_call_handled_by_node_b(
        pg_settings: Settings) -> None:
    """Node B is a composed app running the call; node A is a second App on the same
    database with its own hub, broadcaster and web server (it borrows B's loaded models
    rather than loading them twice: the pop can only reach A through PostgreSQL)."""
    import contextlib

    import websockets

    from ivr.cli.call_cmd import run_text_call
    from ivr.cli.demo_cmd import demo_moment
    from ivr.clock import PinnedClock
    from ivr.testing.app import running_app
    from ivr.web.app import create_web_app, free_port, web_server

    port = free_port()
    clock = PinnedClock(demo_moment())  # agents on duty: the call is handed off
    async with running_app(pg_settings, clock=clock) as node_b, \
            _node(pg_settings.database_url) as (hub_a, _):
        node_a = replace(node_b, screenpop=hub_a, broadcast=None,
                         _stack=contextlib.AsyncExitStack())
        assert node_b.broadcast is not None
        async with asyncio.timeout(10):
            await node_b.broadcast.listening.wait()
        async with web_server(create_web_app(node_a), "127.0.0.1", port), \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            ticket = (await http.post("/api/ws-ticket", headers={
                "Authorization": "Bearer t0ken-for-tests"})).json()["ticket"]
            async with websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/screenpop?ticket={ticket}") as desk:
                report = await run_text_call(node_b, pg_settings, from_number="+31655556666",
                                             script=["I have a question about my invoice"],
                                             echo=False)
                async with asyncio.timeout(10):
                    pop = json.loads(await desk.recv())
    assert pop["session"] == report.result.contact.id
    assert pop["context"]["customer"]["name"] == "Hannah Lee"
    assert pop["context"]["skill"] == "billing"


@pytest.mark.postgres
async def test_a_supervisor_alert_raised_on_one_node_reaches_the_other_nodes_consoles(
        postgres_url: str) -> None:
    """Alerts (surges, outages) and other Asterisks' wallboard views ride the same NOTIFY
    bus as pops, told apart by type, as build_app wires them (ivr.app.from_other_node)."""
    from ivr.app import from_other_node
    from ivr.contact_centre.remote import RemoteCentres
    from ivr.outages.alerts import SupervisorAlerts

    nodes = []
    remotes = []
    for _ in range(2):
        hub, alerts, remote = ScreenPopHub(), SupervisorAlerts(), RemoteCentres()
        bus = PgBroadcast(postgres_url, functools.partial(
            from_other_node, screenpop=hub, alerts=alerts, remote_centres=remote),
            reconnect_s=0.2)
        hub.relay_to(bus.post)
        alerts.relay_to(bus.post)
        remotes.append(remote)
        nodes.append((hub, alerts, bus, asyncio.create_task(bus.run())))
    try:
        async with asyncio.timeout(10):
            for _, _, bus, _ in nodes:
                await bus.listening.wait()
        (hub_a, alerts_a, _, _), (hub_b, alerts_b, _, _) = nodes
        console_a, desk_a = alerts_a.subscribe(), hub_a.subscribe()
        alerts_b.publish({"kind": "surge", "intent": "internet_down", "region": "Utrecht"})
        assert (await _next(console_a))["kind"] == "surge"
        await hub_b.publish("s-9", {"skill": "tech"})
        assert (await _next(desk_a))["session"] == "s-9"
        # Asterisk B's wallboard view, as node B's centre broadcast sends it
        nodes[1][2].post(RemoteCentres.message("http://b:8088/ivr", {"in_sync": True}))
        async with asyncio.timeout(10):
            while True:  # delivered on the listener's task
                if remotes[0].views():
                    break
                await asyncio.sleep(0.05)
        assert remotes[0].views()[0]["asterisk"] == "http://b:8088/ivr"
        await asyncio.sleep(0.3)
        assert console_a.empty() and desk_a.empty()  # each went to its own kind only
    finally:
        for *_, task in nodes:
            task.cancel()
        await asyncio.gather(*(t for *_, t in nodes), return_exceptions=True)
