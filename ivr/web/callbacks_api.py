"""Callbacks on the web.

    GET  /api/callbacks                    callbacks, earliest slot first (``?status=booked,retry``,
                                            ``?limit=``, ``?mine=1``: open ones in the signed-in
                                            agent's skills, for the desktop); agent role
    POST /api/callbacks/{id}/cancel        cancel a booked callback; supervisor role
    GET  /cb/{token}                       the customer's page from the confirmation SMS
                                            (signed link): the slot, cancel, or move
    POST /cb/{token}/cancel                the customer cancels
    POST /cb/{token}/move                  form ``slot=<ISO start>``: the customer moves it

Errors are ``{"error", "message"}``: 404 unknown callback, 409 not open to change
(cancelled, done, being dialled) or the slot is full/past, 503 database unreachable.
The customer pages answer in plain HTML and never say more than the link covers.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ivr.callbacks.desk import SqlCallbackDesk
from ivr.callbacks.views import callback_view
from ivr.domain.callbacks import CallbackError, CallbackRecord, CallbackStatus, UnknownCallback
from ivr.domain.ports import PortError
from ivr.notify.links import LinkTokenError, LinkTokenExpired, SignedLinkBuilder
from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.callbacks import SqlCallbackBook
from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role
from ivr.web.forms import read_form


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


async def _guarded(work: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    try:
        return await work()
    except UnknownCallback as exc:
        return _error(404, "not_found", str(exc))
    except CallbackError as exc:
        return _error(409, "conflict", str(exc))
    except PortError as exc:
        return _error(503, "unavailable", str(exc))


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport "
        f"content='width=device-width'><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1>{body}</html>", status_code=status)


def _when(at: datetime, tz: Any) -> str:
    return f"{at.astimezone(tz):%A %d %B %H:%M}"


class CustomerPages:
    """The signed-link pages: what the customer sees and may do with their callback."""

    def __init__(self, desk: SqlCallbackDesk, links: SignedLinkBuilder, tz: Any,
                 now: Callable[[], datetime]) -> None:
        self.desk, self.links, self.tz, self.now = desk, links, tz, now

    async def record(self, token: str) -> CallbackRecord | HTMLResponse:
        try:
            callback_id = self.links.claims(token, key="callback").contact_id
        except LinkTokenExpired:
            return _page(410, "This link has expired", "<p>Please call us to change it.</p>")
        except LinkTokenError:
            return _page(400, "This link is not valid", "<p>Use it exactly as we sent it.</p>")
        try:
            return await self.desk.book_store.get(callback_id)
        except UnknownCallback:
            return _page(404, "Unknown callback", "<p>We have no such callback.</p>")

    async def show(self, token: str, note: str = "") -> HTMLResponse:
        cb = await self.record(token)
        if isinstance(cb, HTMLResponse):
            return cb
        when = html.escape(_when(cb.draft.slot_start, self.tz))
        parts = [f"<p>{html.escape(note)}</p>" if note else "",
                 f"<p>Status: <b>{cb.status.value}</b>. Time: <b>{when}</b>.</p>"]
        if cb.status is CallbackStatus.BOOKED:
            t = html.escape(token)
            parts.append(f"<form method=post action='/cb/{t}/cancel'>"
                         "<button>Cancel the callback</button></form>")
            slots = await self.desk.offer(cb.draft.skill, self.now())
            for s in slots:
                if s.start != cb.draft.slot_start:
                    parts.append(f"<form method=post action='/cb/{t}/move'>"
                                 f"<input type=hidden name=slot value='{s.start.isoformat()}'>"
                                 f"<button>Move to {html.escape(_when(s.start, self.tz))}"
                                 "</button></form>")
        return _page(200, "Your callback from Kanaal", "".join(parts))

    async def change(self, token: str, work: Callable[[str], Awaitable[object]],
                     done: str) -> HTMLResponse:
        cb = await self.record(token)
        if isinstance(cb, HTMLResponse):
            return cb
        try:
            await work(cb.id)
        except CallbackError as exc:
            return await self.show(token, f"Not changed: {exc}")
        except PortError:
            return _page(503, "Please try again", "<p>We could not change it just now.</p>")
        return await self.show(token, done)


OPEN = (CallbackStatus.BOOKED, CallbackStatus.DIALING, CallbackStatus.RETRY)


async def _listing(book: SqlCallbackBook, directory: SqlAgentDirectory, who: Principal,
                   status: str, mine: bool, limit: int) -> JSONResponse:
    try:
        wanted = [CallbackStatus(s) for s in status.split(",") if s]
    except ValueError:
        return _error(422, "bad_status", f"status: one of "
                      f"{', '.join(s.value for s in CallbackStatus)}")
    skills: list[str] | None = None
    if mine:
        # The agent's skills: the callbacks they may be rung for (agent-first) or take
        # from the priority queue (customer-first). No agent profile: no skills.
        record = await directory.get(who.agent_code) if who.agent_code else None
        skills = [] if record is None else sorted(record.profile.skills)
        wanted = wanted or list(OPEN)
    found = await book.listing(status=wanted, limit=limit, skills=skills)
    return JSONResponse({"callbacks": [callback_view(cb) for cb in found],
                         "count": len(found), "skills": skills})


def callbacks_router(auth: Auth, app: Any) -> APIRouter:
    """Mounts the API (agents, supervisors) and the customer's signed-link pages."""
    from zoneinfo import ZoneInfo

    from ivr.app import build_links

    router = APIRouter()
    agent, supervisor = Depends(role(auth, "agent")), Depends(role(auth, "supervisor"))
    desk: SqlCallbackDesk | None = getattr(app, "callbacks", None)
    book = desk.book_store if desk is not None else SqlCallbackBook(app.engine)

    directory = SqlAgentDirectory(app.engine)

    @router.get("/api/callbacks")
    async def list_callbacks(who: Principal = agent, status: str = "", mine: bool = False,
                             limit: int = Query(200, ge=1, le=10_000)) -> JSONResponse:
        """Callbacks with their attempts (the dialer's record of every call); ``mine=1``:
        the open ones (booked, dialling, retry) in the signed-in agent's skills."""
        return await _guarded(lambda: _listing(book, directory, who, status, mine, limit))

    @router.post("/api/callbacks/{callback_id}/cancel")
    async def cancel(callback_id: str, _: Principal = supervisor) -> JSONResponse:
        """Cancel a booked (or retrying) callback; its place in the slot is freed."""
        async def work() -> JSONResponse:
            return JSONResponse(callback_view(await book.cancel(callback_id)))
        return await _guarded(work)

    if desk is None:
        return router
    pages = CustomerPages(desk, build_links(app.settings), ZoneInfo(app.settings.timezone),
                          app.clock.now)

    @router.get("/cb/{token}")
    async def customer_page(token: str) -> HTMLResponse:
        """The link in the confirmation SMS: the slot, and cancel or move."""
        return await pages.show(token)

    @router.post("/cb/{token}/cancel")
    async def customer_cancel(token: str) -> HTMLResponse:
        return await pages.change(token, book.cancel, "Your callback is cancelled.")

    @router.post("/cb/{token}/move")
    async def customer_move(token: str, request: Request) -> HTMLResponse:
        slot = (await read_form(request)).get("slot", "")

        async def move(callback_id: str) -> object:
            try:
                start = datetime.fromisoformat(slot)
            except ValueError:
                raise CallbackError(f"{slot[:40]!r} is not a time") from None
            cb = await book.get(callback_id)
            cap = await desk.capacity(cb.draft.skill)
            end = start + (cb.draft.slot_end - cb.draft.slot_start)
            return await book.run_move(callback_id, start, end, policy=desk.policy, cap=cap)
        return await pages.change(token, move, "Your callback is moved.")

    return router
