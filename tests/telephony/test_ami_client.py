"""AmiClient against FakeAmiServer over real TCP: login, actions, list actions, events,
reconnect with backoff and resync, slow consumers, refused logins.

Real Asterisk behaviour is covered by the e2e rig; field names here follow
Asterisk 22's app_queue documentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ivr.domain.centre import DeviceState
from ivr.telephony.ami import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiNotConnected,
    AmiTimeout,
    Backoff,
    encode_action,
    parse_event,
    parse_message,
)
from ivr.telephony.ami.events import (
    AgentComplete,
    AgentConnect,
    AmiEvent,
    FullyBooted,
    ListComplete,
    QueueCallerJoin,
    QueueMemberAdded,
    QueueMemberPause,
    QueueMemberStatus,
    UnknownEvent,
)
from ivr.testing.fake_ami import FakeAmiServer

USER, SECRET = "kanaal", "s3cret"
FAST = Backoff(initial_s=0.01, factor=2.0, cap_s=0.08, jitter=0.0)

Runner = Callable[..., Awaitable[AmiClient]]


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmiServer]:
    async with FakeAmiServer(username=USER, secret=SECRET) as server:
        server.add_queue("billing", "sales")
        yield server


@pytest.fixture
async def start(ami: FakeAmiServer) -> AsyncIterator[Runner]:
    """Start clients' run() loops; cancel them at the end of the test."""
    tasks: list[asyncio.Task[None]] = []

    async def _start(on_connect: Any = None, wait: bool = True, **kw: Any) -> AmiClient:
        opts: dict[str, Any] = {"username": USER, "secret": SECRET, "backoff": FAST,
                                "action_timeout_s": 2.0, **kw}
        client = AmiClient("127.0.0.1", ami.port, **opts)
        tasks.append(asyncio.create_task(client.run(on_connect)))
        if wait:
            await client.wait_connected(5)
        return client

    yield _start
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def eventually(predicate: Callable[[], bool], within_s: float) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``within_s``."""
    for _ in range(int(within_s / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


async def next_of(sub: Any, kind: type[AmiEvent], within_s: float = 2.0) -> Any:
    async with asyncio.timeout(within_s):
        while True:
            ev = await sub.get()
            if isinstance(ev, kind):
                return ev


async def test_login_sends_credentials_and_turns_events_on(
    ami: FakeAmiServer, start: Runner
) -> None:
    """Login carries Username/Secret/Events: on; the client is connected and fresh."""
    client = await start()
    login = ami.actions[0]
    assert login.get("Action") == "Login"
    assert (login.get("Username"), login.get("Secret"), login.get("Events")) == (USER, SECRET, "on")
    assert login.action_id
    assert client.connected.is_set() and client.banner.startswith("Asterisk Call Manager/")
    await eventually(lambda: client.stale_since is None, 2)  # no hook: fresh right after login


async def test_action_response_is_matched_by_action_id(ami: FakeAmiServer, start: Runner) -> None:
    """Concurrent actions each get their own answer; an Error answer raises with its text."""
    client = await start()
    results = await asyncio.gather(*(
        client.queue_add("billing", f"PJSIP/agent-{i}", penalty=i % 5, member_name=f"A{i}")
        for i in range(20)))
    assert all(r.success and r.message == "Added interface to queue" for r in results)
    assert len({r.action_id for r in results}) == 20
    sent = {m.action_id: m.get("Interface") for m in ami.actions if m.get("Action") == "QueueAdd"}
    assert all(sent[r.action_id] == f"PJSIP/agent-{i}" for i, r in enumerate(results))
    with pytest.raises(AmiActionError, match="Already there") as err:
        await client.queue_add("billing", "PJSIP/agent-0")
    assert not err.value.response.success
    with pytest.raises(AmiActionError, match="No such queue"):
        await client.queue_add("nope", "PJSIP/agent-0")
    resp = await client.queue_pause("PJSIP/agent-1", True, reason="lunch")
    assert resp.message == "Interface paused successfully"


async def test_list_action_collects_events_until_complete(
    ami: FakeAmiServer, start: Runner
) -> None:
    """QueueStatus returns typed QueueParams/QueueMember/QueueEntry up to QueueStatusComplete."""
    client = await start()
    await client.queue_add("billing", "PJSIP/agent-1001", penalty=1, member_name="Ann")
    await client.queue_add("sales", "PJSIP/agent-1002", paused=True, member_name="Bob")
    await ami.caller_join("billing", "1700000000.1", caller_id="+31201234567", priority=5)
    await ami.caller_join("billing", "1700000000.2", caller_id="+31207654321")
    status = await client.queue_status()
    assert sorted(p.queue for p in status.params) == ["billing", "sales"]
    billing = next(p for p in status.params if p.queue == "billing")
    assert billing.calls == 2 and billing.strategy == "leastrecent"
    ann = next(m for m in status.members if m.interface == "PJSIP/agent-1001")
    assert (ann.queue, ann.member_name, ann.penalty, ann.paused) == ("billing", "Ann", 1, False)
    assert ann.status is DeviceState.NOT_INUSE
    bob = next(m for m in status.members if m.interface == "PJSIP/agent-1002")
    assert bob.paused
    assert [(e.uniqueid, e.position, e.priority) for e in status.entries] == [
        ("1700000000.1", 1, 5), ("1700000000.2", 2, 0)]
    assert status.entries[0].caller_id_num == "+31201234567"
    only = await client.queue_status("sales")
    assert [p.queue for p in only.params] == ["sales"] and not only.entries


async def test_events_are_typed_at_the_edge(ami: FakeAmiServer, start: Runner) -> None:
    """Queue events arrive as frozen typed values, channel variables included."""
    client = await start()
    sub = client.subscribe()
    await client.queue_add("billing", "PJSIP/agent-1001", member_name="Ann")
    added = await next_of(sub, QueueMemberAdded)
    assert (added.queue, added.interface, added.member_name) == (
        "billing", "PJSIP/agent-1001", "Ann")
    await ami.member_status("PJSIP/agent-1001", DeviceState.INUSE, in_call=True)
    status = await next_of(sub, QueueMemberStatus)
    assert status.status is DeviceState.INUSE and status.in_call
    await client.queue_pause("PJSIP/agent-1001", True, reason="coaching")
    pause = await next_of(sub, QueueMemberPause)
    assert pause.paused and pause.reason == "coaching" and pause.paused_reason == "coaching"
    await ami.caller_join("billing", "1700000000.7", caller_id="+3120", priority=3,
                          variables={"IVR_SESSION": "s-42"})
    join = await next_of(sub, QueueCallerJoin)
    assert (join.uniqueid, join.position, join.count, join.caller_id_num) == (
        "1700000000.7", 1, 1, "+3120")
    assert join.variables == {"IVR_SESSION": "s-42"}
    await ami.emit("VarSet", [("Variable", "X")])
    assert isinstance(await next_of(sub, UnknownEvent), UnknownEvent)


def test_agent_events_parse_from_asterisk_wire_text() -> None:
    """AgentConnect/AgentComplete blocks as Asterisk 22 writes them become typed events."""
    block = (
        "Event: AgentComplete\r\nPrivilege: agent,all\r\nChannel: PJSIP/caller-00000001\r\n"
        "Uniqueid: 1700000000.1\r\nCallerIDNum: +31201234567\r\n"
        "ChanVariable: IVR_SESSION=abc\r\nChanVariable: IVR_INTENT=billing\r\n"
        "DestChannel: PJSIP/agent-1001-00000002\r\nDestUniqueid: 1700000000.2\r\n"
        "Queue: billing\r\nMemberName: Ann\r\nInterface: PJSIP/agent-1001\r\n"
        "HoldTime: 12\r\nTalkTime: 95\r\nReason: caller\r\n\r\n")
    ev = parse_event(parse_message(block.encode()))
    assert isinstance(ev, AgentComplete)
    assert (ev.queue, ev.interface, ev.hold_time, ev.talk_time, ev.reason) == (
        "billing", "PJSIP/agent-1001", 12, 95, "caller")
    assert ev.variables == {"IVR_SESSION": "abc", "IVR_INTENT": "billing"}
    assert ev.dest_uniqueid == "1700000000.2"
    connect = parse_event(parse_message(block.replace("AgentComplete", "AgentConnect")
                                        .replace("HoldTime: 12", "HoldTime: x")))
    assert isinstance(connect, AgentConnect) and connect.hold_time == 0  # bad number -> 0
    done = parse_event(parse_message(
        "Event: QueueStatusComplete\r\nActionID: a-1\r\nEventList: Complete\r\nListItems: 3\r\n"))
    assert isinstance(done, ListComplete) and done.list_items == 3
    assert isinstance(parse_event(parse_message("Event: FullyBooted\r\nStatus: Fully Booted")),
                      FullyBooted)


def test_header_values_cannot_inject_lines() -> None:
    """A CR/LF inside a value would smuggle headers or a second action: refused."""
    with pytest.raises(ValueError, match="line break"):
        encode_action("QueuePause", "a-1", {"Interface": "PJSIP/x\r\nAction: Logoff"})
    wire = encode_action("QueueAdd", "a-2", {"Queue": "q", "Paused": False, "Skip": None})
    assert wire == b"Action: QueueAdd\r\nActionID: a-2\r\nQueue: q\r\nPaused: false\r\n\r\n"


async def test_reconnects_after_drop_and_resyncs_again(ami: FakeAmiServer, start: Runner) -> None:
    """A dropped connection is re-established and the resync hook runs after each login."""
    synced: list[int] = []

    async def resync(client: AmiClient) -> None:
        status = await client.queue_status()
        synced.append(len(status.members))

    client = await start(resync)
    await eventually(lambda: client.resyncs >= 1, 2)
    assert client.stale_since is None
    await client.queue_add("billing", "PJSIP/agent-1001")
    ami.silent.add("QueuePenalty")
    hanging = asyncio.create_task(client.queue_penalty("PJSIP/agent-1001", 2))
    await asyncio.sleep(0.05)
    await ami.drop_connections()
    with pytest.raises(AmiNotConnected):
        await hanging  # an action in flight fails fast, it is not re-sent
    await eventually(lambda: client.resyncs >= 2, 3)
    assert client.connects == 2 and ami.logins == 2
    assert synced == [0, 1]
    assert client.stale_since is None and client.connected.is_set()


async def test_stale_since_marks_the_gap(ami: FakeAmiServer, start: Runner) -> None:
    """While disconnected, stale_since holds when the gap began; actions fail at once."""
    client = await start(backoff=Backoff(initial_s=0.3, cap_s=0.3, jitter=0.0))
    await asyncio.sleep(0.05)
    before = time.monotonic()
    await ami.drop_connections()
    await eventually(lambda: not client.connected.is_set(), 2)
    assert client.stale_since is not None and client.stale_since >= before - 0.01
    with pytest.raises(AmiNotConnected):
        await client.action("Ping")
    await client.wait_connected(3)


def test_backoff_is_exponential_and_capped() -> None:
    """Delays double from initial_s up to cap_s; jitter only ever lengthens them."""
    b = Backoff(initial_s=0.1, factor=2.0, cap_s=1.0, jitter=0.5)
    assert [b.delay(i) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.delay(2, rand=0.99) == pytest.approx(0.4 * 1.495)
    assert b.delay(10_000) == 1.0  # no float overflow after a long outage


async def test_backoff_grows_while_server_is_down(ami: FakeAmiServer, start: Runner) -> None:
    """Refused connections are retried with growing delays up to the cap."""
    port = ami.port
    await ami.stop()
    client = await start(wait=False)
    await asyncio.sleep(0.4)
    assert list(client.delays)[:5] == [0.01, 0.02, 0.04, 0.08, 0.08]
    assert not client.connected.is_set() and isinstance(client.last_error, OSError)
    async with FakeAmiServer(username=USER, secret=SECRET, port=port):
        await client.wait_connected(2)


async def test_slow_consumer_does_not_block_reader_or_others(
    ami: FakeAmiServer, start: Runner
) -> None:
    """A consumer that never reads loses its oldest events; others and actions carry on."""
    client = await start()
    slow = client.subscribe(maxsize=10)
    fast = client.subscribe(QueueCallerJoin)
    for i in range(500):
        await ami.caller_join("billing", f"1700000000.{i}")
    got: list[str] = []
    async with asyncio.timeout(5):
        while len(got) < 500:
            ev = await fast.get()
            assert isinstance(ev, QueueCallerJoin)
            got.append(ev.uniqueid)
    assert got == [f"1700000000.{i}" for i in range(500)]
    t0 = time.monotonic()
    await client.action("Ping")
    assert time.monotonic() - t0 < 0.5
    assert slow.queue.qsize() == 10 and slow.dropped >= 490
    kept = [slow.queue.get_nowait() for _ in range(10)]
    assert [e.uniqueid for e in kept if isinstance(e, QueueCallerJoin)][-1] == "1700000000.499"


async def test_login_failure_is_a_clear_error(ami: FakeAmiServer, start: Runner) -> None:
    """A wrong secret raises AmiAuthError naming the user and Asterisk's reason."""
    client = AmiClient("127.0.0.1", ami.port, username=USER, secret="wrong", backoff=FAST,
                       retry_auth_failures=False)
    with pytest.raises(AmiAuthError, match=r"refused for user 'kanaal'.*Authentication failed"):
        async with asyncio.timeout(5):
            await client.run()
    assert not client.connected.is_set()


