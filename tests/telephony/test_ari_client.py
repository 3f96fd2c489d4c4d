"""AriClient and AriCallChannel against a small local ARI server (HTTP + websocket).

The server speaks ARI's wire format (paths, query parameters, JSON bodies, event
JSON on /ari/events) with just enough behaviour for protocol framing and the
call logic: playbacks finish on a timer unless stopped, snoop/externalMedia
channels enter Stasis, continue/hangup end the channel. Real Asterisk behaviour
is covered by tests/e2e.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ivr.domain.model import RouteDecision, Scenario
from ivr.domain.ports import CallerHungUp, Prompt
from ivr.telephony.ari.app import StasisApp
from ivr.telephony.ari.channel import AriCallChannel, AriChannelSettings, CallState
from ivr.telephony.ari.client import AriClient, AriConflict, AriError, AriNotFound
from ivr.telephony.ari.events import ChannelDestroyed, ChannelDtmfReceived, StasisStart

USER, PASSWORD, APP = "ivr", "secret", "ivr"


def chan(cid: str, number: str = "0612345678", name: str = "PJSIP/caller-1") -> dict[str, Any]:
    return {"id": cid, "name": name, "state": "Ring", "caller": {"number": number, "name": ""},
            "dialplan": {"context": "from-callers", "exten": "100", "priority": 1}}


class FakeAri:
    """Local ARI look-alike; records every REST request."""

    def __init__(self, play_s: float = 0.3) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.channels: dict[str, dict[str, Any]] = {}
        self.bridges: dict[str, list[str]] = {}
        self.variables: dict[tuple[str, str], str] = {}
        self.playbacks: dict[str, asyncio.Task[None]] = {}
        self.sockets: list[WebSocket] = []
        self.connected = asyncio.Event()
        self.play_s = play_s
        self.accept_ws = True
        self.app = Starlette(routes=[
            WebSocketRoute("/ari/events", self.ws),
            Route("/ari/{path:path}", self.rest, methods=["GET", "POST", "DELETE"]),
        ])

    async def emit(self, event: dict[str, Any]) -> None:
        event = {"application": APP, "timestamp": "2026-01-01T00:00:00.000+0000", **event}
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.send_text(json.dumps(event))

    async def start_call(self, cid: str, number: str = "0612345678") -> None:
        self.channels[cid] = chan(cid, number)
        await self.emit({"type": "StasisStart", "channel": self.channels[cid], "args": []})

    async def caller_hangs_up(self, cid: str) -> None:
        ch = self.channels.pop(cid, chan(cid))
        await self.emit({"type": "ChannelHangupRequest", "channel": ch, "cause": 16})
        await self.emit({"type": "StasisEnd", "channel": ch})
        await self.emit({"type": "ChannelDestroyed", "channel": ch, "cause": 16})

    async def ws(self, websocket: WebSocket) -> None:
        auth = websocket.headers.get("authorization", "")
        ok = auth == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if not ok or not self.accept_ws or websocket.query_params.get("app") != APP:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        self.sockets.append(websocket)
        self.connected.set()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self.sockets.remove(websocket)

    async def drop_sockets(self) -> None:
        self.connected.clear()
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1011)

    async def _finish_playback(self, pb: dict[str, Any], after: float) -> None:
        await asyncio.sleep(after)
        self.playbacks.pop(pb["id"], None)
        await self.emit({"type": "PlaybackFinished", "playback": {**pb, "state": "done"}})

    async def rest(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        q = dict(request.query_params)
        self.requests.append((request.method, path, q))
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"message": "Authentication required"}, 401)
        parts = path.strip("/").split("/")
        m = request.method

        def missing(what: str) -> JSONResponse:
            return JSONResponse({"message": f"{what} not found"}, 404)

        if parts == ["channels"] and m == "GET":
            return JSONResponse(list(self.channels.values()))
        if parts == ["bridges"] and m == "GET":
            return JSONResponse([{"id": b, "bridge_type": "mixing", "channels": c}
                                 for b, c in self.bridges.items()])
        if parts == ["channels", "externalMedia"] and m == "POST":
            cid = q["channelId"]
            self.channels[cid] = chan(cid, "", name="UnicastRTP/127.0.0.1:1-1")
            await self.emit({"type": "StasisStart", "channel": self.channels[cid]})
            return JSONResponse(self.channels[cid])
        if parts[0] == "channels" and len(parts) >= 2:
            cid = parts[1]
            if cid not in self.channels:
                return missing("Channel")
            rest = parts[2:]
            if not rest and m == "GET":
                return JSONResponse(self.channels[cid])
            if not rest and m == "DELETE":
                ch = self.channels.pop(cid)
                await self.emit({"type": "StasisEnd", "channel": ch})
                await self.emit({"type": "ChannelDestroyed", "channel": ch, "cause": 16})
                return Response(status_code=204)
            if rest == ["answer"]:
                self.channels[cid]["state"] = "Up"
                return Response(status_code=204)
            if rest[0] == "play":
                pb = {"id": rest[1], "media_uri": q["media"], "target_uri": f"channel:{cid}",
                      "state": "playing"}
                await self.emit({"type": "PlaybackStarted", "playback": pb})
                self.playbacks[rest[1]] = asyncio.create_task(
                    self._finish_playback(pb, self.play_s))
                return JSONResponse(pb, 201)
            if rest == ["snoop"]:
                sid = q["snoopId"]
                self.channels[sid] = chan(sid, "", name=f"Snoop/{cid}-1")
                await self.emit({"type": "StasisStart", "channel": self.channels[sid]})
                return JSONResponse(self.channels[sid])
            if rest == ["variable"] and m == "POST":
                self.variables[(cid, q["variable"])] = q.get("value", "")
                return Response(status_code=204)
            if rest == ["variable"] and m == "GET":
                key = (cid, q["variable"])
                if key not in self.variables:
                    return missing("Variable")
                return JSONResponse({"value": self.variables[key]})
            if rest == ["continue"]:
                ch = self.channels[cid]
                await self.emit({"type": "StasisEnd", "channel": ch})
                return Response(status_code=204)
        if parts[0] == "playbacks" and m == "DELETE":
            task = self.playbacks.pop(parts[1], None)
            if task is None:
                return missing("Playback")
            task.cancel()
            await self.emit({"type": "PlaybackFinished", "playback": {
                "id": parts[1], "state": "done", "target_uri": ""}})
            return Response(status_code=204)
        if parts[0] == "playbacks" and m == "GET":
            return (JSONResponse({"id": parts[1], "state": "playing"})
                    if parts[1] in self.playbacks else missing("Playback"))
        if parts[0] == "bridges" and len(parts) >= 2:
            bid = parts[1]
            if m == "POST" and len(parts) == 2:
                self.bridges[bid] = []
                return JSONResponse({"id": bid, "bridge_type": "mixing", "channels": []})
            if bid not in self.bridges:
                return missing("Bridge")
            if parts[2:] == ["addChannel"]:
                for c in q["channel"].split(","):
                    if c not in self.channels:
                        return JSONResponse({"message": "Channel not in Stasis"}, 422)
                    self.bridges[bid].append(c)
                return Response(status_code=204)
            if m == "DELETE":
                del self.bridges[bid]
                return Response(status_code=204)
        if parts[0] == "applications":
            return JSONResponse({"name": APP})
        if parts == ["conflict"]:
            return JSONResponse({"message": "wrong state"}, 409)
        return missing("Resource")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server_fake = FakeAri()
    config = uvicorn.Config(server_fake.app, host="127.0.0.1", port=0, log_level="warning",
                            ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    server_fake.base_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield server_fake
    server.should_exit = True
    await asyncio.wait_for(task, 5)


def make_client(fake: FakeAri, **kw: Any) -> AriClient:
    return AriClient(fake.base_url, username=USER, password=PASSWORD, app=APP,  # type: ignore[attr-defined]
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
    wrong = AriClient(fake.base_url, username=USER, password="wrong", app=APP)  # type: ignore[attr-defined]
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
async def one_call(fake: FakeAri, cid: str = "c1") -> AsyncIterator[AriCallChannel]:
    client = make_client(fake)
    async with running(client, fake):
        await fake.start_call(cid)
        start, sub = await asyncio.wait_for(client.next_call(), 2)
        ch = AriCallChannel(client, sub, start.channel, session_id="sess1", recognizer=None,
                            prompts=Sounds(), settings=AriChannelSettings(inter_digit_s=0.3))
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
        assert v == {"__IVR_SESSION": "sess1", "__IVR_INTENT": "invoice", "__IVR_SCENARIO": "S4",
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
    assert fake.variables[("crash", "IVR_QUEUE")] == "ivr-general"
    assert ("POST", "/channels/crash/continue") in [(m, x) for m, x, _ in fake.requests]


async def test_stasis_app_serves_http_client_injection(fake: FakeAri) -> None:
    """An injected httpx client is used for REST (base_url/transport injection)."""
    http = httpx.AsyncClient(base_url=fake.base_url + "/ari",  # type: ignore[attr-defined]
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
