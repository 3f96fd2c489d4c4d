"""TwilioMessenger + Outbox against the real sandbox server through the real twilio client."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from twilio_helpers import (
    SMS_FROM,
    WA_FROM,
    Sandbox,
    eventually,
    make_messenger,
    make_outbox,
    make_transport,
    running,
)

from ivr.notify.outbox import OutboxStore

TO = "+31612345678"


async def test_send_sms_accepted_and_delivered(
    sandbox: Sandbox, store: OutboxStore, webhooks: str
) -> None:
    """An SMS is accepted with Twilio's SID; status callbacks move the row to delivered."""
    outbox = make_outbox(store, make_transport(sandbox, callback=f"{webhooks}/twilio/status"))
    async with running(outbox):
        receipt = await make_messenger(outbox).send_link(
            to=TO, channel="sms", body="Change your address: https://x.example/a?t=1",
            contact_id="contact-1", language="en")
        assert receipt.ok and receipt.message_id and receipt.message_id.startswith("SM")
        (msg,) = sandbox.messages()
        assert (msg["to"], msg["from"], msg["sid"]) == (TO, SMS_FROM, receipt.message_id)
        rows = await eventually(lambda: [r for r in store.rows()
                                         if r.twilio_status == "delivered"])
    assert rows[0].state == "accepted" and rows[0].message_sid == receipt.message_id
    assert [c["http"] for c in sandbox.messages()[0]["callbacks"]] == [204, 204, 204]
    (event,) = store.events("contact-1")
    assert (event.direction, event.channel, event.message_sid) == ("out", "sms", msg["sid"])


async def test_whatsapp_template_uses_content_sid(sandbox: Sandbox, store: OutboxStore) -> None:
    """WhatsApp goes to whatsapp: addresses with the language's approved template."""
    outbox = make_outbox(store, make_transport(sandbox))
    messenger = make_messenger(outbox, whatsapp_templates={"nl": "HX" + "a" * 32})
    async with running(outbox):
        receipt = await messenger.send_link(
            to=TO, channel="whatsapp", body="Chat: https://chat.example/s?t=abc",
            contact_id="c2", language="nl")
    assert receipt.ok and receipt.channel == "whatsapp"
    (msg,) = sandbox.messages()
    assert msg["to"] == f"whatsapp:{TO}" and msg["from"] == f"whatsapp:{WA_FROM}"
    assert msg["content_sid"] == "HX" + "a" * 32
    assert json.loads(msg["content_variables"])["2"] == "https://chat.example/s?t=abc"


async def test_retries_after_server_errors(sandbox: Sandbox, store: OutboxStore) -> None:
    """Two 500s: the caller hears 'queued' and the outbox delivers exactly one message."""
    sandbox.fault(status=500, count=2)
    outbox = make_outbox(store, make_transport(sandbox))
    async with running(outbox):
        receipt = await make_messenger(outbox).send_link(
            to=TO, channel="sms", body="retry me", contact_id="c3", language="en")
        assert receipt.ok and not receipt.permanent
        assert receipt.message_id is not None and not receipt.message_id.startswith("SM")
        rows = await eventually(lambda: [r for r in store.rows() if r.state == "accepted"])
    assert rows[0].attempts == 3
    assert len(sandbox.messages()) == 1 and sandbox.requests() == 3


async def test_timeout_before_create_is_retried(sandbox: Sandbox, store: OutboxStore) -> None:
    """A hung request times out, is looked up (not found) and sent again: one message."""
    sandbox.fault(hang_s=1.5, count=1)
    outbox = make_outbox(store, make_transport(sandbox, timeout_s=0.4))
    async with running(outbox):
        receipt = await make_messenger(outbox, deadline_s=1.0).send_link(
            to=TO, channel="sms", body="slow network", contact_id="c4", language="en")
        assert receipt.ok
        rows = await eventually(lambda: [r for r in store.rows() if r.state == "accepted"])
    assert rows[0].attempts == 2
    assert len(sandbox.messages()) == 1


async def test_lost_response_is_not_sent_twice(sandbox: Sandbox, store: OutboxStore) -> None:
    """Created at Twilio but the response timed out: the retry adopts the SID, no resend.

    The idempotency header is off here, so only the list-and-match reconciliation
    (what works against real Twilio) prevents the duplicate.
    """
    sandbox.fault(hang_s=1.5, count=1, after_create=True)
    outbox = make_outbox(store, make_transport(sandbox, timeout_s=0.4, idempotency=False))
    async with running(outbox):
        await make_messenger(outbox, deadline_s=0.2).send_link(
            to=TO, channel="sms", body="exactly once please", contact_id="c5", language="en")
        rows = await eventually(lambda: [r for r in store.rows() if r.state == "accepted"])
    (msg,) = sandbox.messages()
    assert rows[0].message_sid == msg["sid"]
    assert sandbox.requests() == 1  # the only POST was the first one


