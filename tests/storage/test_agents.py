"""SqlAgentDirectory against real SQLite files and a real PostgreSQL server (``db_url``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, inspect
from sqlalchemy.exc import IntegrityError

from ivr.domain.centre import Agent, CentreKind
from ivr.domain.centre_errors import (
    AgentAlreadyLoggedIn,
    AgentInactive,
    AgentNotLoggedIn,
    BadAgentProfile,
    BadSplit,
    DuplicateAgent,
    UnknownAgent,
    UnknownSkill,
)
from ivr.domain.model import Contact, ContactChannel
from ivr.domain.smart_routing import LoadSplit
from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.db import current_revision, downgrade, make_engine, upgrade
from ivr.storage.repositories import SqlContactLog
from ivr.storage.seed import seed_demo
from ivr.storage.tables import agent_skills, load_splits

TODAY = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    seed_demo(eng, today=TODAY)
    yield eng
    eng.dispose()


@pytest.fixture
def directory(engine: Engine) -> SqlAgentDirectory:
    return SqlAgentDirectory(engine)


def _agent(code: str = "2001", interface: str = "PJSIP/agent9", **kw: object) -> Agent:
    opts: dict[str, object] = {
        "name": "Noor Bakker", "site": "Utrecht", "region": "Utrecht", "centre": "Partner BV",
        "kind": CentreKind.PARTNER, "languages": frozenset({"nl", "en"}),
        "skills": {"billing": 4, "general": 2}, **kw}
    return Agent(id=code, interface=interface, **opts)  # type: ignore[arg-type]


async def test_demo_seed_has_the_rigs_agents_and_split(directory: SqlAgentDirectory) -> None:
    """The seed's four agents take proficiency from queues.conf penalties (0 -> 5, 1 -> 3)."""
    listed = await directory.list_agents()
    assert [a.interface for a in listed] == [f"PJSIP/agent{i}" for i in range(1, 5)]
    a1 = await directory.get_by_interface("PJSIP/agent1")
    assert a1 is not None and a1.code == "1001" and not a1.logged_in and a1.active
    assert a1.profile.skills["billing"] == 5 and a1.profile.skills["collections"] == 3
    assert a1.profile.kind is CentreKind.OWN and a1.profile.region == "Amsterdam"
    a3 = await directory.get("1003")
    assert a3 is not None and a3.profile.kind is CentreKind.PARTNER
    assert a3.profile.centre == "Partner BV" and a3.profile.site == "Utrecht"
    assert await directory.load_splits() == {"general": LoadSplit(own=70, partner=30)}
    queues = await directory.queues_for_skills()
    assert queues["billing"] == "ivr-billing" and queues["general"] == "ivr-general"


async def test_add_get_update_and_list(directory: SqlAgentDirectory) -> None:
    """An added agent reads back by code, id and interface; update replaces the skills."""
    added = await directory.add_agent(_agent())
    assert added.code == "2001" and added.profile.skills == {"billing": 4, "general": 2}
    assert added.profile.languages == frozenset({"nl", "en"}) and added.updated_at is not None
    assert (await directory.get_by_id(added.db_id)) == added
    assert (await directory.get_by_interface("PJSIP/agent9")) == added
    updated = await directory.update_agent(_agent(name="Noor B.", skills={"tech": 5}),
                                           active=False)
    assert updated.name == "Noor B." and dict(updated.profile.skills) == {"tech": 5}
    assert not updated.active and updated.db_id == added.db_id
    assert len(await directory.list_agents()) == 5
    assert "2001" not in {a.id for a in await directory.agent_profiles()}  # inactive
    assert await directory.get("nobody") is None
    with pytest.raises(UnknownAgent):
        await directory.require("nobody")


async def test_duplicates_and_bad_profiles_are_named_errors(
        directory: SqlAgentDirectory) -> None:
    """Taken code or interface -> DuplicateAgent; empty or malformed fields -> BadAgentProfile."""
    with pytest.raises(DuplicateAgent):
        await directory.add_agent(_agent(code="1001"))
    with pytest.raises(DuplicateAgent):
        await directory.add_agent(_agent(interface="PJSIP/agent1"))
    with pytest.raises(DuplicateAgent):
        await directory.update_agent(_agent(code="1002", interface="PJSIP/agent1"))
    with pytest.raises(UnknownAgent):
        await directory.update_agent(_agent(code="9999"))
    with pytest.raises(BadAgentProfile, match="TECH/resource"):
        await directory.add_agent(_agent(interface="agent9"))
    with pytest.raises(BadAgentProfile, match="code"):
        await directory.add_agent(_agent(code=" "))
    assert len(await directory.list_agents()) == 4  # nothing half-written


async def test_database_refuses_proficiency_outside_1_to_5(engine: Engine) -> None:
    """The check constraint backs the domain's validation."""
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(agent_skills).values(agent_id=1, skill="sales", proficiency=6))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(load_splits).values(skill="tech", own_pct=60, partner_pct=60,
                                                updated_at=T0))


