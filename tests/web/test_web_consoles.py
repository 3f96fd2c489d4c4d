"""Agent desktop and supervisor APIs: screen-pop data, wrap-up, wallboard, recent contacts,
and the WebSockets (real uvicorn, real websockets client): cookie from the same origin or a
single-use ticket, never a token in the URL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from web_helpers import LEGACY_TOKEN, sign_in

from ivr.contact_centre.service import ContactCentre
from ivr.storage.desk import SqlDeskStore
from ivr.testing.fake_ami import FakeAmiServer
from ivr.testing.web import CallScript, WebCore, play_call
from ivr.web.app import free_port, web_server
from ivr.web.security import TicketBook

ANNA = CallScript("1001", "my internet keeps dropping", "internet_down", 0.87, "technical",
                  pin_verified=True, priority=5, reason="gold customer, outage region")


@pytest.fixture
async def server(web: FastAPI) -> AsyncIterator[str]:
    """The web app on a real uvicorn; yields its base URL."""
    port = free_port()
    async with web_server(web, "127.0.0.1", port):
        yield f"127.0.0.1:{port}"


async def test_contact_view_has_what_the_agent_needs(core: WebCore,
                                                     client: httpx.AsyncClient) -> None:
    """Confidence, PIN verification, open orders, outage in the caller's region, history."""
    session = await play_call(core, ANNA)
    await sign_in(client, "agent1")
    view = (await client.get(f"/api/contacts/{session}")).json()
    assert view["question"] == "my internet keeps dropping" and view["confidence"] == 0.87
    assert view["pin_verified"] is True and view["skill"] == "technical"
    customer = view["customer"]
    assert customer["name"] == "Anna de Vries" and customer["tier"] == "gold"
    assert "A12345" in [o["order_no"] for o in customer["orders"]]
    assert customer["outages"][0]["region"] == "Utrecht"
    assert customer["history"][0]["session"] == session


async def test_wrapup_is_saved_on_the_contact(core: WebCore, client: httpx.AsyncClient) -> None:
    """Code and note land in the contacts table; later flow saves do not overwrite them."""
    session = await play_call(core, ANNA)
    csrf = await sign_in(client, "agent1")
    url = f"/api/contacts/{session}/wrapup"
    r = await client.post(url, data={"code": "escalated", "note": "engineer visit booked",
                                     "csrf": csrf})
    assert r.status_code == 200 and r.json()["by"] == "agent1"
    desk = SqlDeskStore(core.engine)
    assert desk.wrapup(session) == ("escalated", "engineer visit booked")
    snapshot = await core.contacts.get(session)
    assert snapshot is not None
    await core.contacts.save(snapshot)  # the flow upserts the record again
    assert desk.wrapup(session) == ("escalated", "engineer visit booked")
    bad = await client.post(url, data={"code": "made-up", "csrf": csrf})
    assert bad.status_code == 422
    missing = await client.post("/api/contacts/nope/wrapup",
                                data={"code": "resolved", "csrf": csrf})
    assert missing.status_code == 404


async def test_wallboard_and_recent_contacts(core: WebCore, client: httpx.AsyncClient) -> None:
    """The wallboard counts this node's calls; recent contacts show outcome, intent, skill,
    wrap-up, with the caller's number masked."""
    await sign_in(client, "super")
    before = (await client.get("/api/wallboard")).json()
    assert before["calls"] == 0 and before["database_up"] is True
    await play_call(core, ANNA)
    after = (await client.get("/api/wallboard")).json()
    assert after["calls"] == 1 and after["handoffs"] == {"technical": 1}
    assert after["intents"] == {"internet_down": 1} and after["outbox_backlog"] == {
        "pending": 0, "sending": 0}
    rows = (await client.get("/api/contacts?limit=5")).json()["contacts"]
    assert rows[0]["customer"] == "Anna de Vries" and rows[0]["outcome"] == "agent"
    assert rows[0]["caller"] != "+31612345678" and rows[0]["caller"].endswith("678")


async def test_screenpop_socket_by_single_use_ticket(core: WebCore, server: str) -> None:
    """An integration trades its bearer token for a ticket; the ticket opens one socket."""
    async with httpx.AsyncClient(base_url=f"http://{server}") as http:
        r = await http.post("/api/ws-ticket", headers={"Authorization": f"Bearer {LEGACY_TOKEN}"})
        ticket = r.json()["ticket"]
    assert r.json()["expires_in"] == 30
    url = f"ws://{server}/ws/screenpop?ticket={ticket}"
    async with websockets.connect(url) as desk:
        session = await play_call(core, ANNA)
        pop = json.loads(await asyncio.wait_for(desk.recv(), 5))
    assert pop["session"] == session and pop["context"]["customer"]["name"] == "Anna de Vries"
    with pytest.raises(websockets.InvalidStatus) as reused:
        await websockets.connect(url)
    assert reused.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"ws://{server}/ws/screenpop?token={LEGACY_TOKEN}")


