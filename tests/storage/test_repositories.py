"""SQL adapters against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, inspect

from ivr.domain.model import Contact, ContactChannel, Outcome, Scenario, Step, StepRecord
from ivr.domain.ports import PortError
from ivr.storage.db import current_revision, downgrade, make_engine, upgrade
from ivr.storage.repositories import (
    SpoolingContactLog,
    SqlAgentPool,
    SqlContactLog,
    SqlCustomerDirectory,
    SqlKnowledgeBase,
    check_pin,
    hash_pin,
)
from ivr.storage.seed import seed_demo, seed_synthetic, synthetic_number

AMS = ZoneInfo("Europe/Amsterdam")
TODAY = date(2026, 11, 24)  # a Tuesday


@pytest.fixture
def engine(db_url: str) -> Engine:
    eng = make_engine(db_url)
    seed_demo(eng, today=TODAY)
    yield eng  # type: ignore[misc]
    eng.dispose()


async def test_lookup_by_cli_returns_customer_with_all_numbers(engine: Engine) -> None:
    """A second number of a customer finds the same customer, with every number listed."""
    d = SqlCustomerDirectory(engine)
    c = await d.find_by_number("+31201234000")
    assert c is not None and c.customer_no == "1003" and c.language == "nl"
    assert set(c.numbers) == {"+31687654321", "+31201234000"}
    assert c.preferred_channel == "whatsapp"
    assert await d.find_by_number("+31000000000") is None


async def test_customer_number_lookup_and_orders(engine: Engine) -> None:
    """Keyed-in customer numbers resolve; orders come back with status and ETA."""
    d = SqlCustomerDirectory(engine)
    c = await d.find_by_customer_no("1001")
    assert c is not None and c.tier == "gold" and c.has_pin
    orders = await d.orders(c.id)
    by_no = {o.order_no: o for o in orders}
    assert by_no["A12345"].status == "in_transit" and by_no["A12345"].eta == date(2026, 11, 26)


async def test_pin_verification(engine: Engine) -> None:
    """The stored PIN hash verifies the right PIN only."""
    d = SqlCustomerDirectory(engine)
    assert await d.verify_pin(1, "4321")
    assert not await d.verify_pin(1, "1234")
    assert not await d.verify_pin(2, "0000")  # customer without PIN


async def test_wrong_pins_lock_the_customer_across_restarts(engine: Engine) -> None:
    """Wrong PINs count per customer in the database: a new directory (a restarted or
    another node) sees the lock; it lifts when the window has passed; a right PIN clears."""
    now = [datetime(2026, 11, 30, 12, 0, tzinfo=UTC)]
    d = SqlCustomerDirectory(engine, pin_max_failures=3, pin_lock_s=3600, now=lambda: now[0])
    for pin in ("0000", "1111", "2222"):
        assert not await d.pin_locked(1)
        assert not await d.verify_pin(1, pin)
    restarted = SqlCustomerDirectory(engine, pin_max_failures=3, pin_lock_s=3600,
                                     now=lambda: now[0])
    assert await restarted.pin_locked(1)
    assert not await restarted.verify_pin(1, "4321")  # locked: even the right PIN fails
    assert not await restarted.pin_locked(2)  # other customers are not affected
    now[0] = now[0].replace(hour=13, minute=1)  # the window has passed
    assert not await restarted.pin_locked(1)
    assert not await restarted.verify_pin(1, "9999")
    assert await restarted.verify_pin(1, "4321")
    now[0] = now[0].replace(minute=2)
    assert not await restarted.verify_pin(1, "0000")
    assert not await restarted.verify_pin(1, "0001")
    assert not await restarted.pin_locked(1)  # the right PIN cleared the older failure


async def test_a_right_pin_rehashes_an_old_cheap_hash(engine: Engine) -> None:
    """Hashes below the current PBKDF2 parameters (the demo seed's) are upgraded on use."""
    from sqlalchemy import select

    from ivr.storage.repositories import PIN_ITERATIONS, pin_needs_rehash
    from ivr.storage.tables import customers

    def stored() -> str:
        with engine.connect() as conn:
            return str(conn.execute(select(customers.c.pin_hash)
                                    .where(customers.c.id == 1)).scalar())
    assert pin_needs_rehash(stored())
    assert await SqlCustomerDirectory(engine).verify_pin(1, "4321")
    assert stored().startswith(f"pbkdf2${PIN_ITERATIONS}$") and not pin_needs_rehash(stored())
    assert await SqlCustomerDirectory(engine).verify_pin(1, "4321")
    assert PIN_ITERATIONS >= 600_000  # OWASP 2023 for PBKDF2-HMAC-SHA256


def test_pin_hash_is_salted() -> None:
    """Two hashes of one PIN differ, both verify."""
    a, b = hash_pin("1234"), hash_pin("1234")
    assert a != b and check_pin("1234", a) and check_pin("1234", b)
    assert not check_pin("1234", "garbage")


async def test_opening_hours_weekday_evening_weekend_and_holiday(engine: Engine) -> None:
    """Open/closed per channel, with next opening across a weekend and holidays."""
    kb = SqlKnowledgeBase(engine, timezone="Europe/Amsterdam")
    tue_10 = datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
    s = await kb.opening("voice", tue_10)
    assert s.is_open and s.closes_at is not None and s.closes_at.hour == 20
    sat_18 = datetime(2026, 11, 28, 18, 0, tzinfo=AMS)
    s = await kb.opening("voice", sat_18)
    assert not s.is_open and s.next_open is not None
    assert s.next_open.date() == date(2026, 11, 30) and s.next_open.hour == 8  # Monday
    xmas = datetime(2026, 12, 25, 10, 0, tzinfo=AMS)
    s = await kb.opening("voice", xmas)
    assert not s.is_open and s.reason == "Christmas Day"
    assert s.next_open is not None and s.next_open.date() == date(2026, 12, 28)
    eve = datetime(2026, 12, 24, 17, 30, tzinfo=AMS)  # reduced hours until 17:00
    assert not (await kb.opening("voice", eve)).is_open
    sun_chat = datetime(2026, 11, 29, 12, 0, tzinfo=AMS)
    assert (await kb.opening("chat", sun_chat)).is_open


async def test_outages_by_region_and_window(engine: Engine) -> None:
    """Active outages are found per region (case-insensitive) and only inside their window."""
    kb = SqlKnowledgeBase(engine)
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    found = await kb.outages("utrecht", now)
    assert len(found) == 1 and "Utrecht" in found[0].message("en")
    assert "storing" in found[0].message("nl")
    assert await kb.outages("Leeds", now) == []
    assert await kb.outages("Utrecht", datetime(2026, 12, 10, tzinfo=UTC)) == []


async def test_knowledge_answer_falls_back_to_english(engine: Engine) -> None:
    """Answers exist per language; a missing key is None."""
    kb = SqlKnowledgeBase(engine)
    assert "modem" in (await kb.answer("troubleshoot_internet", "en") or "")
    assert "modem" in (await kb.answer("troubleshoot_internet", "nl") or "")
    assert await kb.answer("no_such_key", "en") is None


async def test_chat_capacity_and_agent_availability(engine: Engine) -> None:
    """Chat has capacity in opening hours; agent readiness sums groups with the skill."""
    kb = SqlKnowledgeBase(engine)
    chat = await kb.chat_status(datetime(2026, 11, 24, 10, 0, tzinfo=AMS))
    assert chat.available and chat.capacity == 8
    night = await kb.chat_status(datetime(2026, 11, 24, 23, 30, tzinfo=AMS))
    assert not night.available
    pool = SqlAgentPool(engine)
    assert (await pool.availability("billing")).agents_ready == 2
    assert (await pool.availability("nobody")).agents_ready == 0


def _contact(cid: str, customer_id: int | None = 1) -> Contact:
    c = Contact(id=cid, channel=ContactChannel.VOICE, caller="+31612345678",
                started_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC), language="nl",
                customer_id=customer_id)
    c.steps.append(StepRecord(Step.GREETING, datetime(2026, 11, 24, 9, 0, 1, tzinfo=UTC),
                              {"personal": True}))
    return c


