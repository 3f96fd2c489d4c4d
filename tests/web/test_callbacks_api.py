"""Callbacks on the web (real app, seeded SQLite): agents list them, supervisors cancel
(twice is 409, unknown 404, agents 403); the customer's signed link shows the slot,
moves it to another free slot and cancels it; a tampered link is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from web_helpers import BASE, sign_in

from ivr.app import build_callbacks
from ivr.callbacks.desk import SqlCallbackDesk
from ivr.domain.callbacks import CallbackDraft, CallbackRecord, candidate_starts
from ivr.testing.web import WebCore, cheap_passwords
from ivr.web.app import create_web_app


def _desk(core: WebCore) -> SqlCallbackDesk:
    core.settings = replace(core.settings, callbacks=True, callback_capacity=("billing=2",),
                            callback_lead_s=0.0)
    desk = build_callbacks(core.settings, core.engine, core.knowledge)
    assert desk is not None
    core.callbacks = desk
    return desk


def _book(desk: SqlCallbackDesk, start: datetime) -> CallbackRecord:
    return desk.book_store.book_sync(CallbackDraft(
        contact_id="c-1", number="+31302345678", language="en", skill="billing",
        slot_start=start, slot_end=start + timedelta(seconds=desk.policy.slot_s),
        question="my invoice is wrong", intent="invoice_question"), policy=desk.policy, cap=2)


@pytest.fixture
async def setup(core: WebCore) -> AsyncIterator[tuple[httpx.AsyncClient, SqlCallbackDesk]]:
    desk = _desk(core)
    web = create_web_app(core, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        yield c, desk


async def test_agents_list_supervisors_cancel(
        setup: tuple[httpx.AsyncClient, SqlCallbackDesk]) -> None:
    """GET lists with the question; an agent may not cancel; cancel twice -> 409."""
    client, desk = setup
    cb = _book(desk, candidate_starts(datetime.now(UTC), desk.policy, 2)[1])
    await sign_in(client, "agent1")
    listed = (await client.get("/api/callbacks?status=booked")).json()
    assert [c["id"] for c in listed["callbacks"]] == [cb.id]
    assert listed["callbacks"][0]["question"] == "my invoice is wrong"
    assert (await client.get("/api/callbacks?status=nonsense")).status_code == 422
    csrf = await sign_in(client, "agent1")
    r = await client.post(f"/api/callbacks/{cb.id}/cancel", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    csrf = await sign_in(client, "super")
    h = {"X-CSRF-Token": csrf}
    r = await client.post(f"/api/callbacks/{cb.id}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await client.post(f"/api/callbacks/{cb.id}/cancel", headers=h)
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = await client.post("/api/callbacks/nope/cancel", headers=h)
    assert r.status_code == 404


async def test_desktop_lists_the_agents_own_skills_only(
        setup: tuple[httpx.AsyncClient, SqlCallbackDesk]) -> None:
    """``mine=1``: open callbacks in the signed-in agent's skills (agent1 = 1001 has
    billing, not logistics); done or cancelled ones are not listed."""
    client, desk = setup
    start = candidate_starts(datetime.now(UTC), desk.policy, 2)[1]
    billing = _book(desk, start)
    cancelled = _book(desk, start)
    desk.book_store.cancel_sync(cancelled.id)
    desk.book_store.book_sync(replace(billing.draft, skill="logistics"), policy=desk.policy,
                              cap=2)
    await sign_in(client, "agent1")
    mine = (await client.get("/api/callbacks?mine=1")).json()
    assert [c["id"] for c in mine["callbacks"]] == [billing.id]
    assert "billing" in mine["skills"] and "logistics" not in mine["skills"]
    await sign_in(client, "super")  # no agent code: no skills, nothing of anyone's
    assert (await client.get("/api/callbacks?mine=1")).json()["callbacks"] == []


async def test_customer_moves_then_cancels_by_the_signed_link(
        setup: tuple[httpx.AsyncClient, SqlCallbackDesk]) -> None:
    """The SMS link shows the slot and other free ones; move, then cancel; tampered: 400."""
    client, desk = setup
    # Two slots the desk really offers now (opening hours skip some: a fixed pick of
    # candidate starts failed in the evening, when the next ones are after closing).
    first, second = [s.start for s in await desk.offer("billing", datetime.now(UTC))][:2]
    cb = _book(desk, first)
    path = urlsplit(desk.manage_link(cb.id)).path
    page = await client.get(path)
    assert page.status_code == 200 and "Cancel the callback" in page.text
    assert second.isoformat() in page.text
    moved = await client.post(f"{path}/move", data={"slot": second.isoformat()})
    assert moved.status_code == 200 and "moved" in moved.text
    assert desk.book_store.get_sync(cb.id).draft.slot_start == second
    assert desk.book_store.booked_sync("billing", [first, second]) == {first: 0, second: 1}
    done = await client.post(f"{path}/cancel")
    assert "cancelled" in done.text
    again = await client.post(f"{path}/cancel")
    assert "Not changed" in again.text
    assert (await client.get(path[:-3] + "xyz")).status_code == 400
