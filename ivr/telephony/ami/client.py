"""In-house asyncio AMI client: login, actions, list actions, events, self-healing.

Why in-house: panoramisk 1.4 (the only maintained-looking asyncio AMI library,
last release 2021) reconnects on a fixed 2 s timer with no backoff, reports a
refused login nowhere, runs its ``on_login`` hook through ``call_soon`` (so an
``async`` resync hook is never awaited), re-sends unanswered actions after a
reconnect (a QueuePause could be applied twice), never checks that its pings are
answered, and calls event handlers inline in ``data_received`` (a slow sync
handler stalls the reader; async ones are spawned as unordered tasks).

Here one reader task per connection parses each message once and hands typed
events to per-consumer bounded queues (oldest dropped and counted), so a slow
consumer never blocks the reader or the other consumers. Actions are matched to
their answers by ActionID; list actions (``QueueStatus``) complete on the
``...Complete`` event. After every login the resync hook runs on the side (it
needs the reader to get its answers) and ``stale_since`` clears once it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ivr.domain.ports import PortError
from ivr.queues import get_within, put_latest
from ivr.telephony.ami.events import (
    AmiEvent,
    ListComplete,
    QueueEntry,
    QueueMember,
    QueueParams,
    parse_event,
)
from ivr.telephony.ami.wire import (
    BANNER_PREFIX,
    END_OF_MESSAGE,
    AmiMessage,
    Fields,
    FieldValue,
    encode_action,
    parse_message,
)

log = logging.getLogger(__name__)

ResyncHook = Callable[["AmiClient"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential reconnect delays with a little jitter.

    Jitter keeps several nodes from reconnecting in lockstep after an Asterisk
    restart; the cap keeps the state from staying stale long once AMI is back.
    """

    initial_s: float = 0.2
    factor: float = 2.0
    cap_s: float = 10.0
    jitter: float = 0.1

    def delay(self, attempt: int, rand: float = 0.0) -> float:
        """Delay before retry number ``attempt`` (0-based); ``rand`` in [0, 1)."""
        base = min(self.cap_s, self.initial_s * self.factor ** min(attempt, 64))
        return base * (1.0 + self.jitter * rand)


class AmiError(PortError):
    """AMI failed (connection, protocol or a refused action)."""


class AmiAuthError(AmiError):
    """Asterisk refused the login (wrong user/secret, or host not permitted)."""


class AmiNotConnected(AmiError):
    """No logged-in AMI connection right now, or it dropped before the answer."""


class AmiTimeout(AmiError):
    """No answer to an action in time."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``."""

    def __init__(self, message: str, response: AmiResponse) -> None:
        super().__init__(message)
        self.response = response


@dataclass(frozen=True, slots=True)
class AmiResponse:
    """The ``Response:`` message answering one action."""

    action: str
    action_id: str
    success: bool
    message: str = ""
    fields: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class AmiListResult:
    """A list action's response and the events it streamed before ``...Complete``."""

    response: AmiResponse
    events: tuple[AmiEvent, ...]


@dataclass(frozen=True, slots=True)
class QueueStatusResult:
    """QueueStatus answer, split by kind."""

    params: tuple[QueueParams, ...]
    members: tuple[QueueMember, ...]
    entries: tuple[QueueEntry, ...]


class _Pending:
    __slots__ = ("action", "events", "future", "is_list", "response")

    def __init__(self, action: str, is_list: bool, future: asyncio.Future[None]) -> None:
        self.action, self.is_list, self.future = action, is_list, future
        self.response: AmiResponse | None = None
        self.events: list[AmiEvent] = []

    def finish(self, error: Exception | None = None) -> None:
        if not self.future.done():
            if error is None:
                self.future.set_result(None)
            else:
                self.future.set_exception(error)