async def test_contact_upsert_roundtrip_and_history(engine: Engine) -> None:
    """Saving the same contact twice updates it; history lists it for the customer."""
    log = SqlContactLog(engine)
    c = _contact("c-1")
    await log.save(c.snapshot())
    c.question, c.intent, c.scenario, c.outcome = "waar is mijn pakket", "order_status", \
        Scenario.ANSWER, Outcome.SELF_SERVED
    c.transcript.append("caller: waar is mijn pakket")
    c.dropped_at = None
    await log.save(c.snapshot())
    got = await log.get("c-1")
    assert got is not None and got.intent == "order_status" and got.scenario is Scenario.ANSWER
    assert got.transcript == ("caller: waar is mijn pakket",)
    assert got.steps[0].step is Step.GREETING and got.steps[0].detail == {"personal": True}
    hist = await log.history(customer_id=1)
    assert [h.id for h in hist] == ["c-1"]


async def test_dead_database_raises_port_error(tmp_path: Path) -> None:
    """A database that cannot be reached surfaces as PortError (the flow fails safe on it)."""
    eng = make_engine(f"sqlite:///{tmp_path / 'missing-dir-file.db'}")  # no schema
    with pytest.raises(PortError):
        await SqlCustomerDirectory(eng).find_by_number("+31612345678")


