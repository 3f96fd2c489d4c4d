"""One timeline per customer: a call, SMS out (delivery status) and in, the signed-link
landing route (open recorded, redirect; bad/expired links refused), chat started,
the signed self-service callback; the API and the screen-pop card show it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert, select
from web_helpers import sign_in

from ivr.app import build_links
from ivr.storage.outbox_tables import contact_events, outbox
from ivr.storage.tables import contacts, customers
from ivr.testing.web import WebCore
from ivr.web.app import customer_card_of
from ivr.web.timeline_routes import SIGNATURE_HEADER, callback_signature

NUMBER = "+31612345678"  # Anna de Vries in the demo CRM


def _seed(core: WebCore) -> tuple[int, str]:
    now = datetime.now(UTC)
    with core.engine.begin() as conn:
        cid = conn.execute(select(customers.c.id).where(customers.c.customer_no == "1001")
                           ).scalar_one()
        conn.execute(insert(contacts).values(
            id="call-1", channel="voice", caller=NUMBER, customer_id=cid, language="nl",
            started_at=now - timedelta(minutes=10), intent="change_address", scenario="S2",
            outcome="link_sent", transcript=[], steps=[]))
        conn.execute(insert(outbox).values(
            id="ob-1", contact_id="call-1", channel="sms", to_addr=NUMBER, from_addr="+3197",
            body="Change your address: https://...", language="nl", state="accepted",
            next_attempt_at=now, message_sid="SM1", twilio_status="delivered",
            created_at=now, updated_at=now))
        conn.execute(insert(contact_events), [
            {"contact_id": "call-1", "at": now - timedelta(minutes=9), "channel": "sms",
             "direction": "out", "address": NUMBER, "body": "Change your address: https://...",
             "message_sid": "SM1", "outbox_id": "ob-1"},
            {"contact_id": None, "at": now - timedelta(minutes=8), "channel": "sms",
             "direction": "in", "address": NUMBER, "body": "thanks!", "message_sid": "SM2",
             "outbox_id": None}])
    return cid, "call-1"


async def test_timeline_landing_and_callback(core: WebCore, client: httpx.AsyncClient) -> None:
    """Every channel's event lands on the customer's timeline, newest first."""
    cid, contact = _seed(core)
    links = build_links(core.settings)
    url = links.link("address_change", contact)
    assert url.startswith(f"{core.settings.public_url}/l/address-change?t=")
    path = url.removeprefix(core.settings.public_url)
    r = await client.get(path)
    assert r.status_code == 303
    target = f"{core.settings.self_service_base_url}/address-change?t="
    assert r.headers["location"].startswith(target)
    r = await client.get(links.link("chat", contact).removeprefix(core.settings.public_url))
    assert r.status_code == 303
    # Tampered, expired and unknown links get a page, never a redirect.
    assert (await client.get(path[:-3] + "AAA")).status_code == 400
    # A builder whose clock is 10 s past a 1-second lifetime, with the node's secret.
    expired_links = type(links)(secret=core.settings.link_secret,
                                urls={"address_change": "https://x.example"}, ttl_s=1,
                                now=lambda: datetime.now(UTC).timestamp() - 10)
    stale = expired_links.token("address_change", contact)
    r = await client.get(f"/l/address-change?t={stale}")
    assert r.status_code == 410 and "expired" in r.text
    assert (await client.get(f"/l/nope?t={stale}")).status_code == 404
    # The self-service site reports completion, signed.
    token = url.split("t=")[1]
    body = json.dumps({"t": token, "result": "address changed"}).encode()
    r = await client.post("/api/links/completed", content=body,
                          headers={SIGNATURE_HEADER: "0" * 64})
    assert r.status_code == 403
    r = await client.post("/api/links/completed", content=body, headers={
        SIGNATURE_HEADER: callback_signature(core.settings.link_secret, body)})
    assert r.status_code == 200 and r.json()["contact_id"] == contact

    await sign_in(client, "agent1")
    r = await client.get(f"/api/customers/{cid}/timeline")
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    kinds = [(e["kind"], e["channel"], e["direction"]) for e in entries]
    assert kinds[0] == ("self_service_done", "web", "in")
    assert {k for k in kinds[1:4]} == {("chat_started", "chat", "in"),
                                       ("link_opened", "web", "in")}
    assert ("message", "sms", "in") in kinds
    out = next(e for e in entries if e["direction"] == "out")
    assert out["detail"]["status"] == "delivered"
    call = next(e for e in entries if e["kind"] == "contact")
    assert call["summary"] == "change_address -> link_sent (S2)"
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    card = await customer_card_of(core)(cid)
    assert card is not None and {e["kind"] for e in card["timeline"]} >= {"contact", "message"}