@pytest.mark.parametrize(("to", "code"), [("+15005550001", "21211"), ("+15005550004", "21610")])
async def test_permanent_failure_reported_in_time(
    sandbox: Sandbox, store: OutboxStore, to: str, code: str
) -> None:
    """Invalid/unsubscribed numbers come back as permanent failures before the deadline."""
    outbox = make_outbox(store, make_transport(sandbox))
    async with running(outbox):
        started = time.monotonic()
        receipt = await make_messenger(outbox, deadline_s=3.0).send_link(
            to=to, channel="sms", body="hello", contact_id="c6", language="en")
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.3)  # give a (wrong) retry the chance to happen
    assert not receipt.ok and receipt.permanent and receipt.error_code == code
    assert elapsed < 3.0
    (row,) = store.rows()
    assert (row.state, row.error_code, row.attempts) == ("failed", code, 1)
    assert sandbox.requests() == 1 and sandbox.messages() == []


async def test_injected_permanent_code_for_whatsapp_window(
    sandbox: Sandbox, store: OutboxStore
) -> None:
    """A number-specific 63016 fault (outside WhatsApp window) is final for that row."""
    sandbox.fault(number=TO, code=63016, count=None)
    outbox = make_outbox(store, make_transport(sandbox))
    async with running(outbox):
        receipt = await make_messenger(outbox).send_link(
            to=TO, channel="whatsapp", body="free-form", contact_id="c7", language="en")
    assert not receipt.ok and receipt.permanent and receipt.error_code == "63016"


@pytest.mark.parametrize(("to", "channel", "code"), [
    ("0612345678", "sms", "invalid_to"), ("anonymous", "sms", "invalid_to"),
    (TO, "fax", "bad_channel"), ("", "whatsapp", "invalid_to"),
])
async def test_bad_input_refused_without_raising(
    sandbox: Sandbox, store: OutboxStore, to: str, channel: str, code: str
) -> None:
    """Bad numbers/channels give a clear failed receipt; nothing is queued or sent."""
    outbox = make_outbox(store, make_transport(sandbox))
    receipt = await make_messenger(outbox).send_link(
        to=to, channel=channel, body="x", contact_id="c8", language="en")
    assert not receipt.ok and receipt.error_code == code
    assert store.rows() == [] and sandbox.requests() == 0


async def test_db_down_gives_failed_receipt(sandbox: Sandbox, store: OutboxStore) -> None:
    """If the outbox cannot be written the caller is told, instead of an exception."""
    from sqlalchemy import text

    with store._engine.begin() as conn:  # simulate a broken schema / unavailable DB
        conn.execute(text("DROP TABLE outbox"))
    receipt = await make_messenger(make_outbox(store, make_transport(sandbox))).send_link(
        to=TO, channel="sms", body="x", contact_id="c9", language="en")
    assert not receipt.ok and receipt.error_code == "outbox_unavailable"


async def test_queued_when_worker_is_slow(sandbox: Sandbox, store: OutboxStore) -> None:
    """A first attempt slower than the deadline returns ok/queued; the row is sent later."""
    sandbox.fault(hang_s=1.0, count=1, after_create=True)
    outbox = make_outbox(store, make_transport(sandbox, timeout_s=3.0))
    async with running(outbox):
        receipt = await make_messenger(outbox, deadline_s=0.2).send_link(
            to=TO, channel="sms", body="patience", contact_id="c10", language="en")
        (row,) = store.rows()
        assert row.state == "sending"  # returned while the first attempt was still in flight
        assert receipt.ok and receipt.message_id == row.id
        await eventually(lambda: [r for r in store.rows() if r.state == "accepted"])
    assert len(sandbox.messages()) == 1


async def test_late_failure_arrives_by_status_callback(
    sandbox: Sandbox, store: OutboxStore, webhooks: str
) -> None:
    """A failure Twilio reports after accepting (63016) lands on the row via the callback."""
    sandbox.fault(number=TO, code=63016, async_failure=True)
    outbox = make_outbox(store, make_transport(sandbox, callback=f"{webhooks}/twilio/status"))
    async with running(outbox):
        receipt = await make_messenger(outbox).send_link(
            to=TO, channel="whatsapp", body="outside the window", contact_id="c11",
            language="en")
        assert receipt.ok
        rows = await eventually(lambda: [r for r in store.rows() if r.twilio_status == "failed"])
    assert rows[0].error_code == "63016" and rows[0].state == "accepted"