async def test_spooling_contact_log_loses_nothing(tmp_path: Path, sqlite_url: str) -> None:
    """With the DB down, contacts go to a spool file and are replayed when it is back."""
    broken = make_engine(f"sqlite:///{tmp_path / 'noschema.db'}")
    spool = tmp_path / "spool.jsonl"
    log = SpoolingContactLog(SqlContactLog(broken), spool)
    await log.save(_contact("c-9", None).snapshot())
    assert spool.exists() and "c-9" in spool.read_text()
    upgrade(f"sqlite:///{tmp_path / 'noschema.db'}")  # the database comes back
    await log.save(_contact("c-10", None).snapshot())
    assert not spool.exists()
    assert await log.get("c-9") is not None and await log.get("c-10") is not None


async def test_a_dead_nodes_spooled_contacts_are_replayed_by_another_node(
        tmp_path: Path) -> None:
    """Nodes share the spool folder: what node A spooled before it died, node B replays
    on its next save once the database is back; nothing is replayed twice."""
    url = f"sqlite:///{tmp_path / 'late.db'}"
    shared = tmp_path / "shared-spool"
    node_a = SpoolingContactLog(SqlContactLog(make_engine(url)), shared / "contacts-a.jsonl")
    node_b = SpoolingContactLog(SqlContactLog(make_engine(url)), shared / "contacts-b.jsonl")
    await node_a.save(_contact("c-a1", None).snapshot())  # no schema yet: spooled
    await node_a.save(_contact("c-a2", None).snapshot())
    await node_b.save(_contact("c-b1", None).snapshot())
    assert sorted(p.name for p in shared.iterdir()) == ["contacts-a.jsonl", "contacts-b.jsonl"]
    del node_a  # node A is gone for good
    upgrade(url)
    await node_b.save(_contact("c-b2", None).snapshot())
    assert list(shared.iterdir()) == []
    for contact_id in ("c-a1", "c-a2", "c-b1", "c-b2"):
        assert await node_b.get(contact_id) is not None, contact_id
    await node_b.save(_contact("c-b3", None).snapshot())  # nothing left to replay
    assert list(shared.iterdir()) == []
    # a node killed mid-write leaves half a line: the rest is replayed, that line kept
    (shared / "contacts-c.jsonl").write_text('{"id": "c-cut", "sta\n')
    await node_b.save(_contact("c-b4", None).snapshot())
    assert [p.name for p in shared.iterdir()] == ["contacts-c.jsonl.rejected"]


async def test_spooled_contacts_are_replayed_without_a_new_call(tmp_path: Path) -> None:
    """Every call of an outage ended while the database was down: the log's own loop
    replays the spool once it is back, not only when the next contact is saved."""
    url = f"sqlite:///{tmp_path / 'later.db'}"
    spool = tmp_path / "spool" / "node.jsonl"
    log = SpoolingContactLog(SqlContactLog(make_engine(url)), spool, replay_every_s=0.1)
    await log.save(_contact("c-o1", None).snapshot())  # no schema yet: spooled
    task = asyncio.create_task(log.run())
    try:
        await asyncio.sleep(0.5)
        assert spool.exists() and log.replayed == 0  # still down: kept
        upgrade(url)  # the database is back
        async with asyncio.timeout(5):
            for _ in itertools.count():  # a file on disk: nothing to await
                if not spool.exists():
                    break
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert log.replayed == 1
    assert await log.get("c-o1") is not None


async def test_a_replay_never_puts_an_older_snapshot_over_a_newer_record(
        tmp_path: Path) -> None:
    """A call's steps were spooled while the database was down; once it is back the
    call ends and its final record (with the outcome) is saved, which replays the spool:
    the older spooled snapshot must not overwrite that record (seen in the fault
    matrix: a caller who hung up during the outage kept no outcome)."""
    url = f"sqlite:///{tmp_path / 'back.db'}"
    log = SpoolingContactLog(SqlContactLog(make_engine(url)), tmp_path / "spool" / "n.jsonl")
    call = _contact("c-r1", None)
    await log.save(call.snapshot())  # no schema yet: spooled
    upgrade(url)  # the database is back
    call.outcome = Outcome.ABANDONED
    call.steps.append(StepRecord(Step.QUESTION, datetime(2026, 11, 24, 9, 0, 9, tzinfo=UTC)))
    await log.save(call.snapshot())  # saved first, then the spool is replayed
    stored = await log.get("c-r1")
    assert stored is not None and stored.outcome is Outcome.ABANDONED
    assert log.replayed == 0


