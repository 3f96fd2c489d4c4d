"""The agent desktop (``/agent``) and the supervisor console (``/supervisor``).

Server-rendered pages plus the JSON and WebSocket endpoints their scripts use:

- ``POST /api/contacts/{session}/wrapup``: the agent's wrap-up code and note.
- ``GET /api/contacts?limit=``: recent contacts (supervisors).
- ``GET /api/wallboard`` and ``/ws/wallboard``: this node's live counters, pushed every
  ``interval_s`` seconds.

The console's Queues, Agents and Load split panels poll ``/api/queues``,
``/api/agents`` and ``/api/splits`` (``ivr.web.app.centre_router``), which exist only
when the node has a contact centre (AMI).

Everything shown is real: the node's ``FlowMetrics``, the contact table, the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

from ivr.domain.ports import PortError
from ivr.logs import mask_text
from ivr.storage.desk import SqlDeskStore
from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role
from ivr.web.forms import read_form
from ivr.web.ops import MetricsSource, check_health
from ivr.web.push import ScreenPopHub
from ivr.web.render import Pages

# Wrap-up codes an agent picks from; reports group by them, so they are a closed set.
WRAPUP_CODES: dict[str, str] = {
    "resolved": "Resolved",
    "follow_up": "Follow-up needed",
    "callback": "Callback promised",
    "escalated": "Escalated",
    "transferred": "Transferred",
    "no_action": "No action needed",
}
MAX_NOTE = 2000
SESSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def wallboard_data(metrics: MetricsSource, desk: SqlDeskStore,
                         hub: ScreenPopHub | None) -> dict[str, Any]:
    """One wallboard frame: the node's counters, outbox backlog, desktops, database."""
    counts = metrics.as_dict()
    health = await check_health(desk)
    return {
        "at": datetime.now(UTC).isoformat(),
        "calls": sum(counts.get("outcomes", {}).values()),
        "outcomes": counts.get("outcomes", {}),
        "dropped_at": counts.get("dropped_at", {}),
        "intents": counts.get("intents", {}),
        "handoffs": counts.get("handoffs", {}),
        "outbox_backlog": health.outbox_backlog,
        "database_up": health.database_up,
        "desktops": None if hub is None else hub.subscribers,
    }


def _recent_row(c: Any) -> dict[str, Any]:
    return {"session": c.session, "channel": c.channel, "caller": mask_text(c.caller),
            "customer": c.customer, "started_at": c.started_at.isoformat(),
            "intent": c.intent, "scenario": c.scenario, "skill": c.skill,
            "outcome": c.outcome, "dropped_at": c.dropped_at, "wrapup_code": c.wrapup_code}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _wrapup_error(session: str, code: str, note: str) -> JSONResponse | None:
    if code not in WRAPUP_CODES:
        return _error(422, "bad_code", f"code must be one of {', '.join(WRAPUP_CODES)}")
    if len(note) > MAX_NOTE:
        return _error(422, "bad_note", f"note longer than {MAX_NOTE} characters")
    if not SESSION_ID.match(session):
        return _error(404, "not_found", "no contact for this session")
    return None


def consoles_router(auth: Auth, pages: Pages, desk: SqlDeskStore, metrics: MetricsSource,
                    hub: ScreenPopHub | None, *, interval_s: float = 2.0,
                    centre_live: bool = False) -> APIRouter:
    """Pages and APIs of the agent desktop and the supervisor console.

    ``centre_live``: the node follows Asterisk over AMI, so ``/api/queues``,
    ``/api/agents`` and ``/api/splits`` exist and the console polls them; without it
    those panels say so instead of showing numbers.
    """
    router = APIRouter()
    agent = Depends(role(auth, "agent"))
    supervisor = Depends(role(auth, "supervisor"))

    @router.get("/agent", include_in_schema=False)
    async def agent_page(who: Principal = agent) -> Response:
        return pages.render("agent.html", who=who, wrapup_codes=WRAPUP_CODES,
                            csrf=who.csrf or "")

    @router.get("/supervisor", include_in_schema=False)
    async def supervisor_page(who: Principal = supervisor) -> Response:
        return pages.render("supervisor.html", who=who, csrf=who.csrf or "",
                            interval_s=interval_s, centre_live=centre_live)

    @router.post("/api/contacts/{session}/wrapup")
    async def wrapup(session: str, request: Request,
                     who: Principal = agent) -> JSONResponse:
        """Save the agent's wrap-up (form fields ``code``, ``note``) on the contact."""
        form = await read_form(request)
        code, note = form.get("code", ""), form.get("note", "").strip()
        invalid = _wrapup_error(session, code, note)
        if invalid is not None:
            return invalid
        try:
            found = await desk.call(desk.save_wrapup, session, code, note)
        except PortError as exc:
            return _error(503, "unavailable", str(exc))
        if not found:
            return _error(404, "not_found", f"no contact for session {session!r}")
        return JSONResponse({"session": session, "wrapup_code": code,
                             "wrapup_note": note or None, "by": who.username})

    @router.get("/api/contacts")
    async def recent(_: Principal = supervisor,
                     limit: int = Query(25, ge=1, le=200)) -> JSONResponse:
        """The newest contacts with outcome, intent, skill and wrap-up (callers masked)."""
        try:
            rows = await desk.call(desk.recent_contacts, limit)
        except PortError as exc:
            return _error(503, "unavailable", str(exc))
        return JSONResponse({"contacts": [_recent_row(c) for c in rows]})

    @router.get("/api/wallboard")
    async def wallboard(_: Principal = supervisor) -> dict[str, Any]:
        """This node's live counters (the same frame ``/ws/wallboard`` pushes)."""
        return await wallboard_data(metrics, desk, hub)

    @router.websocket("/ws/wallboard")
    async def wallboard_ws(ws: WebSocket) -> None:
        if await auth.websocket(ws, "supervisor") is None:
            await ws.close(code=4403)  # before accept: the handshake gets HTTP 403
            return
        await ws.accept()
        await push_until_closed(ws, lambda: wallboard_data(metrics, desk, hub), interval_s)

    return router


async def push_until_closed(ws: WebSocket, frame: Callable[[], Awaitable[Any]],
                            interval_s: float = 0.0) -> None:
    """Send ``await frame()`` until the client goes away: every ``interval_s`` (a
    wallboard), or as ``frame`` yields them (``interval_s`` 0: an alert queue's get)."""
    async def sender() -> None:
        while True:
            await ws.send_text(json.dumps(await frame(), default=str))
            if interval_s > 0:
                await asyncio.sleep(interval_s)

    async def receiver() -> None:
        # Reading is how a closed socket is noticed between pushes.
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass

    tasks = {asyncio.create_task(sender()), asyncio.create_task(receiver())}
    try:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await asyncio.gather(*tasks, return_exceptions=True)
