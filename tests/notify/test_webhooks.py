"""Twilio webhooks: signature checks, status callbacks, inbound replies on the right contact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, insert
from twilio.request_validator import RequestValidator
from twilio_helpers import SMS_FROM, TOKEN, Sandbox, eventually

from ivr.notify.outbox import OutboxStore
from ivr.storage.tables import contacts
from ivr.web.twilio_routes import twilio_router

PUBLIC = "https://ivr.example.com"
CALLER = "+31611112222"


@pytest.fixture
async def client(store: OutboxStore) -> AsyncIterator[httpx.AsyncClient]:
    """The router behind a 'proxy': the app sees http://internal:8080, Twilio signs PUBLIC."""
    app = FastAPI()
    app.include_router(twilio_router(store=store, auth_token=TOKEN, public_base_url=PUBLIC))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8080") as c:
        yield c


def signed(path: str, params: dict[str, str], *, base: str = PUBLIC,
           token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(base + path, params)}


def accepted_row(store: OutboxStore, contact_id: str, to: str = CALLER) -> tuple[str, str]:
    row_id = store.insert(contact_id=contact_id, channel="sms", to=to, from_=SMS_FROM,
                          body="link", language="en")
    store.claim(row_id)
    sid = "SM" + contact_id.encode().hex().ljust(32, "0")[:32]
    store.mark_accepted(row_id, sid, "queued")
    return row_id, sid


def add_contact(engine: Engine, contact_id: str, caller: str, started: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(insert(contacts).values(
            id=contact_id, channel="voice", caller=caller, language="en", started_at=started,
            transcript=[], steps=[]))


async def test_valid_status_callback_updates_row(
    client: httpx.AsyncClient, store: OutboxStore
) -> None:
    """A correctly signed callback (signed over the public URL) updates the status."""
    row_id, sid = accepted_row(store, "c1")
    path = f"/twilio/status?outbox_id={row_id}"
    params = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": "AC1"}
    resp = await client.post(path, data=params, headers=signed(path, params))
    assert resp.status_code == 204
    assert store.get(row_id).twilio_status == "delivered"  # type: ignore[union-attr]


async def test_failed_callback_records_error_and_never_regresses(
    client: httpx.AsyncClient, store: OutboxStore
) -> None:
    """'failed' with ErrorCode is recorded; a late 'sent' does not overwrite it."""
    row_id, sid = accepted_row(store, "c2")
    for status in ("failed", "sent"):
        params = {"MessageSid": sid, "MessageStatus": status, "ErrorCode": "63016"}
        resp = await client.post("/twilio/status", data=params,
                                 headers=signed("/twilio/status", params))
        assert resp.status_code == 204
    row = store.get(row_id)
    assert row is not None and (row.twilio_status, row.error_code) == ("failed", "63016")


@pytest.mark.parametrize("headers", [
    {},  # no signature at all
    {"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"},  # junk
    "wrong-token", "internal-url", "tampered-body",
])
async def test_bad_signature_is_403_and_changes_nothing(
    client: httpx.AsyncClient, store: OutboxStore, headers: object
) -> None:
    """Missing, foreign, internal-URL or tampered signatures are rejected with 403."""
    row_id, sid = accepted_row(store, "c3")
    params = {"MessageSid": sid, "MessageStatus": "delivered"}
    body = dict(params)
    if headers == "wrong-token":
        headers = signed("/twilio/status", params, token="some-other-token")
    elif headers == "internal-url":
        headers = signed("/twilio/status", params, base="http://internal:8080")
    elif headers == "tampered-body":
        headers = signed("/twilio/status", {**params, "MessageStatus": "failed"})
    resp = await client.post("/twilio/status", data=body, headers=headers)  # type: ignore[arg-type]
    assert resp.status_code == 403
    assert store.get(row_id).twilio_status == "queued"  # type: ignore[union-attr]
    resp = await client.post("/twilio/inbound", data={"From": CALLER, "MessageSid": "SMx",
                                                      "Body": "hi"}, headers=headers)  # type: ignore[arg-type]
    assert resp.status_code == 403 and store.events("c3")[-1].direction == "out"


async def test_reply_goes_to_contact_the_message_was_about(
    client: httpx.AsyncClient, store: OutboxStore, engine: Engine
) -> None:
    """A reply attaches to the contact of the latest message sent to that number."""
    now = datetime.now(UTC)
    add_contact(engine, "call-old", CALLER, now - timedelta(hours=2))
    accepted_row(store, "call-linked")
    add_contact(engine, "call-newest-no-message", CALLER, now)
    params = {"From": CALLER, "To": SMS_FROM, "Body": "Done, thanks!", "MessageSid": "SMin1"}
    resp = await client.post("/twilio/inbound", data=params,
                             headers=signed("/twilio/inbound", params))
    assert resp.status_code == 200 and "<Response>" in resp.text
    events = store.events("call-linked")
    assert [(e.direction, e.body) for e in events] == [("out", "link"), ("in", "Done, thanks!")]


async def test_reply_without_message_goes_to_latest_contact(
    client: httpx.AsyncClient, store: OutboxStore, engine: Engine
) -> None:
    """With no message to that number, the reply joins the caller's latest contact."""
    now = datetime.now(UTC)
    add_contact(engine, "older", CALLER, now - timedelta(days=1))
    add_contact(engine, "latest", CALLER, now)
    add_contact(engine, "someone-else", "+31699999999", now + timedelta(minutes=1))
    params = {"From": CALLER, "Body": "question", "MessageSid": "SMin2"}
    for _ in range(2):  # Twilio may deliver a webhook twice: stored once
        resp = await client.post("/twilio/inbound", data=params,
                                 headers=signed("/twilio/inbound", params))
        assert resp.status_code == 200
    assert [e.body for e in store.events("latest")] == ["question"]
    assert store.events("older") == []


async def test_whatsapp_reply_to_specific_message(
    client: httpx.AsyncClient, store: OutboxStore
) -> None:
    """A WhatsApp reply quoting a message goes to that message's contact."""
    _, first_sid = accepted_row(store, "first")
    accepted_row(store, "second")  # newer message to the same number
    params = {"From": f"whatsapp:{CALLER}", "Body": "about the first one",
              "MessageSid": "SMin3", "OriginalRepliedMessageSid": first_sid}
    resp = await client.post("/twilio/inbound", data=params,
                             headers=signed("/twilio/inbound", params))
    assert resp.status_code == 200
    (reply,) = [e for e in store.events("first") if e.direction == "in"]
    assert (reply.channel, reply.address) == ("whatsapp", CALLER)
    assert [e.direction for e in store.events("second")] == ["out"]


async def test_sandbox_inbound_end_to_end(
    sandbox: Sandbox, store: OutboxStore, webhooks: str
) -> None:
    """The sandbox delivers a signed inbound webhook over HTTP; the app stores it."""
    accepted_row(store, "via-sandbox")
    resp = await asyncio.to_thread(httpx.post, f"{sandbox.url}/_sandbox/inbound", json={
        "url": f"{webhooks}/twilio/inbound", "from": CALLER, "to": SMS_FROM, "body": "STOP"})
    assert resp.json()["webhook_status"] == 200
    events = await eventually(lambda: [e for e in store.events("via-sandbox")
                                       if e.direction == "in"])
    assert events[0].body == "STOP"