def test_migrations_upgrade_and_downgrade(db_url: str) -> None:
    """Alembic head creates every table; downgrade to base removes them."""
    eng = make_engine(db_url)
    names = set(inspect(eng).get_table_names())
    assert {"customers", "customer_numbers", "orders", "outages", "knowledge_answers",
            "opening_hours", "holidays", "skills", "agent_groups", "chat_channels",
            "contacts"} <= names
    assert current_revision(db_url) is not None
    downgrade(db_url, "base")
    assert "customers" not in set(inspect(eng).get_table_names())
    upgrade(db_url)
    eng.dispose()


async def test_synthetic_seed_numbers_are_found(engine: Engine) -> None:
    """Synthetic customers get unique E.164 numbers that the CLI lookup finds."""
    seed_synthetic(engine, 2500, chunk=1000)
    d = SqlCustomerDirectory(engine)
    c = await d.find_by_number(synthetic_number(9 + 1234))
    assert c is not None and c.id == 9 + 1234


@pytest.mark.postgres
async def test_postgres_restart_is_survived_by_one_retry(postgres_server: object,
                                                         postgres_url: str) -> None:
    """Server-side killed connections (a restart) cost one retry, not a failed call."""
    upgrade(postgres_url)
    eng = make_engine(postgres_url)
    seed_demo(eng, today=TODAY)
    d = SqlCustomerDirectory(eng)
    assert await d.find_by_number("+447700900123") is not None  # the pool holds a connection
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        from sqlalchemy import text
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE pid <> pg_backend_pid() AND datname = current_database()"))
    admin.dispose()
    c = await d.find_by_number("+447700900123")
    assert c is not None and c.customer_no == "1002"
    eng.dispose()


async def test_caller_id_lookup_survives_a_postgres_restart() -> None:
    """The lookup runs on its own autocommit engine (one round trip instead of three):
    a server restart under it still costs the caller nothing, the dropped connection
    is retried once on a fresh one, like every other read."""
    import shutil
    import tempfile

    from ivr.testing.postgres import PostgresUnavailable, start_postgres

    root = Path(tempfile.mkdtemp(prefix="kanaal-pg-lookup-"))  # the postgres user enters
    try:
        server = start_postgres(root)
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is part of the rig: {exc}")
    try:
        url = server.create_database("kanaal")
        upgrade(url)
        engine = make_engine(url)
        seed_demo(engine, today=TODAY)
        d = SqlCustomerDirectory(engine)
        assert (await d.find_by_number("+31201234000")) is not None
        port = server.port
        server.stop()
        server = start_postgres(root, port=port)
        c = await d.find_by_number("+31201234000")
        assert c is not None and c.customer_no == "1003"
        # The screen-pop's reads share the same autocommit engine, and its retry.
        server.stop()
        server = start_postgres(root, port=port)
        assert (await d.find_by_id(c.id)) == c
        assert [o.order_no for o in await d.orders(c.id)] == [
            o.order_no for o in await SqlCustomerDirectory(engine).orders(c.id)]
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_reads_share_one_autocommit_twin_disposed_with_the_engine(engine: Engine) -> None:
    """One-statement reads run without a transaction on PostgreSQL (one round trip, not
    three), on one twin per engine that goes when the engine is disposed; SQLite keeps
    its one engine."""
    from ivr.storage.db import read_engine

    twin = read_engine(engine)
    assert read_engine(engine) is twin
    if engine.dialect.name == "sqlite":
        assert twin is engine
        return
    with twin.connect() as conn:  # psycopg's own flag: no BEGIN is sent
        assert conn.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
    assert twin.pool.checkedin() == 1  # type: ignore[attr-defined]
    engine.dispose()
    assert twin.pool.checkedin() == 0  # type: ignore[attr-defined]


async def test_customer_card_on_a_broken_database_raises_the_ports_error(
        tmp_path: Path) -> None:
    """The card's reads run side by side in a task group; a failing read still reaches
    the screen-pop as the port's one named error (it then shows the contact without
    the card), not as an exception group."""
    from ivr.clock import PinnedClock
    from ivr.web.app import customer_card_of

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no schema: every read fails
    app = type("App", (), {
        "engine": engine, "directory": SqlCustomerDirectory(engine),
        "contacts": SqlContactLog(engine), "knowledge": SqlKnowledgeBase(engine),
        "clock": PinnedClock(datetime(2026, 11, 24, 12, tzinfo=UTC))})()
    with pytest.raises(PortError, match="database error"):
        await customer_card_of(app)(1)
    engine.dispose()
