"""Twilio webhooks: message status callbacks and inbound SMS/WhatsApp replies.

Every request must carry a valid ``X-Twilio-Signature``: HMAC-SHA1 over the URL
Twilio called plus the sorted form fields. Behind a proxy or tunnel the URL the app
sees (http://10.0.0.5:8080/...) is not the one Twilio signed (https://ivr.example/...),
so the URL is rebuilt from the configured ``public_base_url`` and the request path
and query. Anything that does not validate gets 403 and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator

from ivr.notify.outbox import OutboxStore
from ivr.web.forms import read_form

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def twilio_router(
    *,
    store: OutboxStore,
    auth_token: str,
    public_base_url: str,
    prefix: str = "/twilio",
    on_reply: Callable[[str, str, str], Awaitable[None]] | None = None,
) -> APIRouter:
    """Router with ``POST {prefix}/status`` and ``POST {prefix}/inbound``.

    ``on_reply(contact_id, number, body)`` runs after a reply is stored on a contact
    (the CSAT survey reads scores from it).

    Configure Twilio (or the sandbox) with ``{public_base_url}{prefix}/status`` as
    StatusCallback (the messenger's transport does this per message) and
    ``{public_base_url}{prefix}/inbound`` as the number's messaging webhook.
    """
    validator = RequestValidator(auth_token)
    base = public_base_url.rstrip("/")
    router = APIRouter(prefix=prefix)

    async def signed_form(request: Request) -> dict[str, str] | None:
        params = await read_form(request)
        url = base + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        signature = request.headers.get("x-twilio-signature", "")
        if not signature or not validator.validate(url, params, signature):
            log.warning("twilio webhook with bad signature for %s", request.url.path)
            return None
        return params

    @router.post("/status")
    async def status_callback(request: Request) -> Response:
        params = await signed_form(request)
        if params is None:
            return Response("invalid signature", status_code=403)
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        if not sid or not status:
            return Response("MessageSid and MessageStatus required", status_code=400)
        found = await asyncio.to_thread(
            store.apply_status, row_id=request.query_params.get("outbox_id"), sid=sid,
            status=status, error_code=params.get("ErrorCode") or None,
        )
        if not found:
            log.info("status callback for unknown message %s", sid)
        # 2xx even for unknown messages: Twilio would otherwise retry for nothing.
        return Response(status_code=204)

    @router.post("/inbound")
    async def inbound(request: Request) -> Response:
        params = await signed_form(request)
        if params is None:
            return Response("invalid signature", status_code=403)
        sender = params.get("From", "")
        sid = params.get("MessageSid") or params.get("SmsMessageSid") or ""
        if not sender or not sid:
            return Response("From and MessageSid required", status_code=400)
        channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
        contact_id: Any = await asyncio.to_thread(
            store.record_inbound, address=sender.removeprefix("whatsapp:"), channel=channel,
            body=params.get("Body", ""), sid=sid,
            replied_sid=params.get("OriginalRepliedMessageSid") or None,
        )
        log.info("inbound %s reply %s attached to contact %s", channel, sid, contact_id)
        if on_reply is not None and contact_id is not None:
            await on_reply(str(contact_id), sender.removeprefix("whatsapp:"),
                           params.get("Body", ""))
        # Empty TwiML: no automatic answer; an agent sees the reply in the history.
        return Response(EMPTY_TWIML, media_type="application/xml")

    return router