class AmiSubscription:
    """A bounded queue of events for one consumer (``async for`` over it).

    When full, the oldest event is dropped and counted in ``dropped``; a state
    consumer that sees it grow should call :meth:`AmiClient.request_resync`.
    """

    def __init__(self, client: AmiClient, maxsize: int,
                 kinds: tuple[type[AmiEvent], ...] | None) -> None:
        self._client = client
        self._kinds = kinds
        self.queue: asyncio.Queue[AmiEvent] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def put(self, event: AmiEvent) -> None:
        if self._kinds is not None and not isinstance(event, self._kinds):
            return
        if put_latest(self.queue, event):
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("AMI consumer lagging, dropped %d events", self.dropped)

    async def get(self, within_s: float | None = None) -> AmiEvent | None:
        """Next event, or None after ``within_s`` seconds."""
        return await get_within(self.queue, within_s)

    def __aiter__(self) -> AmiSubscription:
        return self

    async def __anext__(self) -> AmiEvent:
        return await self.queue.get()

    def close(self) -> None:
        self._client._subs = tuple(s for s in self._client._subs if s is not self)

    def __enter__(self) -> AmiSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AmiClient:
    """One AMI connection kept alive by :meth:`run`; actions work while it is logged in.

    ``events`` is the Login ``Events`` mask: ``"on"`` for everything, or
    ``"agent,system"`` for just app_queue's events, which is all CentreState needs.
    """

    def __init__(
        self, host: str, port: int = 5038, *, username: str, secret: str, events: str = "on",
        backoff: Backoff | None = None, connect_timeout_s: float = 5.0,
        action_timeout_s: float = 10.0, ping_interval_s: float = 10.0,
        queue_size: int = 65536, retry_auth_failures: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._username, self._secret, self._events = username, secret, events
        self.backoff = backoff or Backoff()
        self._connect_timeout_s = connect_timeout_s
        self._action_timeout_s = action_timeout_s
        self._ping_interval_s = ping_interval_s
        self._queue_size = queue_size
        self._retry_auth = retry_auth_failures
        self._rng = rng or random.Random()
        self._prefix = secrets.token_hex(4)  # ActionIDs unique across nodes' logs
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._subs: tuple[AmiSubscription, ...] = ()
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._resync_wanted = asyncio.Event()
        self._logged_in_once = False
        self.connected = asyncio.Event()
        self.stale_since: float | None = time.monotonic()
        self.banner = ""
        self.connects = 0
        self.resyncs = 0
        self.last_error: Exception | None = None
        self.delays: deque[float] = deque(maxlen=32)  # recent backoff delays, newest last

    # ------------------------------------------------------------ lifecycle
    async def run(self, on_connect: ResyncHook | None = None) -> None:
        """Connect, log in and read forever, reconnecting with backoff; cancel to stop.

        Raises :class:`AmiAuthError` on a refused login only when built with
        ``retry_auth_failures=False``; otherwise it is logged, kept in
        ``last_error`` and retried (a secret fixed in manager.conf heals it).
        """
        attempt = 0
        while True:
            self._logged_in_once = False
            try:
                await self._session(on_connect)
            except AmiAuthError as exc:
                self.last_error = exc
                if not self._retry_auth:
                    raise
                log.error("%s; retrying", exc)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, AmiError) as exc:
                self.last_error = exc
                log.warning("AMI %s:%d: %s: %s", self.host, self.port,
                            type(exc).__name__, exc)
            if self._logged_in_once:
                attempt = 0
            delay = self.backoff.delay(attempt, self._rng.random())
            self.delays.append(delay)
            attempt += 1
            await asyncio.sleep(delay)

    async def _session(self, on_connect: ResyncHook | None) -> None:
        async with asyncio.timeout(self._connect_timeout_s):
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**20)
        tasks: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                banner = (await reader.readline()).decode("utf-8", "replace").strip()
            if not banner.startswith(BANNER_PREFIX):
                raise AmiError(f"not an AMI server (banner {banner!r})")
            self.banner, self._writer = banner, writer
            reader_task = asyncio.create_task(self._read_loop(reader), name="ami-reader")
            tasks.append(reader_task)
            await self._login()
            self._logged_in_once = True
            self.connects += 1
            self.last_error = None
            self.connected.set()
            log.info("AMI connected to %s:%d (%s, #%d)", self.host, self.port, banner,
                     self.connects)
            tasks.append(asyncio.create_task(self._keepalive(), name="ami-ping"))
            tasks.append(asyncio.create_task(self._resync_loop(on_connect), name="ami-resync"))
            await reader_task
        finally:
            self.connected.clear()
            self._writer = None
            if self.stale_since is None:
                self.stale_since = time.monotonic()
            # Close before any await: a cancel landing in the awaits below must not
            # leave the socket open.
            writer.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _login(self) -> None:
        pending = await self._request(
            "Login", {"Username": self._username, "Secret": self._secret,
                      "Events": self._events},
            is_list=False, timeout_s=self._connect_timeout_s, logged_in=False)
        resp = pending.response
        if resp is None or not resp.success:
            raise AmiAuthError(
                f"AMI login refused for user {self._username!r} at {self.host}:{self.port}: "
                f"{(resp and resp.message) or 'no reason given'}")

    async def _keepalive(self) -> None:
        """Ping; a half-open TCP connection (Asterisk host gone) shows up only this way."""
        while True:
            await asyncio.sleep(self._ping_interval_s)
            try:
                await self.action("Ping", timeout_s=self._ping_interval_s)
            except AmiTimeout:
                log.warning("AMI ping unanswered; reconnecting")
                await self.close_connection()
                return
            except AmiNotConnected:
                return

    async def _resync_loop(self, on_connect: ResyncHook | None) -> None:
        """Run the hook now and whenever asked, retrying with backoff until it succeeds."""
        while True:
            attempt = 0
            while True:
                try:
                    if on_connect is not None:
                        await on_connect(self)
                    break
                except Exception as exc:
                    # A half-built state is worse than a stale one: keep trying.
                    log.warning("AMI resync failed (%s: %s); retrying", type(exc).__name__, exc)
                    await asyncio.sleep(self.backoff.delay(attempt, self._rng.random()))
                    attempt += 1
            self.resyncs += 1
            self.stale_since = None
            self._resync_wanted.clear()
            await self._resync_wanted.wait()

    def request_resync(self) -> None:
        """Run the resync hook again (e.g. after a consumer dropped events)."""
        if self.stale_since is None:
            self.stale_since = time.monotonic()
        self._resync_wanted.set()

    async def close_connection(self) -> None:
        """Drop the current connection (``run`` reconnects): for tests and failover."""
        if self._writer is not None:
            self._writer.close()

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait for a login; re-raises a refused login, else AmiNotConnected on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.connected.wait()
        except TimeoutError:
            if isinstance(self.last_error, AmiAuthError):
                raise self.last_error from None
            raise AmiNotConnected(
                f"AMI {self.host}:{self.port} not connected after {timeout_s}s"
                f" (last error: {self.last_error})") from None

    # ------------------------------------------------------------ reading
    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                try:
                    block = await reader.readuntil(END_OF_MESSAGE)
                except asyncio.IncompleteReadError:
                    log.warning("AMI connection to %s:%d closed", self.host, self.port)
                    return
                except asyncio.LimitOverrunError as exc:
                    raise AmiError("AMI message over 1 MiB") from exc
                self._dispatch(parse_message(block))
        finally:
            # Fail waiters at once (a login the server hung up on must not sit out its timeout).
            for pending in list(self._pending.values()):
                pending.finish(AmiNotConnected("AMI connection lost before the answer"))

    def _dispatch(self, msg: AmiMessage) -> None:
        if msg.response:
            pending = self._pending.get(msg.action_id)
            if pending is None:
                return  # answer to an action that timed out
            resp = AmiResponse(
                action=pending.action, action_id=msg.action_id,
                success=msg.response in ("Success", "Follows", "Goodbye"),
                message=msg.get("Message"), fields=MappingProxyType(dict(msg.fields)))
            pending.response = resp
            if not pending.is_list or not resp.success:
                pending.finish()
            return
        if not msg.event:
            return
        event = parse_event(msg)
        if msg.action_id:
            pending = self._pending.get(msg.action_id)
            if pending is not None and pending.is_list:
                if isinstance(event, ListComplete):
                    pending.finish()
                else:
                    pending.events.append(event)
        # List replies go to consumers too, in wire order with live events, so a
        # state consumer can rebuild from them without racing the live stream.
        for sub in self._subs:
            sub.put(event)

    def subscribe(self, *kinds: type[AmiEvent], maxsize: int | None = None) -> AmiSubscription:
        """A new consumer queue, for all events or only the given event classes."""
        sub = AmiSubscription(self, maxsize or self._queue_size, kinds or None)
        self._subs = (*self._subs, sub)
        return sub

    # ------------------------------------------------------------ actions
    async def _request(
        self, name: str, fields: Fields, *, is_list: bool, timeout_s: float | None,
        logged_in: bool = True,
    ) -> _Pending:
        writer = self._writer
        if writer is None or (logged_in and not self.connected.is_set()):
            raise AmiNotConnected(f"AMI not connected (action {name})")
        action_id = f"{self._prefix}-{next(self._ids)}"
        data = encode_action(name, action_id, fields)
        pending = _Pending(name, is_list, asyncio.get_running_loop().create_future())
        self._pending[action_id] = pending
        limit = self._action_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                async with self._write_lock:
                    writer.write(data)
                    await writer.drain()
                await pending.future
        except TimeoutError:
            raise AmiTimeout(f"AMI {name}: no answer within {limit}s") from None
        except (ConnectionError, OSError) as exc:
            raise AmiNotConnected(f"AMI {name}: {exc}") from exc
        finally:
            del self._pending[action_id]
        if pending.response is None:
            # Events streamed with our ActionID but no Response line: treat as accepted.
            pending.response = AmiResponse(name, action_id, True)
        return pending

    async def action(
        self, name: str, fields: Fields = (), *, timeout_s: float | None = None,
        check: bool = True,
    ) -> AmiResponse:
        """Send an action and await its response; ``Response: Error`` raises if ``check``."""
        resp = _response(await self._request(name, fields, is_list=False, timeout_s=timeout_s))
        if check and not resp.success:
            raise AmiActionError(f"AMI {name} failed: {resp.message}", resp)
        return resp

    async def list_action(
        self, name: str, fields: Fields = (), *, timeout_s: float | None = None,
    ) -> AmiListResult:
        """Send a list action and collect its events up to the ``...Complete`` event."""
        pending = await self._request(name, fields, is_list=True, timeout_s=timeout_s)
        resp = _response(pending)
        if not resp.success:
            raise AmiActionError(f"AMI {name} failed: {resp.message}", resp)
        return AmiListResult(response=resp, events=tuple(pending.events))

    # ------------------------------------------------------------ app_queue
    async def queue_add(
        self, queue: str, interface: str, *, penalty: int = 0, paused: bool = False,
        member_name: str | None = None, state_interface: str | None = None,
    ) -> AmiResponse:
        """QueueAdd: a dynamic member (penalty from proficiency, see ivr.domain.centre)."""
        return await self.action("QueueAdd", {
            "Queue": queue, "Interface": interface, "Penalty": penalty, "Paused": paused,
            "MemberName": member_name, "StateInterface": state_interface})

    async def queue_remove(self, queue: str, interface: str) -> AmiResponse:
        return await self.action("QueueRemove", {"Queue": queue, "Interface": interface})

    async def queue_pause(
        self, interface: str, paused: bool, *, queue: str | None = None,
        reason: str | None = None,
    ) -> AmiResponse:
        """QueuePause; without ``queue`` it applies to every queue of the member."""
        return await self.action("QueuePause", {
            "Interface": interface, "Paused": paused, "Queue": queue, "Reason": reason})

    async def queue_penalty(
        self, interface: str, penalty: int, *, queue: str | None = None,
    ) -> AmiResponse:
        return await self.action("QueuePenalty", {
            "Interface": interface, "Penalty": penalty, "Queue": queue})

    async def queue_change_priority(self, queue: str, channel: str,
                                    priority: int) -> AmiResponse:
        """QueueChangePriorityCaller with Immediate: the caller moves up at once."""
        fields: dict[str, FieldValue] = {
            "Queue": queue, "Caller": channel, "Priority": priority, "Immediate": True}
        return await self.action("QueueChangePriorityCaller", fields)

    async def queue_status(
        self, queue: str | None = None, member: str | None = None,
        *, timeout_s: float | None = None,
    ) -> QueueStatusResult:
        """QueueStatus: every queue's params, members and waiting callers."""
        result = await self.list_action(
            "QueueStatus", {"Queue": queue, "Member": member}, timeout_s=timeout_s)
        return QueueStatusResult(
            params=tuple(e for e in result.events if isinstance(e, QueueParams)),
            members=tuple(e for e in result.events if isinstance(e, QueueMember)),
            entries=tuple(e for e in result.events if isinstance(e, QueueEntry)),
        )


def _response(pending: _Pending) -> AmiResponse:
    assert pending.response is not None  # _request always sets one
    return pending.response
