"""In-house ARI client: REST over httpx, events over a self-healing websocket.

Why in-house: ``ari`` 0.1.3 (ari-py) does not import on Python 3, and asyncari,
aioari and ari-client do not reconnect their event websocket (ari-client spins
in a tight error loop). Here ``async for ws in websockets.connect(...)`` gives
reconnect with backoff, and after every reconnect the client resyncs: events
sent while the socket was down are lost, so channels, bridges and playbacks that
vanished in the gap are reported to their subscribers as synthetic events.

The reader only parses and dispatches into per-subscriber queues; it never
awaits a handler. Asterisk closes a websocket whose writes block for ~100 ms,
so a slow call (ASR, DB) must not be able to stall it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping, Sequence
from typing import Any, Literal

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from ivr.domain.ports import PortError
from ivr.queues import get_within, put_latest
from ivr.telephony.ari.events import (
    AriEvent,
    BridgeDestroyed,
    BridgeInfo,
    ChannelDestroyed,
    ChannelInfo,
    EventParseError,
    PlaybackFinished,
    PlaybackInfo,
    StasisStart,
    parse_event,
)

log = logging.getLogger(__name__)

ResourceKind = Literal["channel", "bridge", "playback"]

# Reconnect quickly: while the socket is down every new call fails over to the
# dialplan's fallback queue, so waiting the websockets default (up to 90 s) costs calls.
DEFAULT_RECONNECT_DELAYS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0)


def _retryable(exc: Exception) -> Exception | None:
    """Keep retrying through refusals too: websockets gives up on any 4xx, but
    during an Asterisk restart or a config reload ARI answers 403/404/503 for a
    moment, and a reader that stopped would strand every later call."""
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        status = exc.response.status_code
        level = logging.ERROR if status in (401, 403) else logging.WARNING
        log.log(level, "ARI websocket refused (HTTP %d); retrying", status)
        return None
    if isinstance(exc, (OSError, TimeoutError, websockets.exceptions.WebSocketException)):
        return None
    return exc


class AriError(PortError):
    """An ARI request failed; ``status`` is the HTTP status (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class AriNotFound(AriError):
    """404: the channel/bridge/playback is gone (usually the caller hung up)."""


class AriConflict(AriError):
    """409/412/422: the resource is in the wrong state for the request."""


class Subscription:
    """A queue of the events about a set of resources (one per call).

    The reader puts events without awaiting; when the queue is full the oldest
    event is dropped (counted in ``dropped``) so a stuck consumer cannot grow
    memory without bound or stall the reader.
    """

    def __init__(self, client: AriClient, maxsize: int) -> None:
        self._client = client
        self.queue: asyncio.Queue[AriEvent] = asyncio.Queue(maxsize=maxsize)
        self.ids: dict[str, tuple[ResourceKind, float]] = {}
        self.dropped = 0
        self.closed = False

    def add(self, resource_id: str, kind: ResourceKind = "channel") -> None:
        """Route events about ``resource_id`` here (register before creating it)."""
        self.ids[resource_id] = (kind, time.monotonic())
        self._client._routes[resource_id] = self

    def discard(self, resource_id: str) -> None:
        self.ids.pop(resource_id, None)
        if self._client._routes.get(resource_id) is self:
            del self._client._routes[resource_id]

    def put(self, event: AriEvent) -> None:
        if self.closed:
            return
        if put_latest(self.queue, event):
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("ari subscription lagging, dropped %d events", self.dropped)

    async def get(self, within_s: float | None = None) -> AriEvent | None:
        """Next event, or None after ``within_s`` seconds."""
        return await get_within(self.queue, within_s)

    def close(self) -> None:
        for rid in list(self.ids):
            self.discard(rid)
        self.closed = True

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AriClient:
    """REST helpers and the event reader for one Stasis application.

    ``http`` may be injected (tests, custom TLS); otherwise one is built from
    ``base_url``. Run :meth:`run` as a task for events; REST works without it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        app: str,
        http: httpx.AsyncClient | None = None,
        request_timeout_s: float = 5.0,
        reconnect_delays: Sequence[float] = DEFAULT_RECONNECT_DELAYS,
        queue_size: int = 1000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._auth = (username, password)
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            base_url=self.base_url + "/ari", auth=self._auth, timeout=request_timeout_s
        )
        self._reconnect_delays = tuple(reconnect_delays) or (1.0,)
        self._queue_size = queue_size
        self._routes: dict[str, Subscription] = {}
        self._new_calls: asyncio.Queue[tuple[StasisStart, Subscription]] = asyncio.Queue(
            maxsize=queue_size
        )
        self._ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.disconnected_at: float | None = None
        self.resyncs = 0

    # ---------------------------------------------------------------- REST
    async def _request(
        self, method: str, path: str, params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Any:
        # httpx drops None-valued params only for some versions: do it ourselves.
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = await self._http.request(method, path, params=clean, json=json_body)
        except httpx.TransportError as exc:
            raise AriError(f"ARI {method} {path}: {exc.__class__.__name__}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                msg = str(resp.json().get("message", resp.text))
            except (ValueError, AttributeError):
                msg = resp.text
            text = f"ARI {method} {path} -> {resp.status_code}: {msg}"
            if resp.status_code == 404:
                raise AriNotFound(text, 404)
            if resp.status_code in (409, 412, 422):
                raise AriConflict(text, resp.status_code)
            raise AriError(text, resp.status_code)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    async def answer(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> bool:
        """Hang a channel up; False if it was already gone."""
        try:
            await self._request("DELETE", f"/channels/{channel_id}", {"reason": reason})
        except AriNotFound:
            return False
        return True

    async def play(
        self, channel_id: str, media: str | Sequence[str], playback_id: str
    ) -> PlaybackInfo:
        uris = [media] if isinstance(media, str) else list(media)
        data = await self._request(
            # Asterisk splits a multi-valued parameter on commas; repeated keys
            # would overwrite each other.
            "POST", f"/channels/{channel_id}/play/{playback_id}", {"media": ",".join(uris)}
        )
        return PlaybackInfo.from_json(data)

    async def stop_playback(self, playback_id: str) -> bool:
        """Stop a playback; False if it had already finished."""
        try:
            await self._request("DELETE", f"/playbacks/{playback_id}")
        except AriNotFound:
            return False
        return True

    async def get_playback(self, playback_id: str) -> PlaybackInfo | None:
        try:
            return PlaybackInfo.from_json(await self._request("GET", f"/playbacks/{playback_id}"))
        except AriNotFound:
            return None

    async def snoop(
        self, channel_id: str, *, snoop_id: str, spy: str = "in", whisper: str = "none"
    ) -> ChannelInfo:
        data = await self._request(
            "POST", f"/channels/{channel_id}/snoop",
            {"spy": spy, "whisper": whisper, "app": self.app, "snoopId": snoop_id},
        )
        return ChannelInfo.from_json(data)

    async def external_media(
        self, *, channel_id: str, external_host: str, format: str = "slin16",
        encapsulation: str = "rtp", transport: str = "udp",
    ) -> ChannelInfo:
        data = await self._request(
            "POST", "/channels/externalMedia",
            {"app": self.app, "channelId": channel_id, "external_host": external_host,
             "format": format, "encapsulation": encapsulation, "transport": transport},
        )
        return ChannelInfo.from_json(data)

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing") -> BridgeInfo:
        data = await self._request(
            "POST", f"/bridges/{bridge_id}", {"type": bridge_type}
        )
        return BridgeInfo.from_json(data)

    async def add_to_bridge(self, bridge_id: str, channel_ids: Iterable[str]) -> None:
        await self._request(
            "POST", f"/bridges/{bridge_id}/addChannel", {"channel": ",".join(channel_ids)}
        )

    async def destroy_bridge(self, bridge_id: str) -> bool:
        try:
            await self._request("DELETE", f"/bridges/{bridge_id}")
        except AriNotFound:
            return False
        return True

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self._request(
            "POST", f"/channels/{channel_id}/variable", {"variable": name, "value": value}
        )

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """A channel variable or dialplan function value; None when unset."""
        try:
            data = await self._request(
                "GET", f"/channels/{channel_id}/variable", {"variable": name}
            )
        except AriNotFound:
            return None
        return None if not isinstance(data, Mapping) else str(data.get("value", ""))

    async def continue_in_dialplan(
        self, channel_id: str, *, context: str, extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        await self._request(
            "POST", f"/channels/{channel_id}/continue",
            {"context": context, "extension": extension, "priority": priority},
        )

    async def originate(
        self, channel_id: str, endpoint: str, *, app_args: str = "", caller_id: str = "",
        timeout_s: int = 30, variables: Mapping[str, str] | None = None,
    ) -> ChannelInfo:
        """Dial ``endpoint`` into this Stasis app with our own channel id (subscribe to it
        first: its StasisStart, on answer, then reaches the subscriber, not new calls).
        A channel id still in use is refused by Asterisk (409), never dialled twice."""
        data = await self._request(
            "POST", f"/channels/{channel_id}",
            {"endpoint": endpoint, "app": self.app, "appArgs": app_args or None,
             "callerId": caller_id or None, "timeout": timeout_s},
            json_body={"variables": dict(variables or {})},
        )
        return ChannelInfo.from_json(data)

    async def channels(self) -> list[ChannelInfo]:
        data = await self._request("GET", "/channels")
        return [ChannelInfo.from_json(c) for c in data or ()]

    async def get_channel(self, channel_id: str) -> ChannelInfo | None:
        try:
            return ChannelInfo.from_json(await self._request("GET", f"/channels/{channel_id}"))
        except AriNotFound:
            return None

    async def bridges(self) -> list[BridgeInfo]:
        data = await self._request("GET", "/bridges")
        return [BridgeInfo.from_json(b) for b in data or ()]

    async def subscribe_channel(self, channel_id: str) -> None:
        """Keep receiving a channel's events after it leaves Stasis (hand-off)."""
        await self._request(
            "POST", f"/applications/{self.app}/subscription",
            {"eventSource": f"channel:{channel_id}"},
        )

    async def record(self, channel_id: str, name: str, *, max_s: float, silence_s: float,
                     terminate_on: str = "#") -> None:
        """Record the channel to Asterisk's recording dir as ``<name>.wav`` (after a beep)."""
        await self._request("POST", f"/channels/{channel_id}/record", {
            "name": name, "format": "wav", "maxDurationSeconds": max(1, int(max_s)),
            "maxSilenceSeconds": max(1, int(silence_s)), "ifExists": "overwrite",
            "beep": "true", "terminateOn": terminate_on})

    async def recording_state(self, name: str) -> str | None:
        """A live recording's state (queued, recording, done ...); None once it is stored."""
        try:
            data = await self._request("GET", f"/recordings/live/{name}")
        except AriNotFound:
            return None
        return str(data.get("state", "")) if isinstance(data, dict) else None

    # -------------------------------------------------------------- events
    def subscribe(self, *resource_ids: str, kind: ResourceKind = "channel") -> Subscription:
        """A new per-call event queue, routed for ``resource_ids``."""
        sub = Subscription(self, self._queue_size)
        for rid in resource_ids:
            sub.add(rid, kind)
        return sub

    def claims(self, channel_id: str) -> bool:
        """True when a call of this client's (or its queued StasisStart) routes the channel."""
        return channel_id in self._routes

    async def next_call(self) -> tuple[StasisStart, Subscription]:
        """The next StasisStart of a channel nobody had claimed (a new call).

        The subscription for it is created by the reader at dispatch time, so a
        hang-up or DTMF right behind the StasisStart cannot slip past the call.
        """
        return await self._new_calls.get()

    def dispatch(self, event: AriEvent) -> None:
        """Hand an event to the subscriptions of the resources it concerns."""
        delivered: set[int] = set()
        log.debug("ARI event %s %s%s", event.type, event.resource_ids(),
                  " (synthetic)" if event.synthetic else "")
        for rid in event.resource_ids():
            sub = self._routes.get(rid)
            if sub is not None and id(sub) not in delivered:
                delivered.add(id(sub))
                sub.put(event)
        if not delivered and isinstance(event, StasisStart) and event.application == self.app:
            if self._new_calls.full():
                log.error("new-call queue full, dropping StasisStart %s", event.channel.id)
                return
            self._new_calls.put_nowait((event, self.subscribe(event.channel.id)))

    def _dispatch_message(self, message: str | bytes) -> None:
        try:
            event = parse_event(json.loads(message))
        except (ValueError, EventParseError) as exc:
            log.warning("ignoring undecodable ARI message: %s", exc)
            return
        self.dispatch(event)

    def _ws_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        ws_scheme = "wss" if scheme == "https" else "ws"
        return f"{ws_scheme}://{rest}/ari/events?app={self.app}&subscribeAll=false"

    def _delays(self) -> Generator[float, None, None]:
        yield from self._reconnect_delays
        while True:
            yield self._reconnect_delays[-1]

    async def run(self, on_connect: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Read events forever, reconnecting with backoff; cancel to stop."""
        token = base64.b64encode(f"{self._auth[0]}:{self._auth[1]}".encode()).decode()
        connector = ws_connect(
            self._ws_url(),
            additional_headers={"Authorization": f"Basic {token}"},
            reconnect_delays=self._delays,
            process_exception=_retryable,
            open_timeout=5,
            ping_interval=10,
            ping_timeout=10,
            max_size=2**22,
        )
        async with asyncio.TaskGroup() as tg:
            async for ws in connector:
                self._ws = ws
                self.connects += 1
                self.connected.set()
                log.info("ARI events connected (%d)", self.connects)
                if self.connects > 1:
                    # Resync on the side: the reader must keep draining the socket.
                    tg.create_task(self._resync(self.disconnected_at or time.monotonic()))
                if on_connect is not None:
                    tg.create_task(on_connect())
                try:
                    async for message in ws:
                        self._dispatch_message(message)
                except websockets.ConnectionClosed as exc:
                    log.warning("ARI websocket closed: %s", exc)
                finally:
                    self.connected.clear()
                    self.disconnected_at = time.monotonic()
                    self._ws = None

    async def close_events(self) -> None:
        """Drop the current websocket (the reader reconnects): for tests and failover."""
        if self._ws is not None:
            await self._ws.close()

    async def _resync(self, since: float) -> None:
        """Report resources that vanished while the websocket was down."""
        # Only resources registered before the gap: one registered since may be
        # in the middle of being created and legitimately absent from the lists.
        watched: dict[str, ResourceKind] = {}
        for rid, sub in list(self._routes.items()):
            kind, added = sub.ids.get(rid, ("channel", 0.0))
            if added <= since:
                watched[rid] = kind
        try:
            live_channels = {c.id for c in await self.channels()}
            live_bridges = {b.id for b in await self.bridges()}
            for rid, kind in watched.items():
                target = self._routes.get(rid)
                if target is None:
                    continue
                if kind == "channel" and rid not in live_channels:
                    target.put(ChannelDestroyed(
                        type="ChannelDestroyed", application=self.app, synthetic=True,
                        channel=ChannelInfo(id=rid), cause_txt="gone during ARI reconnect",
                    ))
                elif kind == "bridge" and rid not in live_bridges:
                    target.put(BridgeDestroyed(
                        type="BridgeDestroyed", application=self.app, synthetic=True,
                        bridge=BridgeInfo(id=rid),
                    ))
                elif kind == "playback" and await self.get_playback(rid) is None:
                    target.put(PlaybackFinished(
                        type="PlaybackFinished", application=self.app, synthetic=True,
                        playback=PlaybackInfo(id=rid, state="done"),
                    ))
            self.resyncs += 1
        except AriError as exc:
            # The next reconnect resyncs again; calls keep their own timeouts meanwhile.
            log.warning("ARI resync failed: %s", exc)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
