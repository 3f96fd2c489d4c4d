"""The outages API and the surge alerts, through the real web app on a seeded SQLite file:
supervisors post/update/end, clear 4xx errors, a surge's pending announcement is
confirmed and then heard, alerts are pushed to /ws/alerts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import websockets
from web_helpers import sign_in

from ivr.domain.surge import SurgeConfig, SurgeDetector
from ivr.outages.alerts import SupervisorAlerts
from ivr.outages.surge import SurgeService, SurgeSettings
from ivr.storage.outages import SqlOutageBoard
from ivr.testing.web import WebCore, cheap_passwords
from ivr.web.app import create_web_app, free_port, web_server


async def test_supervisor_posts_updates_and_ends(client: httpx.AsyncClient,
                                                 core: WebCore) -> None:
    """POST 201 -> callers from the region hear it; PATCH; end -> no longer heard."""
    csrf = await sign_in(client, "super")
    h = {"X-CSRF-Token": csrf}
    r = await client.post("/api/outages", headers=h, json={
        "regions": ["Amsterdam"], "messages": {"en": "No TV in Amsterdam.", "nl": "Geen tv."}})
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    assert r.json()["created_by"] == "super"
    heard = await core.knowledge.outages("amsterdam", datetime.now(UTC))
    assert [o.id for o in heard] == [oid]
    r = await client.patch(f"/api/outages/{oid}", headers=h,
                           json={"messages": {"en": "Fixed by 18:00."}})
    assert r.status_code == 200 and r.json()["messages"]["en"] == "Fixed by 18:00."
    r = await client.post(f"/api/outages/{oid}/end", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "ended"
    assert await core.knowledge.outages("Amsterdam", datetime.now(UTC)) == []
    listed = (await client.get("/api/outages?all=true")).json()["outages"]
    assert oid in [o["id"] for o in listed]


async def test_errors_are_clear(client: httpx.AsyncClient) -> None:
    """422 bad input, 404 unknown, 409 wrong state, 403 without CSRF or as an agent."""
    csrf = await sign_in(client, "super")
    h = {"X-CSRF-Token": csrf}
    r = await client.post("/api/outages", headers=h, json={"regions": [], "messages": {"en": "x"}})
    assert r.status_code == 422 and r.json()["error"] == "bad_outage"
    r = await client.post("/api/outages", headers=h, content=b"not json")
    assert r.status_code == 422
    r = await client.post("/api/outages", headers=h, json={
        "regions": ["X"], "messages": {"en": "x"}, "starts_at": "2026-12-01T08:00"})
    assert r.status_code == 422 and "zone" in r.json()["message"]
    assert (await client.post("/api/outages/999/end", headers=h)).status_code == 404
    oid = (await client.post("/api/outages", headers=h, json={
        "regions": ["X"], "messages": {"en": "x"}})).json()["id"]
    r = await client.post(f"/api/outages/{oid}/confirm", headers=h)
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert (await client.post("/api/outages", json={"regions": ["X"], "messages": {
        "en": "x"}})).status_code == 403  # no CSRF header
    await sign_in(client, "agent1")
    assert (await client.get("/api/outages")).status_code == 403


async def test_surge_alert_pushed_then_confirmed_and_heard(core: WebCore) -> None:
    """30 fault calls from Utrecht: /ws/alerts gets the surge with a pending outage that
    callers do not hear yet; confirming it makes them hear it; /api/surge shows it."""
    alerts = SupervisorAlerts()
    service = SurgeService(SurgeDetector(SurgeConfig()), SqlOutageBoard(core.engine),
                           SurgeSettings(auto_activate=False), alerts=alerts)
    core.alerts = alerts  # type: ignore[attr-defined]
    core.surge = service  # type: ignore[attr-defined]
    web = create_web_app(core, passwords=cheap_passwords())
    port = free_port()
    async with web_server(web, "127.0.0.1", port), httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}") as http:
        csrf = await sign_in(http, "super")
        h = {"X-CSRF-Token": csrf}
        ticket = (await http.post("/api/ws-ticket", headers=h)).json()["ticket"]
        async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws/alerts?ticket={ticket}") as ws:
            start = datetime.now(UTC) - timedelta(minutes=4)
            for i in range(30):
                await service.record_call(start + timedelta(seconds=i * 8), "Utrecht",
                                          "report_fault")
            await service.drain()
            async with asyncio.timeout(5):
                alert = json.loads(await ws.recv())
        assert alert["type"] == "surge" and alert["region"] == "Utrecht"
        assert alert["status"] == "pending" and alert["learning"] is True
        before = await core.knowledge.outages("Utrecht", datetime.now(UTC))
        assert alert["outage"] not in [o.id for o in before]
        surge = (await http.get("/api/surge")).json()
        assert surge["enabled"] and [s["key"] for s in surge["surges"]] == ["region:Utrecht"]
        r = await http.post(f"/api/outages/{alert['outage']}/confirm", headers=h)
        assert r.status_code == 200 and r.json()["status"] == "active"
        heard = await core.knowledge.outages("Utrecht", datetime.now(UTC))
        assert alert["outage"] in [o.id for o in heard]  # beside the demo's seeded one
