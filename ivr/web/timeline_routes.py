"""The customer timeline API, the signed-link landing route and the self-service callback.

``GET /l/<key>?t=<token>`` is open (the signed token is the credential): it verifies
the token, records "link opened" (and "chat started" for a chat link) on the contact
the link belongs to, and redirects to the configured self-service or chat URL. A bad
or expired link gets a short page with what to do instead, never a stack trace; a
database failure while recording still lets the customer through.

``POST /api/links/completed`` is the self-service site telling us a flow finished:
JSON ``{"t": token, "result": "..."}`` signed with ``X-Kanaal-Signature`` =
hex HMAC-SHA256 of the raw body under ``IVR_LINK_SECRET``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ivr.domain.ports import PortError
from ivr.domain.timeline import CHAT_STARTED, LINK_OPENED, SELF_SERVICE_DONE
from ivr.notify.links import LinkTokenError, LinkTokenExpired, SignedLinkBuilder, key_of_slug
from ivr.storage.timeline import SqlTimeline
from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Kanaal-Signature"


def callback_signature(secret: str, body: bytes) -> str:
    """What the self-service site sends in ``X-Kanaal-Signature`` for ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _page(status: int, title: str, text: str) -> HTMLResponse:
    body = (f"<!doctype html><html lang=en><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width'><title>{html.escape(title)}"
            f"</title><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></html>")
    return HTMLResponse(body, status_code=status)


def timeline_router(auth: Auth, timeline: SqlTimeline, links: SignedLinkBuilder,
                    link_secret: str) -> APIRouter:
    """Timeline API (agents), landing route (open), self-service callback (signed)."""
    router = APIRouter()
    agent = Depends(role(auth, "agent"))

    @router.get("/api/customers/{customer_id}/timeline")
    async def customer_timeline(customer_id: int, _: Principal = agent,
                                limit: int = Query(50, ge=1, le=500)) -> JSONResponse:
        """Calls, messages (with delivery status), links opened, chats, self-service."""
        entries = await timeline.timeline(customer_id, limit)
        return JSONResponse({"customer_id": customer_id,
                             "entries": [e.as_dict() for e in entries]})

    @router.get("/l/{slug}")
    async def landing(slug: str, t: str = "") -> Response:
        """Verify a signed link, note the open on its contact, redirect to its target."""
        key = key_of_slug(slug)
        if key is None:
            return _page(404, "Unknown link", "This link is not one of ours.")
        try:
            claims = links.claims(t, key=key)
        except LinkTokenExpired:
            return _page(410, "This link has expired",
                         "Please call us again and we will send you a new one.")
        except LinkTokenError:
            return _page(400, "This link is not valid",
                         "Please use the link exactly as we sent it, or call us.")
        try:
            await timeline.record(claims.contact_id, LINK_OPENED, key)
            if key == "chat":
                await timeline.record(claims.contact_id, CHAT_STARTED, "chat", channel="chat")
        except PortError as exc:  # the customer still gets where they were going
            log.warning("could not record the open of a %s link: %s", key, exc)
        return RedirectResponse(links.destination(key, t), status_code=303)

    @router.post("/api/links/completed")
    async def completed(request: Request) -> JSONResponse:
        """The self-service site reports a finished flow (HMAC-signed JSON)."""
        raw = await request.body()
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(callback_signature(link_secret, raw), given):
            return JSONResponse({"error": "bad_signature"}, status_code=403)
        try:
            doc: Any = json.loads(raw)
            claims = links.claims(str(doc["t"]))
            result = str(doc.get("result", "done"))[:200]
        except (ValueError, KeyError, TypeError, LinkTokenError) as exc:
            return JSONResponse({"error": "bad_request", "message": str(exc)}, status_code=400)
        if not await timeline.record(claims.contact_id, SELF_SERVICE_DONE,
                                     f"{claims.key}: {result}"):
            return JSONResponse({"error": "unknown_contact"}, status_code=404)
        return JSONResponse({"recorded": True, "contact_id": claims.contact_id})

    return router
