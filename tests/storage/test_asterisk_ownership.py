"""One node serves an Asterisk at a time (ivr.storage.ownership), on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from ivr.storage.broadcast import conninfo
from ivr.storage.ownership import AsteriskOwnership, LostOwnership, lock_key

pytestmark = pytest.mark.postgres

NAME = "http://127.0.0.1:8088"


def test_lock_keys_are_per_asterisk_and_stable() -> None:
    assert lock_key(NAME) == lock_key(NAME)
    assert lock_key(NAME) != lock_key("http://127.0.0.1:8288")
    assert -(2**63) <= lock_key(NAME) < 2**63


async def _kill_sessions_holding(url: str, name: str) -> None:
    """What a ``kill -9`` of the owner does to its database session."""
    async with await psycopg.AsyncConnection.connect(conninfo(url), autocommit=True) as c:
        key = lock_key(name)
        await c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND ((classid::bigint << 32) | objid::bigint) = (%s::bigint & x'ffffffffffffffff'"
            "::bigint)", (key,))


async def test_the_standby_serves_once_the_primary_is_gone(postgres_url: str) -> None:
    served: list[str] = []
    primary_stop = asyncio.Event()

    async def primary_work() -> None:
        served.append("primary")
        await primary_stop.wait()

    async def standby_work() -> None:
        served.append("standby")
        await asyncio.Event().wait()

    primary = AsteriskOwnership(postgres_url, NAME, poll_s=0.1)
    standby = AsteriskOwnership(postgres_url, NAME, poll_s=0.1)
    p = asyncio.create_task(primary.serve(primary_work))
    async with asyncio.timeout(10):
        await primary.owner.wait()
    s = asyncio.create_task(standby.serve(standby_work))
    await asyncio.sleep(0.5)  # the standby tries a few times and waits
    assert served == ["primary"] and not standby.owner.is_set()
    primary_stop.set()  # the primary node stops: its lock goes with it
    await p
    t0 = time.monotonic()
    async with asyncio.timeout(5):
        await standby.owner.wait()
    assert time.monotonic() - t0 < 1.0
    await asyncio.sleep(0.05)
    assert served == ["primary", "standby"]
    s.cancel()
    await asyncio.gather(s, return_exceptions=True)


async def test_an_owner_whose_session_was_cut_stops_when_the_standby_took_over(
        postgres_url: str) -> None:
    """The owner's database session ends (as when its host is cut off); the standby takes
    the lock; the old owner, back on the database, finds it taken and stops serving."""
    owner = AsteriskOwnership(postgres_url, NAME, poll_s=0.3)
    standby = AsteriskOwnership(postgres_url, NAME, poll_s=0.05)
    o = asyncio.create_task(owner.acquire())
    await o
    watch = asyncio.create_task(owner.watch())
    s = asyncio.create_task(standby.acquire())
    await asyncio.sleep(0.2)
    await _kill_sessions_holding(postgres_url, NAME)
    async with asyncio.timeout(5):
        await s
    with pytest.raises(LostOwnership):
        async with asyncio.timeout(5):
            await watch
    assert not owner.owner.is_set() and standby.owner.is_set()


async def test_an_owner_that_loses_only_its_connection_keeps_serving(postgres_url: str) -> None:
    owner = AsteriskOwnership(postgres_url, NAME, poll_s=0.1)
    await owner.acquire()
    watch = asyncio.create_task(owner.watch())
    await _kill_sessions_holding(postgres_url, NAME)
    await asyncio.sleep(0.8)  # noticed, reconnected, lock taken again
    assert not watch.done() and owner.owner.is_set()
    other = AsteriskOwnership(postgres_url, NAME, poll_s=0.1)
    assert not await other._take()  # still ours
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    await other._drop()
