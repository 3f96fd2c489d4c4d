"""Live alerts for supervisors' consoles (surges, outages posted or ended).

Same shape as the screen-pop hub: each console has a bounded queue that loses its
oldest alerts first, so a stuck browser never slows the node; recent alerts are
replayed to a console that (re)connects.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from ivr.queues import put_latest

ALERT = "supervisor_alert"  # the broadcast message type (ivr.storage.broadcast)


class SupervisorAlerts:
    """Fan-out of alert dicts to every connected supervisor console."""

    def __init__(self, *, queue_size: int = 100, replay: int = 20) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._recent: deque[dict[str, Any]] = deque(maxlen=replay)
        self._queue_size = queue_size
        self._relay: Callable[[dict[str, Any]], None] | None = None

    def relay_to(self, post: Callable[[dict[str, Any]], None]) -> None:
        """Also hand every alert raised here to ``post`` (the other nodes, over NOTIFY:
        a supervisor signed in on node A must see the surge node B detected)."""
        self._relay = post

    def publish(self, alert: dict[str, Any]) -> None:
        self.deliver(alert)
        if self._relay is not None:
            self._relay({"type": ALERT, "alert": alert})

    def deliver(self, alert: dict[str, Any]) -> None:
        """Fan one alert out to this node's consoles (and keep it for reconnects)."""
        self._recent.append(alert)
        for queue in list(self._subscribers):
            put_latest(queue, alert)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        for alert in self._recent:
            queue.put_nowait(alert)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def recent(self) -> list[dict[str, Any]]:
        return list(self._recent)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
