"""Membership (login/logout/pause/reapply) with the real AmiClient against FakeAmiServer
over TCP and the agent directory on a seeded SQLite file."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ivr.contact_centre.membership import Membership
from ivr.domain.centre import Agent, CentreKind
from ivr.domain.centre_errors import (
    AgentAlreadyLoggedIn,
    AgentNotLoggedIn,
    MembershipRefused,
    MembershipUnavailable,
    NoQueueForSkills,
    UnknownAgent,
)
from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import SKILLS, seed_demo
from ivr.telephony.ami import AmiClient, Backoff
from ivr.telephony.ami.wire import AmiMessage
from ivr.testing.fake_ami import FakeAmiServer, _Session

USER, SECRET = "kanaal", "s3cret"
FAST = Backoff(initial_s=0.01, factor=2.0, cap_s=0.05, jitter=0.0)
QUEUES = [f"ivr-{name}" for name, _, _ in SKILLS] + ["ivr-general-own", "ivr-general-partner"]
# Agent 1001 (own centre): billing 5, bereavement 5, collections 3, general 5, sales 3;
# general has a 70/30 split, so the own side's queue too.
AGENT1_PENALTIES = {"ivr-bereavement": 0, "ivr-billing": 0, "ivr-collections": 2,
                    "ivr-general": 0, "ivr-general-own": 0, "ivr-sales": 2}


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated and seeded once per module (PIN hashing makes seeding slow); copied per test."""
    path = tmp_path_factory.mktemp("membership") / "seeded.db"
    upgrade(f"sqlite:///{path}")
    eng = make_engine(f"sqlite:///{path}")
    seed_demo(eng)
    with eng.connect() as conn:  # fold the WAL into the file before copying it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


@pytest.fixture
def engine(seeded_db: Path, tmp_path: Path) -> Iterator[Engine]:
    db = tmp_path / "kanaal.db"
    shutil.copyfile(seeded_db, db)
    eng = make_engine(f"sqlite:///{db}")
    yield eng
    eng.dispose()


@pytest.fixture
def directory(engine: Engine) -> SqlAgentDirectory:
    return SqlAgentDirectory(engine)


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmiServer]:
    async with FakeAmiServer(username=USER, secret=SECRET) as server:
        server.add_queue(*QUEUES)
        yield server


Start = Callable[..., Awaitable[AmiClient]]
Hook = Callable[[AmiClient], Awaitable[None]]


@pytest.fixture
async def start(ami: FakeAmiServer) -> AsyncIterator[Start]:
    """Start AmiClient.run() loops (with an optional on_connect hook); stop them at the end."""
    tasks: list[asyncio.Task[None]] = []

    async def _start(hook_for: Callable[[AmiClient], Hook] | None = None,
                     **kw: Any) -> AmiClient:
        opts: dict[str, Any] = {"username": USER, "secret": SECRET, "backoff": FAST,
                                "action_timeout_s": 2.0, **kw}
        client = AmiClient("127.0.0.1", ami.port, **opts)
        hook = hook_for(client) if hook_for else None
        tasks.append(asyncio.create_task(client.run(hook)))
        await client.wait_connected(5)
        return client

    yield _start
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def memberships(ami: FakeAmiServer, interface: str) -> dict[str, int]:
    """queue -> penalty of ``interface`` in the fake's app_queue."""
    return {q: m[interface].penalty for q, m in ami.queues.items() if interface in m}


def sent(ami: FakeAmiServer, action: str) -> list[AmiMessage]:
    return [m for m in ami.actions if m.get("Action") == action]


async def test_login_adds_each_skill_queue_with_penalty_from_proficiency(
        ami: FakeAmiServer, start: Start, directory: SqlAgentDirectory) -> None:
    """QueueAdd per skill: penalty 5 - proficiency, MemberName, StateInterface, unpaused."""
    m = Membership(directory, await start())
    result = await m.login("1001")
    assert result.complete and result.agent.logged_in
    assert list(result.queues) == sorted(AGENT1_PENALTIES)
    adds = sent(ami, "QueueAdd")
    assert [(a.get("Queue"), a.get("Penalty")) for a in adds] == [
        (q, str(p)) for q, p in sorted(AGENT1_PENALTIES.items())]
    for a in adds:
        assert a.get("Interface") == "PJSIP/agent1"
        assert a.get("StateInterface") == "PJSIP/agent1"
        assert a.get("MemberName") == "Sanne Visser"
        assert a.get("Paused") == "false"
    assert memberships(ami, "PJSIP/agent1") == AGENT1_PENALTIES
    stored = await directory.get("1001")
    assert stored is not None and stored.logged_in


async def test_partner_agent_joins_the_partner_side_of_a_split_skill(
        ami: FakeAmiServer, start: Start, directory: SqlAgentDirectory) -> None:
    """A split skill's partner agents join ivr-<skill>-partner, not the own side."""
    await Membership(directory, await start()).login("1004")
    got = memberships(ami, "PJSIP/agent4")
    assert got["ivr-general"] == 0 and got["ivr-general-partner"] == 0
    assert "ivr-general-own" not in got and got["ivr-tech"] == 2