async def test_login_failure_is_retried_and_reported(ami: FakeAmiServer, start: Runner) -> None:
    """By default a refused login is retried (secret may be fixed) and wait_connected says why."""
    client = await start(wait=False, secret="wrong")
    with pytest.raises(AmiAuthError, match="Authentication failed"):
        await client.wait_connected(0.3)
    assert ami.failed_logins >= 2


async def test_unanswered_action_times_out(ami: FakeAmiServer, start: Runner) -> None:
    """No answer within the timeout raises AmiTimeout; the connection stays usable."""
    client = await start()
    ami.silent.add("QueuePenalty")
    with pytest.raises(AmiTimeout):
        await client.action("QueuePenalty", {"Interface": "PJSIP/agent-1", "Penalty": "3"},
                            timeout_s=0.1)
    assert (await client.action("Ping")).fields.get("Ping") == "Pong"


async def test_unanswered_pings_force_a_reconnect(ami: FakeAmiServer, start: Runner) -> None:
    """A connection whose pings go unanswered (half-open TCP) is dropped and redone."""
    client = await start(ping_interval_s=0.05)
    ami.silent.add("Ping")
    await eventually(lambda: client.connects >= 2, 3)


async def test_resync_on_request_and_retry_after_failure(
    ami: FakeAmiServer, start: Runner
) -> None:
    """request_resync re-runs the hook; a failing hook is retried until it succeeds."""
    calls: list[float] = []

    async def hook(client: AmiClient) -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise AmiTimeout("QueueStatus too slow")

    client = await start(hook)
    await eventually(lambda: client.resyncs >= 1, 2)
    client.request_resync()
    assert client.stale_since is not None
    await eventually(lambda: client.resyncs >= 2, 2)
    assert len(calls) == 3 and client.stale_since is None


async def test_action_before_connect_fails_fast() -> None:
    """Without a connection, actions raise AmiNotConnected instead of hanging."""
    client = AmiClient("127.0.0.1", 9, username=USER, secret=SECRET)
    with pytest.raises(AmiNotConnected):
        await client.action("Ping")
    with contextlib.suppress(AmiNotConnected):
        await client.wait_connected(0.01)
