"""Operations endpoints: ``/healthz`` (real state) and ``/metrics`` (Prometheus text).

``/healthz`` is open (load balancers and orchestrators probe it without credentials),
so it says only ok/down and counts, never error text; details go to the log.
``/metrics`` needs the supervisor role or an API token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from ivr.domain.ports import PortError
from ivr.storage.desk import SqlDeskStore
from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role
from ivr.web.push import ScreenPopHub

log = logging.getLogger(__name__)
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


def _label(value: str) -> str:
    # Prometheus text format: backslash, double quote and newline are escaped in labels.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, label: str,
            values: Mapping[str, int]) -> Iterable[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"
    for key, value in sorted(values.items()):
        yield f'{name}{{{label}="{_label(key)}"}} {value}'


def exposition(counts: Mapping[str, Mapping[str, int]], health: Health,
               desktops: int | None) -> str:
    """The Prometheus text exposition of the node's counters and health."""
    lines: list[str] = []
    since = "since this node started"
    lines += _family("kanaal_calls_total", "counter", f"Calls ended, by outcome ({since}).",
                     "outcome", counts.get("outcomes", {}))
    lines += _family("kanaal_dropoffs_total", "counter",
                     f"Callers who hung up, by the step they left at ({since}).", "step",
                     counts.get("dropped_at", {}))
    lines += _family("kanaal_intents_total", "counter",
                     f"Calls ended, by recognised intent ({since}).", "intent",
                     counts.get("intents", {}))
    lines += _family("kanaal_handoffs_total", "counter",
                     f"Callers handed to an agent queue, by skill ({since}).", "skill",
                     counts.get("handoffs", {}))
    if health.outbox_backlog is not None:
        lines += _family("kanaal_outbox_messages", "gauge",
                         "SMS/WhatsApp messages not yet accepted by Twilio, by state.", "state",
                         health.outbox_backlog)
    lines += ["# HELP kanaal_database_up Whether the database answered the health probe.",
              "# TYPE kanaal_database_up gauge", f"kanaal_database_up {int(health.database_up)}"]
    if desktops is not None:
        lines += ["# HELP kanaal_screenpop_desktops Agent desktops connected to this node.",
                  "# TYPE kanaal_screenpop_desktops gauge",
                  f"kanaal_screenpop_desktops {desktops}"]
    return "\n".join(lines) + "\n"


def ops_router(auth: Auth, desk: SqlDeskStore, metrics: MetricsSource,
               hub: ScreenPopHub | None = None, *, probe_timeout_s: float = 2.0) -> APIRouter:
    """``GET /healthz`` (open; 503 when the database is down) and ``GET /metrics``."""
    router = APIRouter()
    supervisor = Depends(role(auth, "supervisor"))

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        """Database reachable and migrated, outbox backlog; 503 when the database is down."""
        health = await check_health(desk, probe_timeout_s)
        return JSONResponse(health.as_dict(), status_code=200 if health.database_up else 503)

    @router.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(_: Principal = supervisor
                         ) -> PlainTextResponse:
        """Prometheus text format: calls, drop-offs, intents, hand-offs, outbox, database."""
        health = await check_health(desk, probe_timeout_s)
        return PlainTextResponse(exposition(metrics.as_dict(), health,
                                            None if hub is None else hub.subscribers),
                                 media_type=PROMETHEUS_TYPE)

    return router
