"""A local ARI server (HTTP + websocket) for testing ARI clients without Asterisk.

:class:`FakeAri` speaks ARI's wire format: the REST paths, query parameters and
JSON bodies of the resources Kanaal uses (channels, snoop, externalMedia,
playbacks, bridges, variables, applications) and event JSON on ``/ari/events``.
It is not Asterisk: real behaviour is covered by the e2e tests through the rig.

    fake = FakeAri()
    async with fake.serve() as base_url:
        client = AriClient(base_url, username="ivr", password="secret", app="ivr")
        await fake.start_call("c1")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

DEFAULT_USER, DEFAULT_PASSWORD, DEFAULT_APP = "ivr", "secret", "ivr"


def channel_json(cid: str, number: str = "0612345678",
                 name: str = "PJSIP/caller-1") -> dict[str, Any]:
    """An ARI Channel object as Asterisk sends it (state Ring, in ``from-callers``)."""
    return {"id": cid, "name": name, "state": "Ring", "caller": {"number": number, "name": ""},
            "dialplan": {"context": "from-callers", "exten": "100", "priority": 1}}


class FakeAri:
    """Local ARI look-alike (REST + ``/ari/events`` websocket); records every REST request.

    Behaviour, just enough for protocol framing and call logic: playbacks finish
    after ``play_s`` unless stopped, snoop/externalMedia channels enter Stasis,
    continue/hangup end the channel, unknown resources are 404 with ARI's body.
    Drive calls with :meth:`start_call`, :meth:`emit` and :meth:`caller_hangs_up`;
    serve it with :meth:`serve`. Credentials and the Stasis app name are checked
    like Asterisk does (401 on REST, close 1008 on the websocket).
    """

    def __init__(self, *, username: str = DEFAULT_USER, password: str = DEFAULT_PASSWORD,
                 app: str = DEFAULT_APP, play_s: float = 0.3) -> None:
        self.username, self.password, self.app_name = username, password, app
        self.base_url = ""  # set by serve()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.channels: dict[str, dict[str, Any]] = {}
        self.bridges: dict[str, list[str]] = {}
        self.variables: dict[tuple[str, str], str] = {}
        self.playbacks: dict[str, asyncio.Task[None]] = {}
        self.sockets: list[WebSocket] = []
        self.connected = asyncio.Event()
        self.play_s = play_s
        self.accept_ws = True  # False: refuse websocket connections (Asterisk down)
        self.app = Starlette(routes=[
            WebSocketRoute("/ari/events", self.ws),
            Route("/ari/{path:path}", self.rest, methods=["GET", "POST", "DELETE"]),
        ])

    def _auth_ok(self, header: str | None) -> bool:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header == f"Basic {token}"

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on ``host:port`` (0: a free port) with uvicorn; yields (and sets) base_url."""
        # No websocket pings: a client paused in a test must not be dropped for it.
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning",
                                ws_ping_interval=None)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(5):
                while not server.started:
                    if task.done():
                        raise RuntimeError(f"fake ARI server did not start: {task.exception()}")
                    await asyncio.sleep(0.01)
            bound = server.servers[0].sockets[0].getsockname()[1]
            self.base_url = f"http://{host}:{bound}"
            yield self.base_url
        finally:
            server.should_exit = True
            for pending in self.playbacks.values():
                pending.cancel()
            async with asyncio.timeout(5):
                await asyncio.gather(task, *self.playbacks.values(), return_exceptions=True)
            self.playbacks.clear()

    async def emit(self, event: dict[str, Any]) -> None:
        """Send an ARI event (``application`` and ``timestamp`` filled in) to every socket."""
        event = {"application": self.app_name, "timestamp": "2026-01-01T00:00:00.000+0000", **event}
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.send_text(json.dumps(event))

    async def start_call(self, cid: str, number: str = "0612345678",
                         args: tuple[str, ...] = ()) -> None:
        """A caller's channel enters the Stasis app (``StasisStart``, with ``args``)."""
        self.channels[cid] = channel_json(cid, number)
        await self.emit({"type": "StasisStart", "channel": self.channels[cid],
                         "args": list(args)})

    async def caller_hangs_up(self, cid: str) -> None:
        """The caller hangs up: hangup request, StasisEnd, ChannelDestroyed."""
        ch = self.channels.pop(cid, channel_json(cid))
        await self.emit({"type": "ChannelHangupRequest", "channel": ch, "cause": 16})
        await self.emit({"type": "StasisEnd", "channel": ch})
        await self.emit({"type": "ChannelDestroyed", "channel": ch, "cause": 16})

    async def ws(self, websocket: WebSocket) -> None:
        """``/ari/events``: check credentials and app, then push events until closed."""
        ok = self._auth_ok(websocket.headers.get("authorization"))
        if not ok or not self.accept_ws or websocket.query_params.get("app") != self.app_name:
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
        """Close every event websocket (code 1011), as when Asterisk restarts."""
        self.connected.clear()
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1011)

    async def _finish_playback(self, pb: dict[str, Any], after: float) -> None:
        await asyncio.sleep(after)
        self.playbacks.pop(pb["id"], None)
        await self.emit({"type": "PlaybackFinished", "playback": {**pb, "state": "done"}})

    async def rest(self, request: Request) -> Response:
        """``/ari/...``: the REST resources the client uses, in ARI's wire format."""
        path = "/" + request.path_params["path"]
        q = dict(request.query_params)
        self.requests.append((request.method, path, q))
        if not self._auth_ok(request.headers.get("authorization")):
            return JSONResponse({"message": "Authentication required"}, 401)
        parts = path.strip("/").split("/")
        # Each resource family answers for its own paths; None: not one of its paths.
        for family in (self._channels_rest, self._playbacks_rest, self._bridges_rest,
                       self._other_rest):
            response = await family(request.method, parts, q)
            if response is not None:
                return response
        return _missing("Resource")

    async def _channels_rest(
        self, m: str, parts: list[str], q: dict[str, str]
    ) -> Response | None:
        if parts == ["channels"] and m == "GET":
            return JSONResponse(list(self.channels.values()))
        if parts == ["channels", "externalMedia"] and m == "POST":
            cid = q["channelId"]
            self.channels[cid] = channel_json(cid, "", name="UnicastRTP/127.0.0.1:1-1")
            await self.emit({"type": "StasisStart", "channel": self.channels[cid]})
            return JSONResponse(self.channels[cid])
        if parts[0] != "channels" or len(parts) < 2:
            return None
        cid = parts[1]
        if cid not in self.channels:
            return _missing("Channel")
        rest = parts[2:]
        if not rest:
            return await self._channel_itself(m, cid)
        if rest[0] == "play":
            return await self._play(cid, rest[1], q["media"])
        if rest == ["variable"]:
            return self._variable(m, cid, q)
        return await self._channel_action(cid, rest, q)

    async def _channel_itself(self, m: str, cid: str) -> Response | None:
        """``/channels/{id}``: GET the channel or DELETE (hang up) it."""
        if m == "GET":
            return JSONResponse(self.channels[cid])
        if m == "DELETE":
            ch = self.channels.pop(cid)
            await self.emit({"type": "StasisEnd", "channel": ch})
            await self.emit({"type": "ChannelDestroyed", "channel": ch, "cause": 16})
            return Response(status_code=204)
        return None

    async def _play(self, cid: str, pb_id: str, media: str) -> Response:
        pb = {"id": pb_id, "media_uri": media, "target_uri": f"channel:{cid}", "state": "playing"}
        await self.emit({"type": "PlaybackStarted", "playback": pb})
        self.playbacks[pb_id] = asyncio.create_task(self._finish_playback(pb, self.play_s))
        return JSONResponse(pb, 201)

    def _variable(self, m: str, cid: str, q: dict[str, str]) -> Response | None:
        if m == "POST":
            self.variables[(cid, q["variable"])] = q.get("value", "")
            return Response(status_code=204)
        if m == "GET":
            key = (cid, q["variable"])
            if key not in self.variables:
                return _missing("Variable")
            return JSONResponse({"value": self.variables[key]})
        return None

    async def _channel_action(
        self, cid: str, rest: list[str], q: dict[str, str]
    ) -> Response | None:
        """``answer``, ``snoop`` and ``continue`` on a channel (any method, like before)."""
        if rest == ["answer"]:
            self.channels[cid]["state"] = "Up"
            return Response(status_code=204)
        if rest == ["snoop"]:
            sid = q["snoopId"]
            self.channels[sid] = channel_json(sid, "", name=f"Snoop/{cid}-1")
            await self.emit({"type": "StasisStart", "channel": self.channels[sid]})
            return JSONResponse(self.channels[sid])
        if rest == ["continue"]:
            await self.emit({"type": "StasisEnd", "channel": self.channels[cid]})
            return Response(status_code=204)
        return None

    async def _playbacks_rest(
        self, m: str, parts: list[str], q: dict[str, str]
    ) -> Response | None:
        if parts[0] != "playbacks":
            return None
        if m == "DELETE":
            task = self.playbacks.pop(parts[1], None)
            if task is None:
                return _missing("Playback")
            task.cancel()
            await self.emit({"type": "PlaybackFinished", "playback": {
                "id": parts[1], "state": "done", "target_uri": ""}})
            return Response(status_code=204)
        if m == "GET":
            return (JSONResponse({"id": parts[1], "state": "playing"})
                    if parts[1] in self.playbacks else _missing("Playback"))
        return None

    async def _bridges_rest(
        self, m: str, parts: list[str], q: dict[str, str]
    ) -> Response | None:
        if parts == ["bridges"] and m == "GET":
            return JSONResponse([{"id": b, "bridge_type": "mixing", "channels": c}
                                 for b, c in self.bridges.items()])
        if parts[0] != "bridges" or len(parts) < 2:
            return None
        bid = parts[1]
        if m == "POST" and len(parts) == 2:
            self.bridges[bid] = []
            return JSONResponse({"id": bid, "bridge_type": "mixing", "channels": []})
        if bid not in self.bridges:
            return _missing("Bridge")
        if parts[2:] == ["addChannel"]:
            for c in q["channel"].split(","):
                if c not in self.channels:
                    return JSONResponse({"message": "Channel not in Stasis"}, 422)
                self.bridges[bid].append(c)
            return Response(status_code=204)
        if m == "DELETE":
            del self.bridges[bid]
            return Response(status_code=204)
        return None

    async def _other_rest(
        self, m: str, parts: list[str], q: dict[str, str]
    ) -> Response | None:
        if parts[0] == "applications":
            return JSONResponse({"name": self.app_name})
        if parts == ["conflict"]:  # not ARI: lets tests see how a 409 is mapped
            return JSONResponse({"message": "wrong state"}, 409)
        return None


def _missing(what: str) -> JSONResponse:
    """ARI's 404 body for an unknown resource."""
    return JSONResponse({"message": f"{what} not found"}, 404)
