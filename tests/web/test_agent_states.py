"""GET /api/agent-states: each agent's live state from AMI (here FakeAmiServer) and the
calls they answered today, through the real web app, directory and contact table."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from web_helpers import sign_in

from ivr.contact_centre.service import ContactCentre
from ivr.domain.centre import DeviceState
from ivr.testing.fake_ami import FakeAmiServer
from ivr.testing.web import CallScript, WebCore, play_call
from ivr.web.agent_states import today_start


async def _until(pred: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        for _ in itertools.count():  # a for loop: ruff's ASYNC110 wants no sleep-while
            if pred():
                return
            await asyncio.sleep(0.02)


async def _states(client: httpx.AsyncClient) -> dict[str, dict[str, object]]:
    r = await client.get("/api/agent-states")
    assert r.status_code == 200, r.text
    return {a["code"]: a for a in r.json()["agents"]}


async def test_agent_states_follow_ami_and_count_calls_today(
        core: WebCore, live: tuple[ContactCentre, FakeAmiServer],
        centre_client: httpx.AsyncClient) -> None:
    centre, ami = live
    await sign_in(centre_client, "super")
    states = await _states(centre_client)
    assert states["1001"]["state"] == "logged_out" and states["1001"]["calls_today"] == 0

    await centre.membership.login("1001")
    await _until(lambda: (a := centre.feed.snapshot().agent("1001")) is not None
                 and a.status.state.value == "ready")
    assert (await _states(centre_client))["1001"]["state"] == "ready"

    await ami.member_status("PJSIP/agent1", DeviceState.INUSE, in_call=True)
    await _until(lambda: centre.feed.snapshot().agent("1001").status.state.value == "busy")
    assert (await _states(centre_client))["1001"]["state"] == "busy"

    session = await play_call(core, CallScript("1008", "my invoice", "invoice_question", 0.9,
                                               "billing"))
    assert await centre.directory.record_agent(session, "PJSIP/agent1")  # AgentConnect
    assert (await _states(centre_client))["1001"]["calls_today"] == 1

    await ami.member_status("PJSIP/agent1", DeviceState.NOT_INUSE, in_call=False)
    await centre.membership.pause("1001", "coaching")
    await _until(lambda: centre.feed.snapshot().agent("1001").status.state.value == "paused")
    paused = (await _states(centre_client))["1001"]
    assert paused["state"] == "paused" and paused["reason"] == "coaching"
    assert isinstance(paused["since_s"], int)


async def test_agents_may_not_read_every_agents_state(
        centre_client: httpx.AsyncClient) -> None:
    await sign_in(centre_client, "agent1")
    assert (await centre_client.get("/api/agent-states")).status_code == 403


def test_today_starts_at_local_midnight() -> None:
    # 23:30 UTC on 1 July is already 2 July in Amsterdam (UTC+2 in summer).
    start = today_start(datetime(2026, 7, 1, 23, 30, tzinfo=UTC), "Europe/Amsterdam")
    assert start.astimezone(UTC) == datetime(2026, 7, 1, 22, 0, tzinfo=UTC)