async def test_ticket_expires(web: FastAPI, server: str) -> None:
    """A ticket not used within its lifetime is refused."""
    web.state.auth.tickets = TicketBook(ttl_s=0.05)
    async with httpx.AsyncClient(base_url=f"http://{server}") as http:
        r = await http.post("/api/ws-ticket", headers={"Authorization": f"Bearer {LEGACY_TOKEN}"})
    await asyncio.sleep(0.1)
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"ws://{server}/ws/screenpop?ticket={r.json()['ticket']}")


async def test_socket_by_cookie_only_from_our_own_origin(server: str) -> None:
    """The session cookie opens the socket from our pages; a foreign Origin is refused
    (cross-site WebSocket hijacking)."""
    async with httpx.AsyncClient(base_url=f"http://{server}") as http:
        await sign_in(http, "agent1")
        cookie = f"kanaal_session={http.cookies['kanaal_session']}"
    url = f"ws://{server}/ws/screenpop"
    async with websockets.connect(url, additional_headers={"Cookie": cookie},
                                  origin=websockets.Origin(f"http://{server}")):
        pass
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(url, additional_headers={"Cookie": cookie},
                                 origin=websockets.Origin("http://evil.example"))
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(url, origin=websockets.Origin(f"http://{server}"))


async def test_wallboard_socket_pushes_new_numbers(core: WebCore, server: str) -> None:
    """Supervisors get a frame at once and a fresh one every interval; agents are refused."""
    async with httpx.AsyncClient(base_url=f"http://{server}") as http:
        await sign_in(http, "super")
        cookie = f"kanaal_session={http.cookies['kanaal_session']}"
        await sign_in(http, "agent1")
        agent_cookie = f"kanaal_session={http.cookies['kanaal_session']}"
    origin = websockets.Origin(f"http://{server}")
    url = f"ws://{server}/ws/wallboard"
    async with websockets.connect(url, additional_headers={"Cookie": cookie},
                                  origin=origin) as board:
        first = json.loads(await asyncio.wait_for(board.recv(), 5))
        await play_call(core, ANNA)
        second = json.loads(await asyncio.wait_for(board.recv(), 5))
    assert first["calls"] == 0 and second["calls"] == 1
    assert second["handoffs"] == {"technical": 1}
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(url, additional_headers={"Cookie": agent_cookie},
                                 origin=origin)


async def test_queues_api_is_for_supervisors_and_follows_asterisk(
        centre_client: httpx.AsyncClient, live: tuple[ContactCentre, FakeAmiServer]) -> None:
    """GET /api/queues (live state from AMI): 403 for an agent; for a supervisor the counts
    per skill, the callers waiting per queue and whether the state is in sync."""
    _, ami = live
    await sign_in(centre_client, "agent1")
    denied = await centre_client.get("/api/queues")
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    csrf = await sign_in(centre_client, "super")
    login = await centre_client.post("/api/agents/1001/login", headers={"X-CSRF-Token": csrf})
    assert login.status_code == 200 and login.json()["complete"] is True
    await ami.caller_join("ivr-billing", "1700.1", caller_id="+31201234567")
    body: dict[str, Any] = {}
    async with asyncio.timeout(5):  # the feed applies AMI events on its own task
        while not body.get("queues"):
            answer = await centre_client.get("/api/queues")
            assert answer.status_code == 200
            body = answer.json()
            await asyncio.sleep(0.02)
    assert set(body) == {"stale_s", "in_sync", "skills", "queues", "others"}
    assert body["others"] == []  # one Asterisk (SQLite: no broadcast)
    assert body["in_sync"] is True and body["stale_s"] == 0.0
    assert body["skills"]["billing"] == {
        "logged_in": 1, "staffed": 1, "ready": 1, "busy": 0, "paused": 0, "wrap_up": 0,
        "aht_s": None, "aht_samples": 0}
    assert body["queues"]["billing"]["waiting"] == 1
    assert body["queues"]["billing"]["longest_wait_s"] >= 0


async def test_console_without_ami_says_so(client: httpx.AsyncClient) -> None:
    """No contact centre: the live panels say it is not connected and poll nothing."""
    await sign_in(client, "super")
    page = (await client.get("/supervisor")).text
    assert "live state not connected (no AMI)" in page
    assert "centre.js" not in page
    assert (await client.get("/api/queues")).status_code == 404