async def test_second_login_is_refused_and_changes_nothing(
        ami: FakeAmiServer, start: Start, directory: SqlAgentDirectory) -> None:
    """Logging in twice -> AgentAlreadyLoggedIn, no further AMI actions."""
    m = Membership(directory, await start())
    await m.login("1001")
    before = len(ami.actions)
    with pytest.raises(AgentAlreadyLoggedIn, match="1001"):
        await m.login("1001")
    assert len(ami.actions) == before


async def test_concurrent_logins_from_two_nodes_one_wins(
        ami: FakeAmiServer, start: Start, engine: Engine) -> None:
    """Two services (two nodes) logging the same agent in at once: exactly one succeeds."""
    client = await start()
    node_a = Membership(SqlAgentDirectory(engine), client)
    node_b = Membership(SqlAgentDirectory(engine), client)
    results = await asyncio.gather(node_a.login("1002"), node_b.login("1002"),
                                   return_exceptions=True)
    assert sum(isinstance(r, AgentAlreadyLoggedIn) for r in results) == 1
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert len(memberships(ami, "PJSIP/agent2")) == 6


async def test_unknown_agent_sends_nothing(ami: FakeAmiServer, start: Start,
                                           directory: SqlAgentDirectory) -> None:
    """An unknown code fails before any AMI action."""
    with pytest.raises(UnknownAgent):
        await Membership(directory, await start()).login("9999")
    assert not sent(ami, "QueueAdd")


async def test_skill_without_queue_is_listed_and_the_rest_joined(
        ami: FakeAmiServer, start: Start, directory: SqlAgentDirectory) -> None:
    """A skill missing from the skills table is reported; the other skills are joined."""
    await directory.add_agent(Agent(id="2001", name="Noor", interface="PJSIP/agent9",
                                    skills={"billing": 4, "astrology": 5}))
    m = Membership(directory, await start())
    result = await m.login("2001")
    assert not result.complete and list(result.queues) == ["ivr-billing"]
    assert [p.skill for p in result.problems] == ["astrology"]
    assert "astrology" in result.problem_text()
    assert memberships(ami, "PJSIP/agent9") == {"ivr-billing": 1}

    await directory.add_agent(Agent(id="2002", name="Mo", interface="PJSIP/agent8",
                                    skills={"astrology": 5}))
    with pytest.raises(NoQueueForSkills, match="astrology"):
        await m.login("2002")
    stored = await directory.get("2002")
    assert stored is not None and not stored.logged_in


async def test_queue_missing_in_asterisk_is_reported(
        ami: FakeAmiServer, start: Start, directory: SqlAgentDirectory) -> None:
    """Asterisk's 'No such queue' for one skill is a listed problem, not a failed login."""
    del ami.queues["ivr-sales"]
    result = await Membership(directory, await start()).login("1001")
    assert [(p.skill, p.queue) for p in result.problems] == [("sales", "ivr-sales")]
    assert "No such queue" in result.problems[0].reason
    assert "ivr-sales" not in result.queues and result.agent.logged_in


async def test_logout_removes_every_queue(ami: FakeAmiServer, start: Start,
                                          directory: SqlAgentDirectory) -> None:
    """Logout sends QueueRemove per queue and clears the login; a second logout fails."""
    m = Membership(directory, await start())
    await m.login("1001")
    result = await m.logout("1001")
    assert result.complete and not result.agent.logged_in
    assert sorted(a.get("Queue") for a in sent(ami, "QueueRemove")) == sorted(AGENT1_PENALTIES)
    assert memberships(ami, "PJSIP/agent1") == {}
    with pytest.raises(AgentNotLoggedIn):
        await m.logout("1001")


async def test_pause_and_resume_in_every_queue(ami: FakeAmiServer, start: Start,
                                               directory: SqlAgentDirectory) -> None:
    """QueuePause without Queue (all queues) carries the reason; resume clears it."""
    m = Membership(directory, await start())
    with pytest.raises(AgentNotLoggedIn):
        await m.pause("1001", "lunch")
    await m.login("1001")
    rec = await m.pause("1001", "lunch")
    assert rec.paused and rec.pause_reason == "lunch"
    (pause,) = sent(ami, "QueuePause")
    assert pause.get("Interface") == "PJSIP/agent1" and pause.get("Paused") == "true"
    assert pause.get("Reason") == "lunch" and pause.get("Queue") == ""
    assert all(q["PJSIP/agent1"].paused for q in ami.queues.values() if "PJSIP/agent1" in q)
    rec = await m.resume("1001")
    assert not rec.paused and rec.pause_reason is None
    assert not any(q["PJSIP/agent1"].paused for q in ami.queues.values()
                   if "PJSIP/agent1" in q)


async def test_pause_refused_by_asterisk_keeps_the_directory(
        ami: FakeAmiServer, start: Start, directory: SqlAgentDirectory) -> None:
    """Asterisk does not know the member (e.g. restarted): MembershipRefused, not paused."""
    await directory.set_logged_in("1003", True)  # logged in, but never added in Asterisk
    with pytest.raises(MembershipRefused, match="Interface not found"):
        await Membership(directory, await start()).pause("1003", "break")
    stored = await directory.get("1003")
    assert stored is not None and not stored.paused


