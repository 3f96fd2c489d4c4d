"""AriClient and AriCallChannel against a small local ARI server (HTTP + websocket).

The server is the kit's ``ivr.testing.fake_ari.FakeAri``: ARI's wire format with
just enough behaviour for protocol framing and the call logic. Real Asterisk
behaviour is covered by tests/e2e.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from ivr.domain.model import RouteDecision, Scenario
from ivr.domain.ports import CallerHungUp, Prompt
from ivr.telephony.ari.app import StasisApp
from ivr.telephony.ari.channel import AriCallChannel, AriChannelSettings, CallState
from ivr.telephony.ari.client import AriClient, AriConflict, AriError, AriNotFound
from ivr.telephony.ari.events import ChannelDestroyed, ChannelDtmfReceived, StasisStart
from ivr.testing.fake_ari import FakeAri
from ivr.testing.fake_ari import channel_json as chan

USER, PASSWORD, APP = "ivr", "secret", "ivr"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server_fake = FakeAri(username=USER, password=PASSWORD, app=APP)
    async with server_fake.serve():
        yield server_fake


def make_client(fake: FakeAri, **kw: Any) -> AriClient:
    return AriClient(fake.base_url, username=USER, password=PASSWORD, app=APP,
                     reconnect_delays=(0.05, 0.1), **kw)


@contextlib.asynccontextmanager
async def running(client: AriClient, fake: FakeAri) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(fake.connected.wait(), 5)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


class Sounds:
    """Prompt resolver: sound URI per key."""

    async def resolve(self, prompt: Prompt) -> str:
        if prompt.key == "broken":
            raise LookupError("no such prompt")
        return f"sound:/var/lib/kanaal/{prompt.language}/{prompt.key}"


def p(key: str) -> Prompt:
    return Prompt(key=key, text=key, language="en")


# ------------------------------------------------------------------ REST

async def test_rest_sends_ari_paths_params_and_auth(fake: FakeAri) -> None:
    """REST helpers hit ARI's paths with its parameter names and basic auth."""
    client = make_client(fake)
    fake.channels["c1"] = chan("c1")
    await client.answer("c1")
    await client.set_variable("c1", "__IVR_SESSION", "abc")
    assert await client.get_variable("c1", "__IVR_SESSION") == "abc"
    assert await client.get_variable("c1", "NOPE") is None
    await client.continue_in_dialplan("c1", context="ivr-handoff", extension="s", priority=1)
    info = await client.play("c1", ["sound:a", "sound:b"], "pb1")
    assert info.channel_id == "c1"
    assert info.media_uri == "sound:a,sound:b"
    await client.snoop("c1", snoop_id="s1")
    await client.external_media(channel_id="e1", external_host="127.0.0.1:4000")
    await client.create_bridge("b1")
    await client.add_to_bridge("b1", ["s1", "e1"])
    await client.subscribe_channel("c1")
    assert {b.id for b in await client.bridges()} == {"b1"}
    assert {c.id for c in await client.channels()} == {"c1", "s1", "e1"}
    paths = [(m, path) for m, path, _ in fake.requests]
    assert ("POST", "/channels/c1/continue") in paths
    assert ("POST", "/applications/ivr/subscription") in paths
    q = {path: qq for _, path, qq in fake.requests}
    assert q["/channels/externalMedia"]["format"] == "slin16"
    assert q["/channels/externalMedia"]["external_host"] == "127.0.0.1:4000"
    assert q["/channels/c1/snoop"] == {"spy": "in", "whisper": "none", "app": APP,
                                       "snoopId": "s1"}
    assert q["/channels/c1/continue"] == {"context": "ivr-handoff", "extension": "s",
                                          "priority": "1"}
    await client.aclose()


async def test_rest_errors_are_typed(fake: FakeAri) -> None:
    """404 -> AriNotFound, 409 -> AriConflict, unreachable -> AriError; gone is not fatal."""
    client = make_client(fake)
    with pytest.raises(AriNotFound):
        await client.answer("nope")
    assert await client.hangup("nope") is False
    assert await client.stop_playback("nope") is False
    assert await client.destroy_bridge("nope") is False
    with pytest.raises(AriConflict):
        await client._request("GET", "/conflict")
    await client.aclose()
    bad = AriClient("http://127.0.0.1:9", username=USER, password="x", app=APP)
    with pytest.raises(AriError) as err:
        await bad.channels()
    assert err.value.status == 0
    await bad.aclose()
    wrong = AriClient(fake.base_url, username=USER, password="wrong", app=APP)
    with pytest.raises(AriError) as err:
        await wrong.channels()
    assert err.value.status == 401
    await wrong.aclose()


# ---------------------------------------------------------------- events

