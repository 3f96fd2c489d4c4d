"""Node-to-node broadcast over PostgreSQL ``LISTEN/NOTIFY`` (several nodes, one database).

Why NOTIFY and not a broker: every node already holds the database's address and
credentials, and a screen-pop only has to reach the nodes that are up right now (a
desktop that was away has the pull API and the hub's replay). So this is at-most-once,
in order per sender, and needs no table and no extra service.

NOTIFY payloads are limited to 8000 bytes, and a hand-off context (customer card,
transcript, steps) can be larger. A message is sent as JSON (ASCII, so characters are
bytes) cut into chunks ``"<message id> <index> <count> <part>"``, all in one
transaction: PostgreSQL delivers a transaction's notifications together, in order, and
only at commit, so a listener reassembles without waiting, timing out or reading a
table. Loading the message from a table by id (the alternative) would cost a write, a
read per node and a clean-up job for the rare large pop.

Sending never blocks the caller: ``post`` puts the message on a bounded queue (oldest
dropped when full) and the sender task delivers it; when the database is down the
message is logged as lost for other nodes (this node's desktops already have it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from ivr.queues import put_latest

log = logging.getLogger(__name__)

CHUNK_CHARS = 7000  # JSON per notification: the header fits in the 8000-byte limit
MAX_PARTIAL = 64  # messages being reassembled at once (a sender died mid-way: dropped)


def conninfo(url: str) -> str:
    """libpq connection string from the SQLAlchemy URL (``postgresql+psycopg://...``)."""
    u = make_url(url)
    params: dict[str, Any] = {"host": u.host, "port": u.port, "user": u.username,
                              "password": u.password, "dbname": u.database}
    params.update({k: v for k, v in u.query.items() if isinstance(v, str)})
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def encode(node: str, message: dict[str, Any]) -> list[str]:
    """The NOTIFY payloads of one message (one or more chunks)."""
    data = json.dumps({"node": node, "message": message}, default=str,
                      separators=(",", ":"), ensure_ascii=True)
    parts = [data[i:i + CHUNK_CHARS] for i in range(0, len(data), CHUNK_CHARS)] or [""]
    key = uuid.uuid4().hex
    return [f"{key} {i} {len(parts)} {part}" for i, part in enumerate(parts)]


class Reassembler:
    """Chunks back into messages; returns ``(node, message)`` when one is complete."""

    def __init__(self) -> None:
        self._partial: OrderedDict[str, list[str]] = OrderedDict()

    def add(self, payload: str) -> tuple[str, dict[str, Any]] | None:
        try:
            key, index_text, count_text, part = payload.split(" ", 3)
            index, count = int(index_text), int(count_text)
        except ValueError:
            log.warning("broadcast: malformed notification ignored")
            return None
        parts = self._partial.setdefault(key, [])
        if index != len(parts):  # a gap: the sender's transaction is not what we expect
            self._partial.pop(key, None)
            log.warning("broadcast: chunk %d of %s out of order, message dropped", index, key)
            return None
        parts.append(part)
        if len(parts) < count:
            while len(self._partial) > MAX_PARTIAL:
                self._partial.popitem(last=False)
            return None
        del self._partial[key]
        try:
            envelope = json.loads("".join(parts))
            return str(envelope["node"]), dict(envelope["message"])
        except (ValueError, KeyError, TypeError):
            log.warning("broadcast: undecodable message %s dropped", key)
            return None


class PgBroadcast:
    """Messages to every other node on the database, and theirs to ``on_message``.

    ``run()`` listens (reconnecting after a database outage) and sends what ``post``
    queued; messages this node sent come back through LISTEN and are skipped.
    """

    def __init__(self, url: str, on_message: Callable[[dict[str, Any]], None], *,
                 channel: str = "kanaal_screenpop", reconnect_s: float = 1.0,
                 send_timeout_s: float = 5.0, queue_size: int = 1000) -> None:
        self._conninfo = conninfo(url)
        self._on_message = on_message
        self._channel = channel
        self._reconnect_s = reconnect_s
        self._send_timeout_s = send_timeout_s
        self._outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self.node_id = uuid.uuid4().hex[:12]
        self.listening = asyncio.Event()  # set while LISTEN is active (tests, /readyz)
        self.sent = 0
        self.received = 0
        self.listens = 0  # successful LISTENs: more than one means it reconnected

    def post(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for the other nodes (never blocks; oldest dropped when full)."""
        put_latest(self._outgoing, message)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._listen(), name="broadcast-listen")
            tg.create_task(self._send_loop(), name="broadcast-send")

    async def _listen(self) -> None:
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
        reassembler = Reassembler()
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True) as conn:
                    await conn.execute(listen)
                    self.listens += 1
                    self.listening.set()
                    log.info("broadcast: listening on %s as node %s", self._channel,
                             self.node_id)
                    async for note in conn.notifies():
                        self._deliver(reassembler.add(note.payload))
            except (psycopg.Error, OSError) as exc:
                log.warning("broadcast: listener lost (%s); reconnecting", exc)
            self.listening.clear()
            await asyncio.sleep(self._reconnect_s)

    def _deliver(self, got: tuple[str, dict[str, Any]] | None) -> None:
        if got is None or got[0] == self.node_id:
            return
        self.received += 1
        try:
            self._on_message(got[1])
        except Exception:  # one bad consumer must not stop the listener
            log.exception("broadcast: consumer failed")

    async def _send_loop(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        notify = sql.SQL("SELECT pg_notify({}, %s)").format(sql.Literal(self._channel))
        try:
            while True:
                message = await self._outgoing.get()
                try:
                    async with asyncio.timeout(self._send_timeout_s):
                        if conn is None or conn.closed:
                            conn = await psycopg.AsyncConnection.connect(self._conninfo,
                                                                      autocommit=True)
                        async with conn.transaction():
                            for payload in encode(self.node_id, message):
                                await conn.execute(notify, (payload,))
                    self.sent += 1
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    log.warning("broadcast: a message did not reach the other nodes (%s)", exc)
                    if conn is not None:
                        with contextlib.suppress(psycopg.Error, OSError):
                            await conn.close()
                    conn = None
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
