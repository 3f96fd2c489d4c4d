"""FastAGI server and /route handler over real TCP connections (the test plays Asterisk)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from ivr.telephony.agi import (
    AgiHangup,
    AgiProtocolError,
    AgiSession,
    FastAgiServer,
    parse_environment,
    parse_response,
)
from ivr.testing.fake_agi import FakeAsterisk, env_block, ok_reply


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., FastAgiServer]]:
    """Builds FastAGI servers on free ports and stops them afterwards."""
    servers: list[FastAgiServer] = []

    def make(routes: dict[str, object], **kw: float) -> FastAgiServer:
        srv = FastAgiServer(routes, port=0, **kw)  # type: ignore[arg-type]
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        await srv.stop()


# ------------------------------------------------------------------ protocol


def test_environment_is_parsed_into_typed_fields() -> None:
    """agi_* lines become a frozen environment; 'unknown' CLI fields become empty."""
    env = parse_environment(env_block().decode().splitlines()[:-1])
    assert env.script == "route"
    assert env.query == {"lang": "nl"}
    assert env.callerid == "+31201234567"
    assert env.calleridname == ""
    assert env.arguments == ("first", "second")
    assert env.enhanced is False
    with pytest.raises(AttributeError):
        env.callerid = "x"  # type: ignore[misc]


def test_environment_rejects_non_agi_lines() -> None:
    """A peer that is not Asterisk gets a protocol error, not a half-filled environment."""
    with pytest.raises(AgiProtocolError):
        parse_environment(["GET / HTTP/1.1"])
    with pytest.raises(AgiProtocolError):
        parse_environment(["agi_channel: PJSIP/x"])  # no request at all


def test_responses_are_parsed() -> None:
    """result, parenthesised data and extras are split out of a 200 line."""
    r = parse_response("200 result=1 (some value) endpos=12345")
    assert (r.code, r.result, r.data, r.extras["endpos"]) == (200, "1", "some value", "12345")
    assert r.ok and r.result_int == 1
    assert parse_response("510 Invalid or unknown command").code == 510
    with pytest.raises(AgiProtocolError):
        parse_response("hello")


# ------------------------------------------------------------------ sessions


async def test_session_runs_route_handler_over_tcp(server_factory) -> None:
    """A full session: environment, SET/GET VARIABLE round trips, clean close."""
    seen: list[tuple[str, str | None]] = []

    async def handler(session: AgiSession) -> None:
        await session.set_variable("__IVR_QUEUE", 'bill "ing"')
        seen.append((session.env.callerid, await session.get_variable("GREETING")))

    srv = server_factory({"route": handler})
    await srv.start()
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block())
    await asyncio.wait_for(ast.serve(ok_reply), 5)
    assert ast.commands == [
        'SET VARIABLE __IVR_QUEUE "bill \\"ing\\""',
        "GET VARIABLE GREETING",
    ]
    assert seen == [("+31201234567", "hello world")]
    assert srv.sessions_started == 1 and srv.sessions_failed == 0


async def test_empty_and_stalled_connections_do_not_block_others(server_factory) -> None:
    """Idle, empty and half-sent connections leave other sessions and the loop free."""
    done = asyncio.Event()

    async def handler(session: AgiSession) -> None:
        await session.verbose("hi")
        done.set()

    srv = server_factory({"route": handler}, env_timeout_s=2.0)
    await srv.start()
    idle = await FakeAsterisk.connect(srv.port)  # connects, says nothing
    empty = await FakeAsterisk.connect(srv.port)
    await empty.close()  # connects and closes at once (port probe)
    half = await FakeAsterisk.connect(srv.port)
    await half.send(b"agi_network: yes\nagi_channel: PJSIP/x")  # then EOF mid-line
    half.writer.write_eof()

    lags: list[float] = []

    async def ticker() -> None:
        for _ in range(20):
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    good = await FakeAsterisk.connect(srv.port)
    await good.send(env_block())
    await asyncio.wait_for(good.serve(ok_reply), 5)
    elapsed = time.perf_counter() - t0
    await tick
    assert done.is_set()
    assert elapsed < 1.0, f"session waited behind idle connections ({elapsed:.2f}s)"
    assert max(lags) < 0.1, f"event loop stalled {max(lags) * 1000:.0f} ms"
    # the idle connection is dropped after env_timeout_s, not held forever
    assert await asyncio.wait_for(idle.reader.read(), 5) == b""
    await asyncio.sleep(0.05)
    assert srv.sessions_started == 1
    assert srv.sessions_failed == 2  # idle timeout + half environment


async def test_hangup_notice_ends_handler_without_hurting_server(server_factory) -> None:
    """HANGUP (or a 511) raises AgiHangup in the handler; the next session still works."""
    outcomes: list[str] = []

    async def handler(session: AgiSession) -> None:
        try:
            await session.verbose("one")
            await session.verbose("two")
            outcomes.append("finished")
        except AgiHangup:
            outcomes.append(f"hangup, hung_up={session.hung_up}")

    srv = server_factory({"route": handler})
    await srv.start()
    # HANGUP notice before the response: the response is still read, then
    # no further command goes out
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block())
    assert await ast.next_command() == 'VERBOSE "one" 3'
    await ast.send(b"HANGUP\n200 result=1\n")
    assert await ast.next_command() is None  # server closed the session
    # 511 (dead channel) as the answer
    ast2 = await FakeAsterisk.connect(srv.port)
    await ast2.send(env_block())
    assert await ast2.next_command() == 'VERBOSE "one" 3'
    await ast2.send(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    assert await ast2.next_command() is None
    assert outcomes == ["hangup, hung_up=True", "hangup, hung_up=True"]

    ast3 = await FakeAsterisk.connect(srv.port)
    await ast3.send(env_block())
    await asyncio.wait_for(ast3.serve(ok_reply), 5)
    assert outcomes[-1] == "finished"
    assert srv.sessions_failed == 0


async def test_eof_mid_session_and_handler_errors_are_contained(server_factory) -> None:
    """Asterisk vanishing mid-command, or a handler bug, ends only that session."""
    calls = 0

    async def handler(session: AgiSession) -> None:
        nonlocal calls
        calls += 1
        await session.verbose("x")
        if calls == 2:
            raise RuntimeError("bug in route logic")

    srv = server_factory({"route": handler})
    await srv.start()
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block())
    await ast.next_command()
    await ast.close()  # EOF while the handler waits for a response

    ast2 = await FakeAsterisk.connect(srv.port)
    await ast2.send(env_block())
    await asyncio.wait_for(ast2.serve(ok_reply), 5)

    ast3 = await FakeAsterisk.connect(srv.port)
    await ast3.send(env_block())
    await asyncio.wait_for(ast3.serve(ok_reply), 5)
    await asyncio.sleep(0.05)
    assert calls == 3
    assert srv.sessions_failed == 1  # only the RuntimeError counts as a failure


async def test_unknown_route_is_reported_and_closed(server_factory) -> None:
    """agi://host/nope gets a VERBOSE note and a closed socket (the dialplan continues)."""
    srv = server_factory({"route": lambda s: asyncio.sleep(0)})
    await srv.start()
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block(agi_network_script="nope", agi_request="agi://127.0.0.1/nope"))
    await asyncio.wait_for(ast.serve(ok_reply), 5)
    assert ast.commands == ["VERBOSE \"Kanaal FastAGI: no route 'nope'\" 1"]