async def test_ami_down_is_a_clear_error_and_nothing_is_stored(
        ami: FakeAmiServer, directory: SqlAgentDirectory) -> None:
    """No AMI connection: MembershipUnavailable, and the agent stays logged out."""
    client = AmiClient("127.0.0.1", ami.port, username=USER, secret=SECRET)  # never run
    with pytest.raises(MembershipUnavailable, match="AMI unavailable"):
        await Membership(directory, client).login("1001")
    stored = await directory.get("1001")
    assert stored is not None and not stored.logged_in


async def test_ami_failing_mid_login_rolls_back(ami: FakeAmiServer, start: Start,
                                                directory: SqlAgentDirectory) -> None:
    """The third QueueAdd goes unanswered: queues joined so far are left, login undone."""
    adds = 0
    real = FakeAmiServer._ACTIONS["queueadd"]

    async def flaky(server: FakeAmiServer, s: _Session, msg: AmiMessage) -> None:
        nonlocal adds
        adds += 1
        if adds != 3:
            await real(server, s, msg)

    ami._ACTIONS = {**FakeAmiServer._ACTIONS, "queueadd": flaky}
    client = await start(action_timeout_s=0.3)
    with pytest.raises(MembershipUnavailable):
        await Membership(directory, client).login("1001")
    assert memberships(ami, "PJSIP/agent1") == {}
    assert len(sent(ami, "QueueRemove")) == 2
    stored = await directory.get("1001")
    assert stored is not None and not stored.logged_in


async def test_reapply_after_asterisk_restart(ami: FakeAmiServer, start: Start,
                                              directory: SqlAgentDirectory) -> None:
    """After a reconnect every logged-in agent is re-added (paused ones paused, with reason)."""
    services: list[Membership] = []
    first_sync = asyncio.Event()

    def hook_for(client: AmiClient) -> Hook:
        services.append(Membership(directory, client))

        async def on_connect(c: AmiClient) -> None:
            await services[0].on_connect(c)
            first_sync.set()
        return on_connect

    client = await start(hook_for)
    m = services[0]
    async with asyncio.timeout(5):  # the first (empty) reapply
        await first_sync.wait()
    await m.login("1001")
    await m.login("1002")
    await m.pause("1002", "training")
    expected = {iface: memberships(ami, iface) for iface in ("PJSIP/agent1", "PJSIP/agent2")}

    for members in ami.queues.values():  # Asterisk restarted: dynamic members gone
        members.clear()
    await ami.drop_connections()
    await ami.wait_for(lambda: memberships(ami, "PJSIP/agent2") == expected["PJSIP/agent2"]
                       and memberships(ami, "PJSIP/agent1") == expected["PJSIP/agent1"])
    assert client.connects == 2
    agent2 = [q["PJSIP/agent2"] for q in ami.queues.values() if "PJSIP/agent2" in q]
    await ami.wait_for(lambda: all(x.paused and x.reason == "training" for x in agent2))
    assert not any(q["PJSIP/agent1"].paused for q in ami.queues.values()
                   if "PJSIP/agent1" in q)

    # Members still there ("Already there") are fine: a second reapply reports no problems.
    report = await m.reapply()
    assert report.agents == 2 and report.problems == ()
    assert report.memberships == len(expected["PJSIP/agent1"]) + len(expected["PJSIP/agent2"])


async def test_overflow_substitutes_join_with_the_overflow_penalty(
        ami: FakeAmiServer, start: Start, directory: SqlAgentDirectory) -> None:
    """With overflow given, a substitute joins the primary's queue at 10 + rank, paused."""
    await directory.add_agent(Agent(id="2003", name="Sub", interface="PJSIP/agent7",
                                    kind=CentreKind.PARTNER, skills={"general": 4}))
    m = Membership(directory, await start(),
                   overflow={"billing": ["general"], "collections": ["billing", "general"]})
    await m.login("2003")
    assert memberships(ami, "PJSIP/agent7") == {
        "ivr-general": 1, "ivr-general-partner": 1, "ivr-billing": 10, "ivr-collections": 11}

    def paused() -> dict[str, bool]:
        return {q: mm["PJSIP/agent7"].paused for q, mm in ami.queues.items()
                if "PJSIP/agent7" in mm}

    # substitutes wait in standby (paused) until the queue keeper widens that queue
    assert paused() == {"ivr-general": False, "ivr-general-partner": False,
                        "ivr-billing": True, "ivr-collections": True}
    await m.pause("2003", "coaching")
    assert all(paused().values())
    # resuming unpauses the agent's own queues one by one, never the standby ones
    await m.resume("2003")
    assert paused() == {"ivr-general": False, "ivr-general-partner": False,
                        "ivr-billing": True, "ivr-collections": True}
    result = await m.logout("2003")
    assert result.complete and memberships(ami, "PJSIP/agent7") == {}

