"""Outages and surge alerts for supervisors.

    GET   /api/outages                 pending, scheduled and active (``?all=true``: every one)
    POST  /api/outages                 {"regions": [...], "messages": {"en": .., "nl": ..},
                                        "starts_at"?: ISO, "ends_at"?: ISO}          -> 201
    PATCH /api/outages/{id}            any of regions, messages, starts_at, ends_at,
                                        "clear_end": true
    POST  /api/outages/{id}/end        callers stop hearing it; subscribers get an SMS
    POST  /api/outages/{id}/confirm    a surge's pending announcement is heard from now
    POST  /api/outages/{id}/dismiss    a surge's pending announcement is dropped
    GET   /api/surge                   the node's detector: learning, windows, surges
    WS    /ws/alerts                   surge and outage alerts, pushed as they happen

Supervisor role (cookie sessions send the CSRF header). Errors are ``{"error",
"message"}``: 422 invalid input, 404 unknown outage, 409 not allowed in its state,
503 database unreachable.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket
from fastapi.responses import JSONResponse

from ivr.domain.outages import BadOutage, OutageError, OutageRecord, draft
from ivr.domain.ports import PortError
from ivr.outages.alerts import SupervisorAlerts
from ivr.outages.notify import notify_subscribers
from ivr.outages.surge import senders_of
from ivr.outages.views import outage_view
from ivr.storage.outages import OutageChange, SqlOutageBoard
from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role
from ivr.web.consoles import push_until_closed

_STATUS = {"bad_outage": 422, "not_found": 404, "conflict": 409}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _time(body: dict[str, Any], key: str) -> datetime | None:
    raw = body.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadOutage(f"{key}: an ISO 8601 time with a zone")
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise BadOutage(f"{key}: {raw[:40]!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise BadOutage(f"{key}: give a time zone (e.g. +01:00 or Z)")
    return at


def _regions(body: dict[str, Any]) -> list[str] | None:
    regions = body.get("regions")
    if regions is None:
        return None
    if isinstance(regions, str):
        regions = [regions]
    if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
        raise BadOutage("regions: a list of region names")
    return regions


def _messages(body: dict[str, Any]) -> dict[str, str] | None:
    messages = body.get("messages")
    if messages is None:
        return None
    if not isinstance(messages, dict) or not all(isinstance(v, str) for v in messages.values()):
        raise BadOutage('messages: {"en": "...", "nl": "..."}')
    return {str(k): v for k, v in messages.items()}


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadOutage("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadOutage("the body must be a JSON object")
    return body


class OutagesApi:
    """The handlers; ``outages_router`` mounts them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.board = SqlOutageBoard(app.engine)
        # A web core without a node (tests, `ivr demo`) still gets a hub of its own.
        self.alerts: SupervisorAlerts = getattr(app, "alerts", None) or SupervisorAlerts()
        self.senders = senders_of(app.settings.sms_from, app.settings.whatsapp_from)

    async def guarded(self, work: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
        try:
            return await work()
        except OutageError as exc:
            return _error(_STATUS.get(exc.code, 422), exc.code, str(exc))
        except PortError as exc:
            return _error(503, "unavailable", str(exc))

    def announce(self, state: str, o: OutageRecord, who: Principal) -> dict[str, Any]:
        view = outage_view(o)
        self.alerts.publish({"type": "outage", "state": state, "outage": view,
                             "by": who.username, "at": datetime.now(UTC).isoformat()})
        return view

    async def news(self, o: OutageRecord, kind: str) -> int:
        store = getattr(self.app, "outbox_store", None)
        if store is None:
            return 0
        return await notify_subscribers(self.board, store, self.senders, o, kind)

    async def list_outages(self, all_: bool) -> JSONResponse:
        async def work() -> JSONResponse:
            found = await self.board.listing(include_ended=all_)
            return JSONResponse({"outages": [outage_view(o) for o in found]})
        return await self.guarded(work)

    async def post(self, request: Request, who: Principal) -> JSONResponse:
        async def work() -> JSONResponse:
            body = await _body(request)
            d = draft(regions=_regions(body) or [], messages=_messages(body) or {},
                      starts_at=_time(body, "starts_at") or datetime.now(UTC),
                      ends_at=_time(body, "ends_at"), created_by=who.username)
            o = await self.board.add(d)
            return JSONResponse(self.announce("posted", o, who), status_code=201)
        return await self.guarded(work)

    async def patch(self, outage_id: int, request: Request, who: Principal) -> JSONResponse:
        async def work() -> JSONResponse:
            body = await _body(request)
            change = OutageChange(regions=_regions(body), messages=_messages(body),
                                  starts_at=_time(body, "starts_at"),
                                  ends_at=_time(body, "ends_at"),
                                  clear_end=bool(body.get("clear_end")))
            if change == OutageChange():
                raise BadOutage("nothing to change")
            o = await self.board.update(outage_id, change)
            sent = await self.news(o, "update") if change.messages else 0
            return JSONResponse({**self.announce("updated", o, who), "notified": sent})
        return await self.guarded(work)

    async def move(self, outage_id: int, action: str, who: Principal) -> JSONResponse:
        moves = {"end": "ended", "confirm": "confirmed", "dismiss": "dismissed"}
        if action not in moves:
            return _error(404, "not_found", "use end, confirm or dismiss")

        async def work() -> JSONResponse:
            sent = 0
            if action == "end":
                o = await self.board.end(outage_id)
                sent = await self.news(o, "ended")
            elif action == "confirm":
                o = await self.board.confirm(outage_id, by=who.username)
            else:
                o = await self.board.dismiss(outage_id, by=who.username)
            return JSONResponse({**self.announce(moves[action], o, who), "notified": sent})
        return await self.guarded(work)

    def surge(self) -> JSONResponse:
        service = getattr(self.app, "surge", None)
        if service is None:
            return JSONResponse({"enabled": False})
        return JSONResponse({"enabled": True, **service.status()})

    async def websocket(self, auth: Auth, ws: WebSocket) -> None:
        if await auth.websocket(ws, "supervisor") is None:
            await ws.close(code=4401)
            return
        await ws.accept()
        queue = self.alerts.subscribe()
        try:
            await push_until_closed(ws, queue.get)
        finally:
            self.alerts.unsubscribe(queue)


def outages_router(auth: Auth, app: Any) -> APIRouter:
    """The routes above for the node's ``App`` (engine, alerts, outbox, surge service)."""
    router = APIRouter()
    supervisor = Depends(role(auth, "supervisor"))
    api = OutagesApi(app)

    @router.get("/api/outages")
    async def list_outages(_: Principal = supervisor,
                           all_: bool = Query(False, alias="all")) -> JSONResponse:
        """Outages, newest first (``?all=true``: ended and dismissed ones too)."""
        return await api.list_outages(all_)

    @router.post("/api/outages")
    async def post_outage(request: Request, who: Principal = supervisor) -> JSONResponse:
        """Post an outage; callers from its regions hear it from ``starts_at`` (now)."""
        return await api.post(request, who)

    @router.patch("/api/outages/{outage_id}")
    async def patch_outage(outage_id: int, request: Request,
                           who: Principal = supervisor) -> JSONResponse:
        """Change regions, messages or times; subscribers hear of a new message."""
        return await api.patch(outage_id, request, who)

    @router.post("/api/outages/{outage_id}/{action}")
    async def move_outage(outage_id: int, action: str,
                          who: Principal = supervisor) -> JSONResponse:
        """``end``, ``confirm`` or ``dismiss``."""
        return await api.move(outage_id, action, who)

    @router.get("/api/surge")
    async def surge_status(_: Principal = supervisor) -> JSONResponse:
        """The node's surge detector (``enabled: false`` without one)."""
        return api.surge()

    @router.websocket("/ws/alerts")
    async def alerts_ws(ws: WebSocket) -> None:
        await api.websocket(auth, ws)

    return router
