"""CentreFeed over real TCP AMI (FakeAmiServer): events become live state, and a dropped
connection is followed by a full resync from QueueStatus."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from ivr.contact_centre.feed import CentreFeed, queue_skill
from ivr.domain.centre import Agent, AgentState, CentreKind, DeviceState
from ivr.telephony.ami import AmiClient, Backoff
from ivr.testing.fake_ami import FakeAmiServer

ANN = Agent(id="1", name="Ann", interface="PJSIP/agent1", region="Amsterdam",
            kind=CentreKind.OWN, languages=frozenset({"en"}), skills={"billing": 5})


@pytest.fixture
async def running() -> AsyncIterator[tuple[FakeAmiServer, CentreFeed, AmiClient]]:
    async with FakeAmiServer(username="kanaal", secret="s3cret") as ami:
        ami.add_queue("ivr-billing")
        client = AmiClient("127.0.0.1", ami.port, username="kanaal", secret="s3cret",
                           backoff=Backoff(initial_s=0.05, cap_s=0.2))
        async def profiles() -> list[Agent]:
            return [ANN]

        feed = CentreFeed(client, profiles=profiles, tick_s=0.05)
        task = asyncio.create_task(feed.run())
        try:
            async with asyncio.timeout(5):
                await feed.synced.wait()
            yield ami, feed, client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(pred: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll the feed's state: it changes on AMI events, there is nothing to await."""
    async with asyncio.timeout(timeout_s):
        for _ in itertools.count():  # a for loop: ruff's ASYNC110 wants no sleep-while
            if pred():
                return
            await asyncio.sleep(0.02)


def test_queue_names_map_to_skills_and_sides() -> None:
    """ivr-<skill> is a skill's queue; ivr-<skill>-own/-partner its split sides."""
    assert queue_skill("ivr-billing") == ("billing", None)
    assert queue_skill("ivr-general-partner") == ("general", "partner")
    assert queue_skill("ivr-after-sales") == ("after-sales", None)


async def test_member_and_caller_events_become_live_state(running) -> None:
    """QueueAdd -> a ready billing agent; a caller joins with QUEUE_PRIO; the agent goes busy."""
    ami, feed, client = running
    await client.queue_add("ivr-billing", "PJSIP/agent1", penalty=0, member_name="Ann")
    await until(lambda: feed.snapshot().skill("billing").ready() == 1)
    await ami.caller_join("ivr-billing", "1700.1", caller_id="+31201234567",
                          variables={"QUEUE_PRIO": "5"})
    await until(lambda: feed.snapshot().queue("billing").ahead_of(0) == 1)
    assert feed.snapshot().queue("billing").ahead_of(5) == 1  # equal priority: behind them
    assert feed.snapshot().queue("billing").ahead_of(6) == 0  # higher priority: first
    await ami.member_status("PJSIP/agent1", DeviceState.INUSE, in_call=True)
    await until(lambda: feed.snapshot().skill("billing").ready() == 0)
    assert feed.state.status("PJSIP/agent1").state is AgentState.BUSY
    assert feed.stale_s == 0.0


async def test_dropped_connection_is_followed_by_a_full_resync(running) -> None:
    """Events missed while AMI was down are recovered from QueueStatus after reconnect."""
    ami, feed, client = running
    await client.queue_add("ivr-billing", "PJSIP/agent1", penalty=0, member_name="Ann")
    await until(lambda: feed.snapshot().skill("billing").ready() == 1)
    before = feed.resyncs
    await ami.drop_connections()
    # While we are away a caller joins (nobody hears the event) ...
    ami.add_queue("ivr-billing")
    await ami.caller_join("ivr-billing", "1700.9", caller_id="+31201234599")
    await until(lambda: feed.resyncs > before)
    # ... and the resync still knows about them, and about the member.
    assert feed.snapshot().queue("billing").ahead_of(0) == 1
    assert feed.snapshot().skill("billing").staffed() == 1


async def test_an_overflow_substitute_is_not_counted_as_an_agent_of_the_skill(running) -> None:
    """A general agent added to the billing queue at penalty 10 is a substitute: billing
    still has nobody of its own (routing reaches them through the overflow step)."""
    _ami, feed, client = running
    await client.queue_add("ivr-billing", "PJSIP/agent1", penalty=10, member_name="Ann")
    await until(lambda: feed.events >= 1)
    await asyncio.sleep(0.1)
    assert feed.snapshot().skill("billing").logged_in() == 0