async def test_new_call_and_per_call_routing(fake: FakeAri) -> None:
    """A StasisStart of an unknown channel is a new call; later events go to its queue."""
    client = make_client(fake)
    async with running(client, fake):
        await fake.start_call("c1")
        start, sub = await asyncio.wait_for(client.next_call(), 2)
        assert isinstance(start, StasisStart) and start.channel.caller_number == "0612345678"
        await fake.emit({"type": "ChannelDtmfReceived", "channel": chan("c1"), "digit": "5",
                         "duration_ms": 100})
        await fake.emit({"type": "ChannelDtmfReceived", "channel": chan("other"), "digit": "9"})
        ev = await sub.get(2)
        assert isinstance(ev, ChannelDtmfReceived) and ev.digit == "5"
        assert await sub.get(0.2) is None  # the other channel's event is not ours


async def test_slow_consumer_never_blocks_reader(fake: FakeAri) -> None:
    """A call that never reads its queue loses its oldest events; other calls still flow."""
    client = make_client(fake, queue_size=10)
    async with running(client, fake):
        await fake.start_call("slow")
        _, slow = await asyncio.wait_for(client.next_call(), 2)
        for i in range(200):
            await fake.emit({"type": "ChannelDtmfReceived", "channel": chan("slow"),
                             "digit": str(i % 10)})
        await fake.start_call("fast")
        _, fast = await asyncio.wait_for(client.next_call(), 2)
        await fake.emit({"type": "ChannelDtmfReceived", "channel": chan("fast"), "digit": "1"})
        assert isinstance(await fast.get(2), ChannelDtmfReceived)
        assert slow.dropped == 190 and slow.queue.qsize() == 10


async def test_garbage_messages_do_not_stop_the_reader(fake: FakeAri) -> None:
    """Non-JSON and type-less messages are skipped; the next event still arrives."""
    client = make_client(fake)
    async with running(client, fake):
        for ws in fake.sockets:
            await ws.send_text("not json")
            await ws.send_text("[1, 2]")
            await ws.send_text('{"no": "type"}')
        await fake.start_call("c1")
        start, _ = await asyncio.wait_for(client.next_call(), 2)
        assert start.channel.id == "c1"


async def test_reconnects_and_resyncs_vanished_channels(fake: FakeAri) -> None:
    """After the websocket drops, the client reconnects and reports channels lost in the gap."""
    client = make_client(fake)
    async with running(client, fake):
        await fake.start_call("stays")
        await fake.start_call("goes")
        _, stays = await asyncio.wait_for(client.next_call(), 2)
        _, goes = await asyncio.wait_for(client.next_call(), 2)
        fake.accept_ws = False
        await fake.drop_sockets()
        await asyncio.sleep(0.3)  # refused reconnects: backoff keeps trying
        del fake.channels["goes"]  # hung up while we were deaf: its events are lost
        fake.accept_ws = True
        await asyncio.wait_for(fake.connected.wait(), 5)
        ev = await goes.get(3)
        assert isinstance(ev, ChannelDestroyed) and ev.synthetic
        assert await stays.get(0.3) is None
        assert client.connects >= 2 and client.resyncs == 1
        await fake.start_call("new")
        start, _ = await asyncio.wait_for(client.next_call(), 2)
        assert start.channel.id == "new"


# --------------------------------------------------------------- channel

@contextlib.asynccontextmanager
async def one_call(fake: FakeAri, cid: str = "c1", *, recognizer: Any = None,
                   settings: AriChannelSettings | None = None,
                   ) -> AsyncIterator[AriCallChannel]:
    """An answered call on a fake Asterisk; closed when the block ends."""
    client = make_client(fake)
    async with running(client, fake):
        await fake.start_call(cid)
        start, sub = await asyncio.wait_for(client.next_call(), 2)
        ch = AriCallChannel(client, sub, start.channel, session_id="sess1",
                            recognizer=recognizer, prompts=Sounds(),
                            settings=settings or AriChannelSettings(inter_digit_s=0.3))
        await ch.answer()
        try:
            yield ch
        finally:
            await ch.close()


async def test_caller_identity_from_channel(fake: FakeAri) -> None:
    """The channel's caller number becomes an E.164 Caller (default region NL)."""
    async with one_call(fake) as ch:
        assert ch.caller.number == "+31612345678"
        assert ch.caller.dialed == "100"


async def test_say_plays_to_the_end(fake: FakeAri) -> None:
    """say() returns once Asterisk reports the playback finished."""
    async with one_call(fake) as ch:
        t0 = asyncio.get_running_loop().time()
        await ch.say(p("welcome"))
        assert asyncio.get_running_loop().time() - t0 >= 0.25
        plays = [q for m, path, q in fake.requests if "/play/" in path]
        assert plays[0]["media"] == "sound:/var/lib/kanaal/en/welcome"


