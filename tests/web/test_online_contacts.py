"""POST /api/contacts: a web or chat question gets a short code and the number to call;
only signed-in users or bearer tokens may create one; bad input is refused plainly; the
stored question waits for the customer's number or the code, until it expires or a call
claims it (real SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from web_helpers import BASE, LEGACY_TOKEN

from ivr.callbacks.desk import SqlCallbackDesk
from ivr.domain.callbacks import SlotPolicy
from ivr.storage.callbacks import SqlCallbackBook
from ivr.storage.online import SqlOnlineContacts
from ivr.testing.web import WebCore, cheap_passwords
from ivr.web.app import create_web_app

AUTH = {"Authorization": f"Bearer {LEGACY_TOKEN}"}
HANNAH = "+31655556666"  # customer 1008 in the demo CRM
TEXT = "Why is my November invoice 40 euro higher than October?"


async def test_create_returns_code_and_number_and_the_call_finds_it(
        core: WebCore, client: httpx.AsyncClient) -> None:
    body = {"customer": "1008", "intent": "invoice_question", "text": TEXT, "channel": "chat"}
    assert (await client.post("/api/contacts", json=body)).status_code == 401
    r = await client.post("/api/contacts", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert len(doc["code"]) == 6 and doc["code"].isdigit()
    assert doc["call"] == core.settings.phone_number and doc["code"] in doc["how"]
    store = core.online
    assert store is not None
    by_number = await store.waiting_for(HANNAH)
    assert by_number is not None and by_number.text == TEXT
    assert by_number.intent == "invoice_question" and by_number.contact_id == doc["contact_id"]
    by_code = await store.by_code(doc["code"])
    assert by_code is not None and by_code.contact_id == doc["contact_id"]
    assert await store.waiting_for("+31600000000") is None
    await store.claim(by_code, "call-9")  # a call took it: the code stops working
    assert await store.by_code(doc["code"]) is None
    assert await store.waiting_for(HANNAH) is None


async def test_bad_requests_are_refused_with_the_reason(client: httpx.AsyncClient) -> None:
    ok = {"customer": "1008", "intent": "invoice_question", "text": TEXT}
    cases = [({**ok, "intent": "nope"}, 422, "intent"), ({**ok, "text": " "}, 422, "text"),
             ({**ok, "customer": ""}, 422, "customer"), ({**ok, "channel": "fax"}, 422,
                                                          "channel"),
             ({**ok, "customer": "99999"}, 404, "no customer")]
    for body, status, word in cases:
        r = await client.post("/api/contacts", json=body, headers=AUTH)
        assert r.status_code == status and word in r.json()["message"], (body, r.text)
    r = await client.post("/api/contacts", content=b"not json", headers=AUTH)
    assert r.status_code == 422


async def test_codes_expire(core: WebCore) -> None:
    store = SqlOnlineContacts(core.engine, ttl_s=60)
    made = store.create_sync("1008", "invoice_question", TEXT, "web",
                             now=datetime.now(UTC) - timedelta(minutes=5))
    assert made.online.expires_at < datetime.now(UTC)
    assert store.by_code_sync(made.online.code) is None
    assert store.waiting_for_sync(HANNAH) is None
    fresh = store.create_sync("1008", "invoice_question", TEXT, "web")
    assert store.by_code_sync(fresh.online.code) is not None


def _now_desk(core: WebCore, *, open_now: bool, capacity: int = 1) -> SqlCallbackDesk:
    """A real callback desk on the test database; opening hours fixed by the test."""
    async def is_open(_: datetime) -> bool:
        return open_now

    async def staffing(_: str) -> int:
        return 0

    desk = SqlCallbackDesk(
        SqlCallbackBook(core.engine),
        SlotPolicy(capacity={"billing": capacity}), offer_wait_s=120.0,
        staffing=staffing, is_open=is_open, token=lambda k, i: f"{k}.{i}",
        public_url="http://ivr")
    core.callbacks = desk
    return desk


async def test_call_me_now_books_a_callback_due_at_once_with_the_online_context(
        core: WebCore) -> None:
    """"Call me now" stores the question and books a callback the dialer takes at once
    (next attempt now, the customer's number, the online text as the question); when the
    slot under way is full the customer is told to call, and the question is kept."""
    desk = _now_desk(core, open_now=True, capacity=1)
    body = {"customer": "1008", "intent": "invoice_question", "text": TEXT,
            "call_me_now": True}
    web = create_web_app(core, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        first = await c.post("/api/contacts", json=body, headers=AUTH)
        second = await c.post("/api/contacts", json=body, headers=AUTH)
        bad = await c.post("/api/contacts", json={**body, "call_me_now": "yes"}, headers=AUTH)
    assert first.status_code == 201, first.text
    now = first.json()["call_me_now"]
    assert now["status"] == "booked", now
    rec = await desk.book_store.get(now["id"])
    assert rec.draft.number == HANNAH and rec.draft.question == TEXT
    assert rec.draft.skill == "billing" and rec.draft.contact_id == first.json()["contact_id"]
    assert rec.next_attempt_at is not None
    assert abs((rec.next_attempt_at - datetime.now(UTC)).total_seconds()) < 60
    assert second.status_code == 201 and second.json()["call_me_now"]["status"] == "full"
    assert len(second.json()["code"]) == 6  # the question is kept: call with the code
    assert bad.status_code == 422 and "call_me_now" in bad.json()["message"]


async def test_call_me_now_when_closed_or_off_says_why(core: WebCore) -> None:
    body = {"customer": "1008", "intent": "invoice_question", "text": TEXT,
            "call_me_now": True}
    web = create_web_app(core, passwords=cheap_passwords())  # callbacks off
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        off = (await c.post("/api/contacts", json=body, headers=AUTH)).json()["call_me_now"]
    _now_desk(core, open_now=False)
    web = create_web_app(core, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        shut = (await c.post("/api/contacts", json=body, headers=AUTH)).json()["call_me_now"]
    assert off["status"] == "unavailable" and "off" in off["reason"]
    assert shut["status"] == "unavailable" and "closed" in shut["reason"]
