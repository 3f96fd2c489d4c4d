"""``POST /api/contacts``: a question asked on the web or in chat, to follow up by phone.

JSON ``{"customer": id or customer number, "intent": "...", "text": "...",
"channel": "web" | "chat"}``, authenticated like the other API routes (a signed-in
agent or higher, or a personal API token / IVR_API_TOKEN as bearer). Answers 201 with
the short code, the number to call and when the code expires; the customer who calls
from one of their numbers, or keys ``*`` and the code at the question, is put through
with this question (the agent's screen-pop shows the text) without being asked again.
``"call_me_now": true`` also books a callback due at once (the callback dialer rings an
agent with this context, then the customer); the answer says whether it could.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ivr.domain.callbacks import CallbackDraft, CallbackError, SlotFull
from ivr.domain.ports import IntentCatalogue, PortError
from ivr.storage.online import Created, SqlOnlineContacts, UnknownCustomer
from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role

if TYPE_CHECKING:
    from ivr.callbacks.desk import SqlCallbackDesk as CallbackDesk

MAX_TEXT = 2000
CHANNELS = ("web", "chat")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _invalid(body: Any, catalogue: IntentCatalogue) -> str | None:
    """What is wrong with the request body, None when it is usable."""
    if not isinstance(body, dict):
        return "send a JSON object"
    customer, intent, text = body.get("customer"), body.get("intent"), body.get("text")
    if not isinstance(customer, str | int) or isinstance(customer, bool) or not str(customer):
        return "customer: a customer id or customer number is required"
    if not isinstance(intent, str) or catalogue.spec(intent) is None:
        return f"intent: unknown intent {intent!r}"
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return f"text: 1-{MAX_TEXT} characters required"
    if body.get("channel", "web") not in CHANNELS:
        return f"channel: one of {', '.join(CHANNELS)}"
    if not isinstance(body.get("call_me_now", False), bool):
        return "call_me_now: true or false"
    return None


async def _call_now(desk: CallbackDesk | None, made: Created, catalogue: IntentCatalogue,
                    channel: str) -> dict[str, Any]:
    """Book a callback due at once with the online context; why not, when it cannot."""
    if desk is None:
        return {"status": "unavailable", "reason": "callbacks are off on this line"}
    if not made.number:
        return {"status": "unavailable", "reason": "no phone number for this customer"}
    o = made.online
    spec = catalogue.spec(o.intent)
    draft = CallbackDraft(
        contact_id=o.contact_id, number=made.number, language=made.language,
        skill=spec.skill if spec is not None and spec.skill else "general",
        slot_start=o.expires_at, slot_end=o.expires_at,  # ignored: due now
        question=o.text, intent=o.intent, customer_id=o.customer_id,
        customer_name=made.name, transcript=(f"{channel}: {o.text}",),
        reason=f"call me now ({channel})")
    try:
        rec = await desk.book_now(draft)
    except SlotFull:
        return {"status": "full", "reason": "nobody is free to call now; please call us"}
    except (CallbackError, PortError) as exc:
        return {"status": "unavailable", "reason": str(exc)}
    return {"status": rec.status.value, "id": rec.id,
            "due": rec.next_attempt_at.isoformat() if rec.next_attempt_at else None}


def online_router(auth: Auth, store: SqlOnlineContacts, catalogue: IntentCatalogue,
                  phone_number: str, callbacks: CallbackDesk | None = None) -> APIRouter:
    router = APIRouter()
    agent = Depends(role(auth, "agent"))

    @router.post("/api/contacts")
    async def create(request: Request, _: Principal = agent) -> JSONResponse:
        """Store the online question; the code and number the customer calls with."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        invalid = _invalid(body, catalogue)
        if invalid is not None:
            return _error(422, "invalid", invalid)
        try:
            made = await store.create(str(body["customer"]), body["intent"],
                                      body["text"].strip(), body.get("channel", "web"))
        except UnknownCustomer:
            return _error(404, "not_found", f"no customer {body['customer']!r}")
        except PortError as exc:
            return _error(503, "unavailable", str(exc))
        o = made.online
        doc: dict[str, Any] = {
            "contact_id": o.contact_id, "code": o.code, "call": phone_number,
            "expires_at": o.expires_at.isoformat(), "intent": o.intent,
            "how": f"Call {phone_number} from your own phone, or press * and key in "
                   f"{o.code} when asked your question.",
        }
        if body.get("call_me_now"):
            # The question is stored either way: if no call can be placed now, the
            # customer still has the code and the number.
            doc["call_me_now"] = await _call_now(callbacks, made, catalogue,
                                                 body.get("channel", "web"))
        return JSONResponse(doc, status_code=201)

    return router