async def test_unresolvable_prompt_is_skipped(fake: FakeAri) -> None:
    """A prompt that cannot be resolved does not end the call."""
    async with one_call(fake) as ch:
        await ch.say(p("broken"))
        assert ch.state is CallState.ACTIVE


async def test_collect_digits_with_hash_and_flood(fake: FakeAri) -> None:
    """Digits stop the prompt, '#' ends entry; a DTMF flood is bounded and harmless."""
    async with one_call(fake) as ch:
        async def press() -> None:
            await asyncio.sleep(0.05)
            for d in "12#":
                await fake.emit({"type": "ChannelDtmfReceived", "channel": chan("c1"),
                                 "digit": d})
        task = asyncio.create_task(press())
        assert await ch.collect_digits(p("pin"), max_digits=6, timeout_s=2) == "12"
        await task
        assert any(m == "DELETE" and path.startswith("/playbacks/")
                   for m, path, _ in fake.requests)
        for _ in range(500):
            await fake.emit({"type": "ChannelDtmfReceived", "channel": chan("c1"), "digit": "7"})
        got = await ch.collect_digits(p("pin"), max_digits=4, timeout_s=1)
        assert got is None or set(got) <= {"7"}


async def test_collect_digits_inter_digit_timeout(fake: FakeAri) -> None:
    """Entry ends after the inter-digit timeout; no entry at all gives None."""
    async with one_call(fake) as ch:
        async def press() -> None:
            await asyncio.sleep(0.4)
            await fake.emit({"type": "ChannelDtmfReceived", "channel": chan("c1"), "digit": "4"})
        task = asyncio.create_task(press())
        assert await ch.collect_digits(p("menu"), max_digits=3, timeout_s=2) == "4"
        await task
        assert await ch.collect_digits(p("menu"), max_digits=3, timeout_s=0.2) is None


async def test_listen_without_asr_takes_a_keypad_digit(fake: FakeAri) -> None:
    """listen() returns a keypad choice as an Utterance with dtmf set."""
    async with one_call(fake) as ch:
        async def press() -> None:
            await asyncio.sleep(0.1)
            await fake.emit({"type": "ChannelDtmfReceived", "channel": chan("c1"), "digit": "2"})
        task = asyncio.create_task(press())
        utt = await ch.listen(p("question"), timeout_s=2)
        await task
        assert utt is not None and utt.dtmf == "2"
        assert await ch.listen(None, timeout_s=0.2) is None


async def test_hangup_mid_prompt_raises_caller_hung_up(fake: FakeAri) -> None:
    """A hang-up during a prompt ends say() with CallerHungUp; later calls raise too."""
    fake.play_s = 5
    async with one_call(fake) as ch:
        async def hang() -> None:
            await asyncio.sleep(0.1)
            await fake.caller_hangs_up("c1")
        task = asyncio.create_task(hang())
        with pytest.raises(CallerHungUp):
            await ch.say(p("long"))
        await task
        assert ch.state is CallState.GONE
        with pytest.raises(CallerHungUp):
            await ch.listen(p("q"), timeout_s=1)


async def test_hand_off_sets_variables_and_continues(fake: FakeAri) -> None:
    """hand_off sets the inherited IVR variables and continues into ivr-handoff."""
    async with one_call(fake) as ch:
        await ch.hand_off(RouteDecision(scenario=Scenario.AGENT, skill="billing",
                                        queue="ivr-billing", priority=5, intent="invoice"))
        v = {k[1]: val for k, val in fake.variables.items() if k[0] == "c1"}
        assert v == {"IVR_LANG": "en",
                     "__IVR_SESSION": "sess1", "__IVR_INTENT": "invoice", "__IVR_SCENARIO": "S4",
                     "__IVR_SKILL": "billing", "__IVR_CUSTOMER": "", "IVR_QUEUE": "ivr-billing",
                     "QUEUE_PRIO": "5"}
        cont = [q for m, path, q in fake.requests if path == "/channels/c1/continue"]
        assert cont == [{"context": "ivr-handoff", "extension": "s", "priority": "1"}]
        assert ch.state is CallState.HANDED_OFF


async def test_stasis_app_runs_flow_and_fails_safe(fake: FakeAri) -> None:
    """The app answers, runs the flow per call; a crashing flow sends the caller to a human."""
    seen: list[str] = []

    async def flow(channel: Any) -> None:
        seen.append(channel.caller.number)
        if channel.caller.number.endswith("9"):
            raise RuntimeError("bug in the flow")
        await channel.say(p("bye"))

    client = make_client(fake)
    app = StasisApp(client, flow_runner=flow, prompts=Sounds(), recognizer=None)
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(fake.connected.wait(), 5)
    await fake.start_call("ok", "0201234567")
    await fake.start_call("crash", "0201234569")
    for _ in range(100):
        if app.completed + app.failed == 2:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.aclose()
    assert sorted(seen) == ["+31201234567", "+31201234569"]
    assert (app.completed, app.failed) == (1, 1)
    assert "ok" not in fake.channels  # hung up after the flow
    # the Router's fail-safe skill; the dialplan's ivr-handoff maps it to ivr-general
    assert fake.variables[("crash", "IVR_QUEUE")] == "general"
    assert ("POST", "/channels/crash/continue") in [(m, x) for m, x, _ in fake.requests]


