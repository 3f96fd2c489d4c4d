"""GET /api/reports/summary: the full report as JSON or CSV, for supervisors only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from web_helpers import sign_in

from ivr.storage.report_seed import seed_contacts, synthetic_contacts
from ivr.testing.web import WebCore


async def test_summary_json_csv_roles_and_bad_windows(core: WebCore,
                                                      client: httpx.AsyncClient) -> None:
    """Supervisors get figures (JSON and CSV); agents 403; a bad window 400."""
    now = datetime.now(UTC)
    seed_contacts(core.engine, synthetic_contacts(400, end=now, days=4, callers=100))
    await sign_in(client, "agent1")
    assert (await client.get("/api/reports/summary")).status_code == 403
    await sign_in(client, "super")
    r = await client.get("/api/reports/summary", params={"hours": 48})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert 195 <= doc["contacts"] <= 205
    assert doc["funnel"][0]["step"] == "greeting" and doc["skills"]
    day = (now - timedelta(days=1)).date().isoformat()
    r = await client.get("/api/reports/summary",
                         params={"since": day, "until": day, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.startswith("section,key,metric,value\n") and "summary,,contacts," in r.text
    r = await client.get("/api/reports/summary", params={"since": "2026-99-01"})
    assert r.status_code == 400 and r.json()["error"] == "bad_window"