async def test_usage_block_is_read_whole(server_factory) -> None:
    """A multi-line 520 usage answer is one response; the session stays in sync."""
    got: list[int] = []

    async def handler(session: AgiSession) -> None:
        got.append((await session.command("RECORD FILE")).code)
        got.append((await session.command("NOOP")).code)

    srv = server_factory({"route": handler})
    await srv.start()
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block())
    await ast.next_command()
    await ast.send(b"520-Invalid command syntax.  Proper usage follows:\nUsage: RECORD FILE\n"
                   b"520 End of proper usage.\n")
    await ast.next_command()
    await ast.send(b"200 result=0\n")
    assert await ast.next_command() is None
    assert got == [520, 200]


async def test_stop_cancels_sessions_in_progress_quietly(server_factory, caplog) -> None:
    """stop() ends a session waiting on Asterisk without asyncio error logs."""
    started = asyncio.Event()

    async def handler(session: AgiSession) -> None:
        started.set()
        await session.command("WAIT FOR DIGIT 100000", timeout_s=60)

    srv = server_factory({"route": handler})
    await srv.start()
    ast = await FakeAsterisk.connect(srv.port)
    await ast.send(env_block())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(srv.stop(), 5)
    assert await ast.next_command() == "WAIT FOR DIGIT 100000"
    assert await ast.next_command() is None  # closed by stop()
    await asyncio.sleep(0.05)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
