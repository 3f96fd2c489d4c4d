"""The live state of the other Asterisks, for the supervisor console of any node.

Each node reads its own Asterisk's state over AMI (ivr.contact_centre.feed). With two
Asterisks, a supervisor signed in on node A would see only Asterisk A's queues; so each
node broadcasts its view (``centre_view``) every few seconds over the nodes' PostgreSQL
NOTIFY channel (ivr.storage.broadcast) and keeps the latest view of every other
Asterisk here. A view older than ``expire_s`` is dropped, not shown as current: a node
that stopped broadcasting (dead, or cut off from the database) must not leave a
frozen, reassuring wallboard behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

CENTRE_VIEW = "centre_view"


class RemoteCentres:
    """Latest ``centre_view`` per other Asterisk, with its age."""

    def __init__(self, *, expire_s: float = 15.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._expire_s = expire_s
        self._now = now
        self._views: dict[str, tuple[float, dict[str, Any]]] = {}

    @staticmethod
    def message(asterisk: str, view: dict[str, Any]) -> dict[str, Any]:
        """The broadcast this node sends about its own Asterisk."""
        return {"type": CENTRE_VIEW, "asterisk": asterisk, "view": view}

    def deliver(self, message: dict[str, Any]) -> bool:
        """Keep another node's view; False for anything that is not one."""
        asterisk, view = message.get("asterisk"), message.get("view")
        if message.get("type") != CENTRE_VIEW or not isinstance(asterisk, str) \
                or not isinstance(view, dict):
            return False
        self._views[asterisk] = (self._now(), view)
        return True

    def views(self, *, exclude: str | None = None) -> list[dict[str, Any]]:
        """Fresh views by Asterisk name (``age_s`` since received); stale ones dropped."""
        now = self._now()
        for name in [n for n, (at, _) in self._views.items() if now - at > self._expire_s]:
            del self._views[name]
        return [{"asterisk": name, "age_s": round(now - at, 1), **view}
                for name, (at, view) in sorted(self._views.items()) if name != exclude]
