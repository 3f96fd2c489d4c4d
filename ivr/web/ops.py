"""Operations endpoints: ``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus text).

``/healthz`` is liveness only: it answers while the process and its event loop do, and
checks nothing else, because an orchestrator restarts a node whose liveness fails, and
restarting every node when the shared database blips would drop the calls they carry.
Dependencies belong to ``/readyz`` (take the node out of rotation, do not kill it).

``/healthz`` and ``/readyz`` are open (load balancers and orchestrators probe them
without credentials), so they say only ok/down, counts and fixed reasons, never error
text; details go to the log. ``/metrics`` needs the supervisor role or an API token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ivr.domain.centre import CentreSnapshot
from ivr.domain.ports import PortError
from ivr.metrics import CONTENT_TYPE, LiveState, NodeTelemetry
from ivr.storage.desk import SqlDeskStore
from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role
from ivr.web.push import ScreenPopHub

log = logging.getLogger(__name__)


class MetricsSource(Protocol):
    """What the node counts (``FlowMetrics``): outcomes, drop-offs, intents, hand-offs."""

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Counters by family (outcomes, dropped_at, intents, handoffs)."""


@dataclass(frozen=True, slots=True)
class Health:
    """The node's dependencies as seen just now."""

    database_up: bool
    schema: str | None
    outbox_backlog: dict[str, int] | None

    def as_dict(self) -> dict[str, object]:
        backlog = None if self.outbox_backlog is None else sum(self.outbox_backlog.values())
        return {"status": "ok" if self.database_up else "unavailable",
                "database": "ok" if self.database_up else "down", "schema": self.schema,
                "outbox_backlog": backlog}


async def check_health(desk: SqlDeskStore, timeout_s: float = 2.0) -> Health:
    """Probe the database (bounded by ``timeout_s``) and count the outbox backlog."""
    try:
        # A hung database (a dead TCP peer, a locked SQLite file) must not hang the probe:
        # the worker thread may linger, the answer does not.
        async with asyncio.timeout(timeout_s):
            schema = await desk.call(desk.probe)
            backlog = await desk.call(desk.outbox_backlog)
    except TimeoutError:
        log.warning("health: database did not answer within %.1f s", timeout_s)
        return Health(False, None, None)
    except PortError as exc:
        log.warning("health: database down: %s", exc)
        return Health(False, None, None)
    return Health(schema is not None, schema, backlog)


@dataclass(frozen=True, slots=True)
class Links:
    """The node's live links, for ``/readyz`` and ``/metrics`` (None: the node has none)."""

    ari: asyncio.Event | None = None  # set while the ARI websocket is connected
    ami: asyncio.Event | None = None  # set while logged in to AMI
    centre: Callable[[], CentreSnapshot] | None = None  # live queues and agents


def _up(event: asyncio.Event | None) -> bool | None:
    return None if event is None else event.is_set()


def readiness(health: Health, links: Links) -> tuple[dict[str, str], list[str]]:
    """Per-dependency ok/down and, for each one down, why (no error text: it is open)."""
    checks, reasons = {"database": "ok" if health.database_up else "down"}, []
    if not health.database_up:
        reasons.append("database not reachable or not migrated")
    for name, event, why in (("ari", links.ari, "ARI websocket not connected"),
                             ("ami", links.ami, "AMI not connected")):
        up = _up(event)
        if up is None:
            continue
        checks[name] = "ok" if up else "down"
        if not up:
            reasons.append(why)
    return checks, reasons


def ops_router(auth: Auth, desk: SqlDeskStore, telemetry: NodeTelemetry,
               hub: ScreenPopHub | None = None, *, links: Links | None = None,
               probe_timeout_s: float = 2.0) -> APIRouter:
    """``GET /healthz`` and ``/readyz`` (open) and ``GET /metrics`` (supervisor or token)."""
    router = APIRouter()
    supervisor = Depends(role(auth, "supervisor"))
    links = links or Links()

    started = time.monotonic()

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness: 200 whenever the event loop answers (see the module docstring)."""
        return JSONResponse({"status": "alive",
                             "uptime_s": round(time.monotonic() - started, 1)})

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready for calls: database, ARI and (with live routing) AMI up; else 503 + reasons."""
        health = await check_health(desk, probe_timeout_s)
        checks, reasons = readiness(health, links)
        detail = health.as_dict()
        body = {"checks": checks, "schema": detail["schema"],
                "outbox_backlog": detail["outbox_backlog"]}
        if reasons:
            return JSONResponse({"status": "not_ready", **body, "reasons": reasons},
                                status_code=503)
        return JSONResponse({"status": "ready", **body})

    @router.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(_: Principal = supervisor) -> Response:
        """Prometheus text format (``ivr.metrics``): calls, latencies, queues, links, errors."""
        health = await check_health(desk, probe_timeout_s)
        live = LiveState(database_up=health.database_up, outbox=health.outbox_backlog,
                         ari_connected=_up(links.ari), ami_connected=_up(links.ami),
                         centre=None if links.centre is None else links.centre(),
                         desktops=None if hub is None else hub.subscribers)
        return Response(telemetry.exposition(live), media_type=CONTENT_TYPE)

    return router