async def test_login_state_is_conditional(directory: SqlAgentDirectory) -> None:
    """Logging in twice or out twice fails clearly; logout clears a pause."""
    rec = await directory.set_logged_in("1001", True)
    assert rec.logged_in and not rec.paused
    with pytest.raises(AgentAlreadyLoggedIn, match="1001"):
        await directory.set_logged_in("1001", True)
    paused = await directory.set_paused("1001", True, "  lunch  ")
    assert paused.paused and paused.pause_reason == "lunch"
    assert [a.code for a in await directory.list_agents(logged_in=True)] == ["1001"]
    out = await directory.set_logged_in("1001", False)
    assert not out.logged_in and not out.paused and out.pause_reason is None
    with pytest.raises(AgentNotLoggedIn):
        await directory.set_logged_in("1001", False)
    with pytest.raises(AgentNotLoggedIn):
        await directory.set_paused("1001", True, "break")
    with pytest.raises(UnknownAgent):
        await directory.set_logged_in("9999", True)
    with pytest.raises(UnknownAgent):
        await directory.set_paused("9999", False)


async def test_inactive_agent_cannot_log_in(directory: SqlAgentDirectory) -> None:
    """An agent stored inactive is refused at login."""
    await directory.add_agent(_agent(), active=False)
    with pytest.raises(AgentInactive):
        await directory.set_logged_in("2001", True)


async def test_splits_validate_and_update(directory: SqlAgentDirectory) -> None:
    """Splits must be two sides of 0..100 % adding up to 100, for a known skill."""
    stored = await directory.set_split("billing", 60, 40)
    assert (stored.own_pct, stored.partner_pct) == (60, 40)
    again = await directory.set_split("billing", 100, 0)
    assert (await directory.get_split("billing")) == again
    assert [s.skill for s in await directory.list_splits()] == ["billing", "general"]
    for own, partner in ((70, 40), (-10, 110), (101, -1), (0, 0)):
        with pytest.raises(BadSplit):
            await directory.set_split("billing", own, partner)
    with pytest.raises(UnknownSkill):
        await directory.set_split("astrology", 50, 50)
    assert await directory.get_split("tech") is None


async def test_last_agent_for_a_repeat_caller(engine: Engine,
                                              directory: SqlAgentDirectory) -> None:
    """The latest answered contact of the customer for the intent names its agent."""
    contacts = SqlContactLog(engine)

    async def contact(cid: str, at: datetime, intent: str, customer: int = 1) -> None:
        c = Contact(id=cid, channel=ContactChannel.VOICE, caller="+31612345678",
                    started_at=at, language="nl", customer_id=customer)
        c.intent = intent
        await contacts.save(c.snapshot())

    await contact("c-old", T0 - timedelta(days=3), "billing_question")
    await contact("c-new", T0 - timedelta(days=1), "billing_question")
    await contact("c-other", T0, "order_status")
    await contact("c-unanswered", T0 + timedelta(hours=1), "billing_question")
    assert await directory.record_agent("c-old", "PJSIP/agent2")
    assert await directory.record_agent("c-new", "PJSIP/agent1")
    assert await directory.record_agent("c-other", "PJSIP/static9")  # not in the directory
    assert not await directory.record_agent("c-missing", "PJSIP/agent1")

    since = T0 - timedelta(days=7)
    last = await directory.previous_agent(1, "billing_question", since)
    assert last is not None and last.contact_id == "c-new"
    assert last.agent_interface == "PJSIP/agent1" and last.agent_code == "1001"
    assert last.started_at == T0 - timedelta(days=1) and last.intent == "billing_question"
    anyone = await directory.previous_agent(1, None, since)
    assert anyone is not None and anyone.agent_code is None
    assert anyone.agent_interface == "PJSIP/static9"
    assert await directory.previous_agent(1, "billing_question", T0) is None
    assert await directory.previous_agent(2, "billing_question", since) is None
    # The SmartRouter's AgentHistory shape: (interface, when, intent).
    assert await directory.last_agent_for(1, None, since) == (
        "PJSIP/static9", T0, "order_status")

    # The journal keeps upserting the contact: the agent columns must survive it.
    c = Contact(id="c-new", channel=ContactChannel.VOICE, caller="+31612345678",
                started_at=T0 - timedelta(days=1), language="nl", customer_id=1)
    c.intent = "billing_question"
    await contacts.save(c.snapshot())
    again = await directory.previous_agent(1, "billing_question", since)
    assert again is not None and again.contact_id == "c-new"


def test_migration_0003_downgrades_and_upgrades(db_url: str) -> None:
    """0003 adds the agent tables and contact columns; downgrading to 0002 removes them."""
    eng = make_engine(db_url)
    try:
        insp = inspect(eng)
        assert {"agents", "agent_skills", "load_splits"} <= set(insp.get_table_names())
        assert {"agent_id", "agent_interface"} <= {c["name"] for c in insp.get_columns("contacts")}
        downgrade(db_url, "0002")
        insp = inspect(eng)
        assert "agents" not in insp.get_table_names()
        assert "agent_id" not in {c["name"] for c in insp.get_columns("contacts")}
        upgrade(db_url)
        assert "agents" in inspect(eng).get_table_names()
        assert current_revision(db_url) not in (None, "0001", "0002")
    finally:
        eng.dispose()
