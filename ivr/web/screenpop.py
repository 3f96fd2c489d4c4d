"""Agent screen-pop API: the contact behind an ``IVR_SESSION``, for the agent desktop.

The agent leg carries ``IVR_SESSION`` (set before the hand-off); the desktop asks
``GET /api/contacts/{session}`` (session cookie or bearer token, see ``ivr.web.auth``)
and shows what the caller already told the IVR.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from ivr.domain.model import ContactSnapshot, Step
from ivr.domain.ports import ContactLog, PortError


def contact_view(contact: ContactSnapshot) -> dict[str, Any]:
    """The JSON an agent desktop gets for one contact."""
    return {
        "session": contact.id,
        "channel": contact.channel.value,
        "caller": contact.caller,
        "language": contact.language,
        "started_at": contact.started_at.isoformat(),
        "ended_at": contact.ended_at.isoformat() if contact.ended_at else None,
        "customer_id": contact.customer_id,
        "question": contact.question,
        "intent": contact.intent,
        "confidence": contact.confidence,
        "scenario": contact.scenario.value if contact.scenario else None,
        "skill": contact.skill,
        "action": contact.action,
        "outcome": contact.outcome.value if contact.outcome else None,
        "transcript": list(contact.transcript),
        "pin_verified": pin_verified(contact),
        "steps": [
            {"step": s.step.value, "at": s.at.isoformat(), "detail": s.detail}
            for s in contact.steps
        ],
    }


def pin_verified(contact: ContactSnapshot) -> bool:
    """Whether the caller proved who they are with their PIN during this contact."""
    return any(s.step is Step.IDENTIFICATION and s.detail.get("method") == "pin"
               and s.detail.get("result") == "ok" for s in contact.steps)


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers=headers
    )


def token_ok(request: HTTPConnection, token: str) -> bool:
    """The ``Authorization: Bearer`` header matches ``token``; an empty token refuses all.

    Never from the URL: a token in a query string ends up in proxy and access logs.
    """
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    presented = value.strip() if scheme.lower() == "bearer" else ""
    return bool(token) and bool(presented) and hmac.compare_digest(
        presented.encode(), token.encode())


CustomerCard = Callable[[int], Awaitable[dict[str, Any] | None]]
# Checks a request; returns the error response to send, or None to let it through.
Guard = Callable[[Request], Awaitable[JSONResponse | None]]


def bearer_guard(token: str) -> Guard:
    """A guard accepting one shared bearer token (fails closed when it is empty)."""
    async def guard(request: Request) -> JSONResponse | None:
        if token_ok(request, token):
            return None
        return _error(401, "unauthorized", "missing or invalid bearer token")
    return guard


def screenpop_router(
    contacts: ContactLog, guard: Guard | str, customer_card: CustomerCard | None = None
) -> APIRouter:
    """Router serving ``GET /api/contacts/{session}``, guarded by ``guard``.

    A plain string is a shared bearer token; an empty one refuses every request (fail
    closed) instead of opening the API. The web app passes a role check instead
    (``ivr.web.app``). ``customer_card`` adds the customer record and recent
    cross-channel history, so the agent's screen pops with everything and the caller
    never repeats themselves.
    """
    check = bearer_guard(guard) if isinstance(guard, str) else guard
    router = APIRouter()

    @router.get("/api/contacts/{session}")
    async def get_contact(session: str, request: Request) -> JSONResponse:
        denied = await check(request)
        if denied is not None:
            return denied
        if not session or len(session) > 128:
            return _error(404, "not_found", "no contact for this session")
        try:
            contact = await contacts.get(session)
        except PortError as exc:
            return _error(503, "unavailable", f"contact log unavailable: {exc}")
        if contact is None:
            return _error(404, "not_found", f"no contact for session {session!r}")
        view = contact_view(contact)
        if customer_card is not None and contact.customer_id is not None:
            try:
                view["customer"] = await customer_card(contact.customer_id)
            except PortError:
                view["customer"] = None  # the contact itself is still worth showing
        return JSONResponse(view)

    return router
