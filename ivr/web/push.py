"""Screen-pop push: agent desktops subscribe over a WebSocket and get the call's context
the moment the IVR hands a caller over (the pull API serves the same data later)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ivr.queues import put_latest

log = logging.getLogger(__name__)


class ScreenPopHub:
    """ScreenPop port: fans each hand-off context out to every connected desktop.

    A slow desktop never slows the call: each subscriber has a bounded queue and
    loses its oldest pops first. Recent pops are replayed to a desktop that
    (re)connects, so an agent whose browser reloaded still sees the caller.
    """

    def __init__(self, *, queue_size: int = 100, replay: int = 20) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._recent: deque[dict[str, Any]] = deque(maxlen=replay)
        self._queue_size = queue_size
        self._relay: Callable[[dict[str, Any]], None] | None = None

    def relay_to(self, post: Callable[[dict[str, Any]], None]) -> None:
        """Also hand every pop published here to ``post`` (the other nodes: a desktop
        connected to node A must see node B's hand-offs); theirs come in via ``deliver``.
        """
        self._relay = post

    async def publish(self, session_id: str, context: dict[str, Any]) -> None:
        message = {"type": "screenpop", "session": session_id, "context": context}
        # This node's desktops first and directly: no round trip, and they still get
        # the pop when the database (the way to the other nodes) is down.
        self.deliver(message)
        if self._relay is not None:
            self._relay(message)

    def deliver(self, message: dict[str, Any]) -> None:
        """Fan one pop out to this node's desktops (and keep it for reconnects)."""
        self._recent.append(message)
        for queue in list(self._subscribers):
            put_latest(queue, message)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        for message in self._recent:
            queue.put_nowait(message)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        """Desktops connected right now (shown on the supervisor's wallboard)."""
        return len(self._subscribers)


# Decides whether a WebSocket may subscribe (session cookie or single-use ticket).
WsGuard = Callable[[WebSocket], Awaitable[bool]]


def push_router(hub: ScreenPopHub, allowed: WsGuard) -> APIRouter:
    """``/ws/screenpop``: one JSON message per hand-off, for sockets ``allowed`` admits.

    No long-lived token in the URL (it would land in proxy logs): desktops use their
    session cookie, integrations a ticket from ``POST /api/ws-ticket`` (``ivr.web.auth``).
    """
    router = APIRouter()

    @router.websocket("/ws/screenpop")
    async def screenpop_ws(ws: WebSocket) -> None:
        if not await allowed(ws):
            await ws.close(code=4401)  # before accept: the handshake gets HTTP 403
            return
        await ws.accept()
        queue = hub.subscribe()

        async def sender() -> None:
            while True:
                await ws.send_text(json.dumps(await queue.get(), default=str))

        async def receiver() -> None:
            # Desktops send nothing we need, but reading is how a disconnect is noticed
            # while no pop is pending (otherwise the handler would wait forever).
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return

        tasks = {asyncio.create_task(sender()), asyncio.create_task(receiver())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the desktop went away
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            hub.unsubscribe(queue)

    return router
