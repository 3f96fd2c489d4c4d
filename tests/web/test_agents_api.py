"""The agents/splits API through httpx's ASGI transport, with the real AmiClient against
FakeAmiServer and the directory on a seeded SQLite file."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ivr.contact_centre.membership import Membership
from ivr.domain.centre import Agent
from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import SKILLS, seed_demo
from ivr.telephony.ami import AmiClient, Backoff
from ivr.testing.fake_ami import FakeAmiServer
from ivr.web.agents_api import agents_router
from ivr.web.screenpop import token_ok

USER, SECRET, TOKEN = "kanaal", "s3cret", "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUEUES = [f"ivr-{name}" for name, _, _ in SKILLS] + ["ivr-general-own", "ivr-general-partner"]


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agents-api") / "seeded.db"
    upgrade(f"sqlite:///{path}")
    eng = make_engine(f"sqlite:///{path}")
    seed_demo(eng)
    with eng.connect() as conn:  # fold the WAL into the file before copying it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


@pytest.fixture
async def directory(seeded_db: Path, tmp_path: Path) -> AsyncIterator[SqlAgentDirectory]:
    db = tmp_path / "kanaal.db"
    shutil.copyfile(seeded_db, db)
    eng = make_engine(f"sqlite:///{db}")
    yield SqlAgentDirectory(eng)
    eng.dispose()


@pytest.fixture
async def ami_client() -> AsyncIterator[tuple[FakeAmiServer, AmiClient]]:
    async with FakeAmiServer(username=USER, secret=SECRET) as ami:
        ami.add_queue(*QUEUES)
        client = AmiClient("127.0.0.1", ami.port, username=USER, secret=SECRET,
                           backoff=Backoff(initial_s=0.01, cap_s=0.05))
        task = asyncio.create_task(client.run())
        await client.wait_connected(5)
        yield ami, client
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _http(directory: SqlAgentDirectory, ami: object) -> httpx.AsyncClient:
    web = FastAPI()
    web.include_router(agents_router(directory, Membership(directory, ami),  # type: ignore[arg-type]
                                     lambda request: token_ok(request, TOKEN)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://kanaal")


@pytest.fixture
async def http(directory: SqlAgentDirectory, ami_client: tuple[FakeAmiServer, AmiClient],
               ) -> AsyncIterator[httpx.AsyncClient]:
    async with _http(directory, ami_client[1]) as client:
        yield client


async def test_every_route_needs_the_token(http: httpx.AsyncClient) -> None:
    """No or a wrong token: 401 everywhere, even before a malformed body is looked at."""
    assert (await http.get("/api/agents")).status_code == 401
    bad = await http.post("/api/agents/1001/login", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    assert (await http.put("/api/splits/general", content=b"{oops")).status_code == 401
    assert (await http.get("/api/splits")).status_code == 401


async def test_list_and_get_agents(http: httpx.AsyncClient) -> None:
    """GET /api/agents lists the directory; an unknown code is 404."""
    listed = (await http.get("/api/agents", headers=AUTH)).json()["agents"]
    assert [a["code"] for a in listed] == ["1001", "1002", "1003", "1004"]
    none_in = await http.get("/api/agents", params={"logged_in": "true"}, headers=AUTH)
    assert none_in.json() == {"agents": []}
    one = await http.get("/api/agents/1003", headers=AUTH)
    assert one.status_code == 200 and one.json()["centre"] == "Partner BV"
    missing = await http.get("/api/agents/9999", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_agent"


async def test_login_pause_resume_logout_and_conflicts(
        http: httpx.AsyncClient, ami_client: tuple[FakeAmiServer, AmiClient]) -> None:
    """Membership actions map domain errors to 404/409; pause takes an optional reason."""
    ami, _ = ami_client
    assert (await http.post("/api/agents/1001/pause", headers=AUTH)).status_code == 409
    login = await http.post("/api/agents/1001/login", headers=AUTH)
    assert login.status_code == 200 and login.json()["complete"] is True
    assert ami.queues["ivr-collections"]["PJSIP/agent1"].penalty == 2
    again = await http.post("/api/agents/1001/login", headers=AUTH)
    assert again.status_code == 409 and again.json()["error"] == "already_logged_in"
    assert (await http.post("/api/agents/9999/login", headers=AUTH)).status_code == 404
    paused = await http.post("/api/agents/1001/pause", json={"reason": "coaching"},
                             headers=AUTH)
    assert paused.status_code == 200 and paused.json()["pause_reason"] == "coaching"
    bare = await http.post("/api/agents/1001/pause", headers=AUTH)
    assert bare.status_code == 200 and bare.json()["pause_reason"] is None
    too_long = await http.post("/api/agents/1001/pause", json={"reason": "x" * 65},
                               headers=AUTH)
    assert too_long.status_code == 422 and too_long.json()["error"] == "bad_request"
    resumed = await http.post("/api/agents/1001/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    out = await http.post("/api/agents/1001/logout", headers=AUTH)
    assert out.status_code == 200 and out.json()["agent"]["logged_in"] is False
    assert (await http.post("/api/agents/1001/logout", headers=AUTH)).status_code == 409
    assert (await http.post("/api/agents/1001/dance", headers=AUTH)).status_code == 404


async def test_no_queue_is_422_and_partial_login_is_reported(
        http: httpx.AsyncClient, directory: SqlAgentDirectory) -> None:
    """No queue for any skill: 422; some skills without a queue: 200 with the problems."""
    await directory.add_agent(Agent(id="2001", name="Mo", interface="PJSIP/agent8",
                                    skills={"astrology": 5}))
    none = await http.post("/api/agents/2001/login", headers=AUTH)
    assert none.status_code == 422 and none.json()["error"] == "no_queue"
    await directory.add_agent(Agent(id="2002", name="Noor", interface="PJSIP/agent9",
                                    skills={"astrology": 5, "tech": 4}))
    part = (await http.post("/api/agents/2002/login", headers=AUTH)).json()
    assert part["complete"] is False and part["queues"] == ["ivr-tech"]
    assert part["problems"] == [{"skill": "astrology", "queue": None,
                                 "reason": "no queue in the skills table"}]


async def test_ami_down_is_503(directory: SqlAgentDirectory) -> None:
    """Asterisk unreachable: 503 and the agent stays logged out."""
    dead = AmiClient("127.0.0.1", 1, username=USER, secret=SECRET)  # never connected
    async with _http(directory, dead) as http:
        res = await http.post("/api/agents/1001/login", headers=AUTH)
        assert res.status_code == 503 and res.json()["error"] == "unavailable"
        agent = (await http.get("/api/agents/1001", headers=AUTH)).json()
        assert agent["logged_in"] is False


async def test_splits_get_and_put(http: httpx.AsyncClient) -> None:
    """PUT validates (422 bad split, 404 unknown skill); GET reads back."""
    listed = (await http.get("/api/splits", headers=AUTH)).json()["splits"]
    assert [(s["skill"], s["own_pct"]) for s in listed] == [("general", 70)]
    assert (await http.get("/api/splits/tech", headers=AUTH)).status_code == 404
    put = await http.put("/api/splits/tech", json={"own_pct": 40, "partner_pct": 60},
                         headers=AUTH)
    assert put.status_code == 200 and put.json()["partner_pct"] == 60
    got = await http.get("/api/splits/tech", headers=AUTH)
    assert got.json()["own_pct"] == 40
    bad = await http.put("/api/splits/tech", json={"own_pct": 70, "partner_pct": 40},
                         headers=AUTH)
    assert bad.status_code == 422 and bad.json()["error"] == "bad_split"
    assert "100" in bad.json()["message"]
    unknown = await http.put("/api/splits/astrology", json={"own_pct": 50, "partner_pct": 50},
                             headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_skill"
    malformed = await http.put("/api/splits/tech", json={"own_pct": "lots"}, headers=AUTH)
    assert malformed.status_code == 422 and malformed.json()["error"] == "bad_request"


async def test_split_change_hook_moves_agents_into_the_side_queue(
        directory: SqlAgentDirectory, ami_client: tuple[FakeAmiServer, AmiClient]) -> None:
    """on_split_changed (here: reapply) puts logged-in agents in the new side queue; a hook
    failure still answers 200 with a warning, the split stored."""
    ami, client = ami_client
    ami.add_queue("ivr-tech-own", "ivr-tech-partner")
    membership = Membership(directory, client)
    web = FastAPI()
    web.include_router(agents_router(directory, membership,
                                     lambda request: token_ok(request, TOKEN),
                                     on_split_changed=lambda _split: membership.reapply()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web),
                                 base_url="http://kanaal") as http:
        assert (await http.post("/api/agents/1003/login", headers=AUTH)).status_code == 200
        assert "PJSIP/agent3" not in ami.queues["ivr-tech-partner"]
        put = await http.put("/api/splits/tech", json={"own_pct": 50, "partner_pct": 50},
                             headers=AUTH)
        assert put.status_code == 200 and "warning" not in put.json()
        assert ami.queues["ivr-tech-partner"]["PJSIP/agent3"].penalty == 0
        assert "PJSIP/agent3" not in ami.queues["ivr-tech-own"]

        await ami.stop()  # Asterisk gone: the reapply fails, the split is still stored
        put = await http.put("/api/splits/tech", json={"own_pct": 80, "partner_pct": 20},
                             headers=AUTH)
        assert put.status_code == 200 and "applying it failed" in put.json()["warning"]
        assert (await directory.get_split("tech")) is not None
        assert (await http.get("/api/splits/tech", headers=AUTH)).json()["own_pct"] == 80
