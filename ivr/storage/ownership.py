"""Which node serves an Asterisk: a PostgreSQL advisory lock per Asterisk (several nodes).

Each Asterisk has one ARI app that exactly one node must serve: two websockets on one
app name make Asterisk hand the app's events to the newest connection only, so two
serving nodes would each see half a picture. The owner is whoever holds the session
advisory lock named after the Asterisk's app (its ARI URL and app name). A primary
node asks for its own Asterisk's lock first; a standby node asks for the same lock and
waits.

Why an advisory lock: it lives exactly as long as the owner's database session. When
the owner dies (``kill -9``, a crash, the host gone) the kernel closes its socket,
PostgreSQL ends the session and frees the lock at once, and the standby's next try
(every ``poll_s``) gets it; no heartbeat table, no clock skew, no expiry to tune.

Losing the database connection does not stop an owner: it keeps serving its calls and
tries to take the lock again on a new connection. It stops only when it reaches the
database and the lock is someone else's (a standby took over meanwhile). A network
split that leaves the owner alive but away from the database while a standby reaches
it gives two servers for a while; the newest websocket then wins the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from ivr.storage.broadcast import conninfo

log = logging.getLogger(__name__)


class LostOwnership(Exception):
    """Another node holds the lock now: this one must stop serving that Asterisk."""


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for an Asterisk app's name (ARI URL/app)."""
    digest = hashlib.sha256(f"kanaal-asterisk:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(conninfo(url), autocommit=True,
                                                 connect_timeout=5)


async def _try_lock(conn: psycopg.AsyncConnection[Any], key: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
    row = await cur.fetchone()
    return bool(row and row[0])


class AsteriskOwnership:
    """Run ``work`` (a node serving the Asterisk ``name``) only while holding its lock."""

    def __init__(self, url: str, name: str, *, poll_s: float = 0.5) -> None:
        self._url = url
        self.name = name
        self._key = lock_key(name)
        self._poll_s = poll_s
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.owner = asyncio.Event()

    async def acquire(self) -> None:
        """Wait until this node holds the lock (the database may be down meanwhile)."""
        while True:
            try:
                if await self._take():
                    break
            except (psycopg.Error, OSError) as exc:
                log.warning("ownership of %s: database unreachable (%s)", self.name, exc)
                await self._drop()
            await asyncio.sleep(self._poll_s)
        self.owner.set()
        log.info("this node now serves Asterisk %s", self.name)

    async def _take(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._conn = await _connect(self._url)
        return await _try_lock(self._conn, self._key)

    async def watch(self) -> None:
        """Return never while the lock is ours; raise LostOwnership when it is not."""
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                if self._conn is not None:
                    await self._conn.execute("SELECT 1")
                    continue
                exc: Exception = ConnectionError("no connection")
            except (psycopg.Error, OSError) as error:
                exc = error
            if exc:
                log.warning("ownership of %s: database connection lost (%s); "
                            "still serving, taking the lock again", self.name, exc)
            await self._drop()
            await self._retake()

    async def _retake(self) -> None:
        while True:
            try:
                if await self._take():
                    log.info("ownership of %s: lock taken again", self.name)
                    return
                self.owner.clear()
                raise LostOwnership(f"another node serves Asterisk {self.name} now")
            except (psycopg.Error, OSError):
                await self._drop()
                await asyncio.sleep(self._poll_s)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    async def serve(self, work: Callable[[], Awaitable[None]]) -> None:
        """Acquire, then run ``work`` until it ends or the lock is lost (then again)."""
        while True:
            await self.acquire()
            job = asyncio.ensure_future(work())
            watcher = asyncio.ensure_future(self.watch())
            try:
                done, _ = await asyncio.wait({job, watcher},
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (job, watcher):
                    task.cancel()
                await asyncio.gather(job, watcher, return_exceptions=True)
            if job in done:
                await self._drop()  # the node stopped: let the standby have it
                job.result()
                return
            log.warning("stopped serving Asterisk %s: %s", self.name, watcher.exception())
