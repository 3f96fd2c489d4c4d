"""Contacts of calls the lease saved from a dead node (ivr.telephony.ami.app_lost): the
dialplan's AstDB notes, read over AMI's wire format (FakeAmiServer), close the records
in a real SQLite contact log. The real-Asterisk proof is bench/faults.py's kill row."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ivr.clock import PinnedClock
from ivr.domain.model import ContactChannel, ContactSnapshot, Outcome, Step, StepRecord
from ivr.domain.ports import PortError
from ivr.storage.db import make_engine, upgrade
from ivr.storage.repositories import SqlContactLog
from ivr.telephony.ami import AmiClient
from ivr.telephony.ami.app_lost import FAMILY, AppLostCloser, parse_note
from ivr.testing.fake_ami import FakeAmiServer
from ivr.testing.fakes import FakeScreenPop

AT = datetime(2026, 11, 30, 12, tzinfo=UTC)
NOTED = int((AT + timedelta(seconds=9)).timestamp())


def _asked(session: str, outcome: Outcome | None = None) -> ContactSnapshot:
    return ContactSnapshot(
        id=session, channel=ContactChannel.VOICE, caller="+31655557777", started_at=AT,
        language="en", customer_id=None, question="I have a question about my invoice",
        intent="invoice_question", confidence=0.9, scenario=None, skill="billing",
        action=None, outcome=outcome, dropped_at=None,
        ended_at=AT if outcome else None,
        transcript=("ivr: how can I help?", "caller: I have a question about my invoice"),
        steps=(StepRecord(Step.GREETING, AT), StepRecord(Step.QUESTION, AT)))


@pytest.fixture
def contacts(tmp_path: Path) -> SqlContactLog:
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    return SqlContactLog(make_engine(url))


@pytest.fixture
async def ami() -> AsyncIterator[tuple[FakeAmiServer, AmiClient]]:
    async with FakeAmiServer(username="kanaal", secret="s3cret") as server:
        client = AmiClient("127.0.0.1", server.port, username="kanaal", secret="s3cret")
        task = asyncio.create_task(client.run())
        await client.wait_connected(5)
        try:
            yield server, client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(done: Callable[[], bool], within_s: float) -> None:
    async with asyncio.timeout(within_s):
        for _ in itertools.count():  # the closer's list: nothing to await
            if done():
                return
            await asyncio.sleep(0.05)


def test_notes_are_read_from_the_key_path_and_the_value() -> None:
    """The session is the key's last part; the value is '<epoch> <queue>'; junk is None."""
    note = parse_note("/kanaal/lost/4f2a9c", f"{NOTED} ivr-general")
    assert note is not None and note.session_id == "4f2a9c" and note.queue == "ivr-general"
    assert note.at == AT + timedelta(seconds=9)
    bare = parse_note("4f2a9c", "")
    assert bare is not None and bare.at is None and bare.queue == ""
    assert parse_note("/kanaal/lost/", "1") is None
    assert parse_note("/kanaal/lost/a b;c", "1") is None


async def test_a_lost_calls_contact_is_closed_once_and_its_note_removed(
        ami: tuple[FakeAmiServer, AmiClient], contacts: SqlContactLog) -> None:
    """Notes for: a record with no outcome (closed: error_to_agent, a hand-off step with
    reason app_lost, ended when noted), one already closed (left as it was), a live call
    of this node (skipped, note kept), a session with no record yet (kept for later) and
    one with no record for over a day (dropped). A second sweep changes nothing."""
    server, client = ami
    await contacts.save(_asked("lost1"))
    await contacts.save(_asked("done1", Outcome.AGENT))
    await contacts.save(_asked("live1"))
    for session in ("lost1", "done1", "live1", "later1"):
        server.astdb[f"{FAMILY}/{session}"] = f"{NOTED} ivr-general"
    server.astdb[f"{FAMILY}/gone1"] = f"{NOTED - 2 * 86400} ivr-general"
    pops = FakeScreenPop()
    closer = AppLostCloser(client, contacts, clock=PinnedClock(AT + timedelta(minutes=1)),
                           screenpop=pops, is_live=lambda session: session == "live1")
    assert await closer.sweep() == ["lost1"]
    # the agent who answers the queued caller sees the question, not a bare call
    assert list(pops.published) == ["lost1"]
    pop = pops.published["lost1"]
    assert pop["question"] == "I have a question about my invoice"
    assert pop["transcript"][-1] == "caller: I have a question about my invoice"
    assert pop["reason"] == "app_lost" and pop["skill"] == "billing"
    lost = await contacts.get("lost1")
    assert lost is not None and lost.outcome is Outcome.ERROR_TO_AGENT
    assert lost.ended_at == AT + timedelta(seconds=9) and lost.dropped_at is None
    assert lost.steps[-1].step is Step.HANDOFF
    assert lost.steps[-1].detail == {"reason": "app_lost", "skill": "billing",
                                     "queue": "ivr-general"}
    assert lost.question == "I have a question about my invoice"  # kept from the dead node
    done = await contacts.get("done1")
    assert done is not None and done.outcome is Outcome.AGENT and len(done.steps) == 2
    live = await contacts.get("live1")
    assert live is not None and live.outcome is None
    assert sorted(server.astdb) == [f"{FAMILY}/later1", f"{FAMILY}/live1"]
    assert await closer.sweep() == []
    assert list(pops.published) == ["lost1"]  # popped once


async def test_the_dialplans_event_closes_the_contact_at_once(
        ami: tuple[FakeAmiServer, AmiClient], contacts: SqlContactLog) -> None:
    """With the closer running (its periodic sweep a minute away), the KanaalAppLost
    UserEvent makes it read the new note and close the record within a second or two;
    an AMI reconnect (events missed meanwhile) sweeps too."""
    server, client = ami
    closer = AppLostCloser(client, contacts, clock=PinnedClock(AT), every_s=60)
    task = asyncio.create_task(closer.run())
    try:
        await asyncio.sleep(0.3)  # the first sweep (at login) found nothing
        await contacts.save(_asked("lost2"))
        server.astdb[f"{FAMILY}/lost2"] = f"{NOTED} ivr-general"
        await server.emit("UserEvent", [("UserEvent", "KanaalAppLost"), ("Session", "lost2")])
        await _until(lambda: closer.closed == ["lost2"], 3)
        await contacts.save(_asked("lost3"))
        server.astdb[f"{FAMILY}/lost3"] = f"{NOTED} ivr-general"
        await server.drop_connections()  # the event for lost3 was never seen
        await _until(lambda: closer.closed == ["lost2", "lost3"], 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert server.astdb == {}


async def test_a_database_away_keeps_the_notes(
        ami: tuple[FakeAmiServer, AmiClient], tmp_path: Path) -> None:
    """The contact log unreachable: the sweep raises (the loop logs and retries later)
    and no note is deleted, so nothing is lost."""
    server, client = ami
    broken = SqlContactLog(make_engine(f"sqlite:///{tmp_path / 'nowhere' / 'x' / 'no.db'}"))
    server.astdb[f"{FAMILY}/lost4"] = f"{NOTED} ivr-general"
    closer = AppLostCloser(client, broken, clock=PinnedClock(AT))
    with pytest.raises(PortError):
        await closer.sweep()
    assert f"{FAMILY}/lost4" in server.astdb
