"""Screen-pop API: GET /api/contacts/{session} behind a bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from ivr.domain.model import (
    ContactChannel,
    ContactSnapshot,
    Outcome,
    Scenario,
    Step,
    StepRecord,
)
from ivr.testing.fakes import InMemoryContactLog
from ivr.web.screenpop import screenpop_router

TOKEN = "s3cret-token"
Api = tuple[httpx.AsyncClient, InMemoryContactLog]


def snapshot(session: str) -> ContactSnapshot:
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    return ContactSnapshot(
        id=session, channel=ContactChannel.VOICE, caller="+31612345678", started_at=at,
        language="nl", customer_id=42, question="mijn factuur klopt niet", intent="billing",
        confidence=0.91, scenario=Scenario.AGENT, skill="billing", action=None,
        outcome=Outcome.AGENT, dropped_at=None, ended_at=None,
        transcript=("IVR: waarmee kan ik helpen?", "caller: mijn factuur klopt niet"),
        steps=(StepRecord(Step.GREETING, at), StepRecord(Step.INTENT, at, {"conf": 0.91})),
    )


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    contacts = InMemoryContactLog()
    await contacts.save(snapshot("sess-1"))
    app = FastAPI()
    app.include_router(screenpop_router(contacts, TOKEN))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, contacts


async def test_contact_with_bearer_token(api: Api) -> None:
    """An agent with the token gets transcript, intent, scenario, customer and steps."""
    client, _ = api
    r = await client.get("/api/contacts/sess-1", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    body = r.json()
    assert body["intent"] == "billing" and body["scenario"] == "S4"
    assert body["customer_id"] == 42
    assert body["transcript"][1] == "caller: mijn factuur klopt niet"
    assert [s["step"] for s in body["steps"]] == ["greeting", "intent"]
    assert body["steps"][1]["detail"] == {"conf": 0.91}


async def test_token_in_query_is_refused(api: Api) -> None:
    """?token= is not accepted: a token in a URL ends up in proxy and access logs."""
    client, _ = api
    r = await client.get(f"/api/contacts/sess-1?token={TOKEN}")
    assert r.status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"}])
async def test_unauthorized(api: Api,
                            headers: dict[str, str]) -> None:
    """Missing or wrong token is a 401 with a JSON error, before any lookup."""
    client, _ = api
    r = await client.get("/api/contacts/sess-1", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_unknown_session_is_404(api: Api) -> None:
    """An unknown session gives 404 with a clear JSON error."""
    client, _ = api
    r = await client.get("/api/contacts/nope", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_store_down_is_503(api: Api) -> None:
    """A failing ContactLog gives 503, not a stack trace."""
    client, contacts = api
    contacts.faults.fail("contacts")
    r = await client.get("/api/contacts/sess-1", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 503 and r.json()["error"] == "unavailable"


async def test_empty_token_fails_closed() -> None:
    """A router built with an empty token refuses everyone."""
    app = FastAPI()
    app.include_router(screenpop_router(InMemoryContactLog(), ""))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        r = await client.get("/api/contacts/x", headers={"Authorization": "Bearer "})
        assert r.status_code == 401