async def test_stasis_app_serves_http_client_injection(fake: FakeAri) -> None:
    """An injected httpx client is used for REST (base_url/transport injection)."""
    http = httpx.AsyncClient(base_url=fake.base_url + "/ari",
                             auth=(USER, PASSWORD))
    client = AriClient("http://unused:1", username=USER, password=PASSWORD, app=APP, http=http)
    assert await client.channels() == []
    await http.aclose()


async def test_resync_reports_playbacks_and_bridges_lost_in_the_gap(fake: FakeAri) -> None:
    """A playback that ended and a bridge destroyed while deaf arrive as synthetic events."""
    client = make_client(fake)
    async with running(client, fake):
        fake.bridges["b1"] = []
        sub = client.subscribe("pb-gone", kind="playback")
        sub.add("pb-live", "playback")
        sub.add("b1", "bridge")
        fake.playbacks["pb-live"] = asyncio.create_task(asyncio.sleep(30))
        fake.accept_ws = False
        await fake.drop_sockets()
        await asyncio.sleep(0.2)
        del fake.bridges["b1"]
        fake.accept_ws = True
        await asyncio.wait_for(fake.connected.wait(), 5)
        got = {type(e).__name__: e for e in [await sub.get(2), await sub.get(2)] if e}
        assert set(got) == {"PlaybackFinished", "BridgeDestroyed"}
        assert all(e.synthetic for e in got.values())
        assert got["PlaybackFinished"].resource_ids()[0] == "pb-gone"
        assert await sub.get(0.3) is None  # the live playback is not reported
        fake.playbacks["pb-live"].cancel()


async def test_slow_answer_gets_a_one_moment_prompt_fast_one_does_not(fake: FakeAri) -> None:
    """After the caller's turn, no prompt within ack_after_s -> 'one_moment' plays, then the
    answer (queued behind it); an answer that starts in time cancels it."""
    async with one_call(fake) as ch:
        ch._start_ack(ch._now() - 0.6)  # the turn ended 0.6 s ago; ack due at 0.7 s
        await asyncio.sleep(0.3)
        await ch.say(p("answer"))
        plays = [q["media"] for m, path, q in fake.requests if "/play/" in path]
        assert plays == ["sound:/var/lib/kanaal/en/one_moment", "sound:/var/lib/kanaal/en/answer"]
        assert ch.acks == 1
        ch._s = replace(ch._s, ack_after_s=5.0)  # a margin no loaded machine misses
        ch._start_ack(ch._now())  # the next answer comes at once: no acknowledgement
        pending = ch._ack
        await ch.say(p("quick"))
        assert pending is not None and pending.cancelled() and ch._ack is None
        plays = [q["media"] for m, path, q in fake.requests if "/play/" in path]
        assert plays[2:] == ["sound:/var/lib/kanaal/en/quick"] and ch.acks == 1


async def test_a_turn_behind_a_backlog_is_acknowledged_at_once(fake: FakeAri) -> None:
    """Three callers of the node already wait for their answer: this turn's "one moment"
    comes after ack_busy_after_s, not after ack_after_s (set far beyond the test's wait);
    the caller leaves the backlog when the answer starts, and only once."""
    async with one_call(fake) as ch:
        ch._s = replace(ch._s, ack_after_s=30.0, ack_busy_turns=3, ack_busy_after_s=0.05)
        ch._backlog.waiting = 2  # two ahead: below the line, the normal (30 s) wait
        ch._start_ack(ch._now(), ch._await_answer())
        assert ch._backlog.waiting == 3
        await asyncio.sleep(0.5)
        assert ch.acks == 0
        ch._answered()
        ch._answered()  # idempotent: counted once
        assert ch._backlog.waiting == 2
        ch._backlog.waiting = 3
        ch._start_ack(ch._now(), ch._await_answer())
        for _ in range(100):
            if ch.acks:
                break
            await asyncio.sleep(0.02)
        assert ch.acks == 1
        assert ch._await_answer() == 3  # asked again while waiting: not counted twice
        assert ch._backlog.waiting == 4
        await ch.close()  # a caller who hangs up before the answer leaves the backlog
        assert ch._backlog.waiting == 3
