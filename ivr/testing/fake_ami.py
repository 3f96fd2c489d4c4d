"""A local AMI server speaking Asterisk's wire format, with a small app_queue model.

    async with FakeAmiServer(username="kanaal", secret="s3cret") as ami:
        client = AmiClient("127.0.0.1", ami.port, username="kanaal", secret="s3cret")
        ...
        await ami.caller_join("billing", "1700000000.1", caller_id="+31201234567")
        await ami.drop_connections()      # the client must reconnect and resync

It answers Login, Ping, Logoff, QueueAdd/Remove/Pause/Penalty and QueueStatus the
way Asterisk 22 does (messages, ActionID echo, ``EventList`` framing, the
QueueMember* events the actions cause) and records every action it received.
Anything else gets ``Response: Error`` unless a handler is registered in
``handlers``. Real Asterisk behaviour is covered by the e2e rig.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ivr.domain.centre import DeviceState
from ivr.telephony.ami.wire import END_OF_MESSAGE, AmiMessage, Fields, encode_message, parse_message

Handler = Callable[["_Session", AmiMessage], Awaitable[None]]


@dataclass
class FakeMember:
    """A queue member as app_queue keeps it."""

    queue: str
    interface: str
    name: str
    state_interface: str = ""
    penalty: int = 0
    paused: bool = False
    reason: str = ""
    status: DeviceState = DeviceState.NOT_INUSE
    in_call: bool = False
    calls_taken: int = 0

    def fields(self, reply: bool = False) -> list[tuple[str, str | int | bool]]:
        # The QueueStatus reply names two fields differently from the events.
        return [
            ("Queue", self.queue), ("Name" if reply else "MemberName", self.name),
            ("Location" if reply else "Interface", self.interface),
            ("StateInterface", self.state_interface or self.interface),
            ("Membership", "dynamic"), ("Penalty", self.penalty),
            ("CallsTaken", self.calls_taken), ("LastCall", 0), ("LastPause", 0),
            ("LoginTime", int(time.time())), ("InCall", int(self.in_call)),
            ("Status", int(self.status)), ("Paused", int(self.paused)),
            ("PausedReason", self.reason), ("Wrapuptime", 0),
        ]


@dataclass
class FakeEntry:
    """A caller waiting in a queue."""

    queue: str
    uniqueid: str
    channel: str
    caller_id: str = ""
    priority: int = 0
    joined: float = field(default_factory=time.monotonic)
    variables: Mapping[str, str] = field(default_factory=dict)


class _Session:
    """One client connection."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.logged_in = False
        self.events = True

    async def send(self, first: tuple[str, str], action_id: str | None, fields: Fields) -> None:
        self.writer.write(encode_message(first, action_id, fields))
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def respond(self, msg: AmiMessage, ok: bool, message: str, fields: Fields = ()) -> None:
        head = [("Message", message)] if message else []
        items = fields.items() if isinstance(fields, Mapping) else fields
        await self.send(("Response", "Success" if ok else "Error"), msg.action_id,
                        [*head, *items])


class FakeAmiServer:
    """Asterisk's side of AMI over real TCP on 127.0.0.1."""

    def __init__(self, *, username: str = "kanaal", secret: str = "secret",
                 host: str = "127.0.0.1", port: int = 0, version: str = "9.0.0") -> None:
        self.username, self.secret = username, secret
        self.host, self.port, self.version = host, port, version
        self.queues: dict[str, dict[str, FakeMember]] = {}
        self.entries: dict[str, list[FakeEntry]] = {}
        self.actions: list[AmiMessage] = []
        self.handlers: dict[str, Handler] = {}
        self.silent: set[str] = set()  # action names never answered (client timeouts)
        self.astdb: dict[str, str] = {}  # AstDB: "family/key" -> value (DBPut/DBGetTree/DBDel)
        self.logins = 0
        self.failed_logins = 0
        self.connections = 0
        self._sessions: list[_Session] = []
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()

    async def start(self) -> FakeAmiServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self.drop_connections()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAmiServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ test helpers
    def add_queue(self, *names: str) -> None:
        for name in names:
            self.queues.setdefault(name, {})
            self.entries.setdefault(name, [])

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Until ``predicate()`` holds (re-checked after every login and action)."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def emit(self, event: str, fields: Fields = (), action_id: str | None = None) -> None:
        """Send an event to every logged-in session that asked for events."""
        for s in list(self._sessions):
            if s.logged_in and (s.events or action_id):
                await s.send(("Event", event), action_id, fields)

    async def drop_connections(self) -> None:
        """Close every client connection, as an Asterisk restart does."""
        for s in list(self._sessions):
            s.writer.close()
            with contextlib.suppress(ConnectionError):
                await s.writer.wait_closed()
        self._sessions.clear()

    async def caller_join(self, queue: str, uniqueid: str, *, caller_id: str = "",
                          priority: int = 0, variables: Mapping[str, str] | None = None) -> None:
        """A caller enters ``queue`` (behind callers of equal or higher priority)."""
        self.add_queue(queue)
        entry = FakeEntry(queue, uniqueid, f"PJSIP/caller-{uniqueid}", caller_id, priority,
                          variables=dict(variables or {}))
        line = self.entries[queue]
        pos = next((i for i, e in enumerate(line) if e.priority < priority), len(line))
        line.insert(pos, entry)
        await self.emit("QueueCallerJoin", [*self._caller_fields(entry), ("Position", pos + 1),
                                            ("Count", len(line))])

    async def caller_leave(self, queue: str, uniqueid: str, *, abandon: bool = False) -> None:
        line = self.entries.get(queue, [])
        entry = next((e for e in line if e.uniqueid == uniqueid), None)
        if entry is None:
            return
        pos = line.index(entry) + 1
        line.remove(entry)
        if abandon:
            await self.emit("QueueCallerAbandon", [
                *self._caller_fields(entry), ("Position", pos), ("OriginalPosition", pos),
                ("HoldTime", int(time.monotonic() - entry.joined))])
        await self.emit("QueueCallerLeave", [*self._caller_fields(entry), ("Count", len(line)),
                                             ("Position", pos)])

    async def member_status(self, interface: str, status: DeviceState,
                            in_call: bool | None = None) -> None:
        """The member's device changed: one QueueMemberStatus per queue, as app_queue does."""
        for members in self.queues.values():
            m = members.get(interface)
            if m is not None:
                m.status = status
                if in_call is not None:
                    m.in_call = in_call
                await self.emit("QueueMemberStatus", m.fields())

    @staticmethod
    def _caller_fields(e: FakeEntry) -> list[tuple[str, str | int | bool]]:
        return [("Channel", e.channel), ("ChannelState", 6), ("ChannelStateDesc", "Up"),
                ("CallerIDNum", e.caller_id), ("CallerIDName", ""), ("Language", "en"),
                ("Context", "queues"), ("Exten", e.queue), ("Priority", 1),
                ("Uniqueid", e.uniqueid), ("Linkedid", e.uniqueid), ("Queue", e.queue),
                *(("ChanVariable", f"{k}={v}") for k, v in e.variables.items())]

    # ------------------------------------------------------------ protocol
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._sessions.append(session)
        self.connections += 1
        try:
            writer.write(f"Asterisk Call Manager/{self.version}\r\n".encode())
            while not writer.is_closing():
                msg = parse_message(await reader.readuntil(END_OF_MESSAGE))
                self.actions.append(msg)
                await self._handle(session, msg)
                async with self._changed:
                    self._changed.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if session in self._sessions:
                self._sessions.remove(session)
            writer.close()

    async def _handle(self, s: _Session, msg: AmiMessage) -> None:
        name = msg.get("Action").lower()
        if name in {n.lower() for n in self.silent}:
            return
        if name == "login":
            await self._login(s, msg)
        elif not s.logged_in:
            await s.respond(msg, False, "Authentication Required")
        elif name == "ping":
            await s.respond(msg, True, "", [("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])
        elif name == "logoff":
            await s.send(("Response", "Goodbye"), msg.action_id, [("Message", "Thanks")])
            s.writer.close()
        elif name in self._ACTIONS:
            await self._ACTIONS[name](self, s, msg)
        elif msg.get("Action") in self.handlers:
            await self.handlers[msg.get("Action")](s, msg)
        else:
            await s.respond(msg, False, "Invalid/unknown command")

    async def _login(self, s: _Session, msg: AmiMessage) -> None:
        if msg.get("Username") != self.username or msg.get("Secret") != self.secret:
            self.failed_logins += 1
            await s.respond(msg, False, "Authentication failed")
            s.writer.close()  # Asterisk hangs up after a failed login
            return
        s.logged_in, s.events = True, msg.get("Events", "on").lower() != "off"
        self.logins += 1
        await s.respond(msg, True, "Authentication accepted")
        if s.events:
            await s.send(("Event", "FullyBooted"), None, [("Privilege", "system,all"),
                                                          ("Status", "Fully Booted")])

    async def _queue_add(self, s: _Session, msg: AmiMessage) -> None:
        queue, iface = msg.get("Queue"), msg.get("Interface")
        if queue not in self.queues:
            return await s.respond(msg, False, "Unable to add interface: No such queue")
        if iface in self.queues[queue]:
            return await s.respond(msg, False, "Unable to add interface: Already there")
        paused = msg.get("Paused", "false").lower() in ("1", "true", "yes")
        m = FakeMember(queue, iface, msg.get("MemberName") or iface, msg.get("StateInterface"),
                       int(msg.get("Penalty") or 0), paused)
        self.queues[queue][iface] = m
        await s.respond(msg, True, "Added interface to queue")
        await self.emit("QueueMemberAdded", m.fields())

    async def _queue_remove(self, s: _Session, msg: AmiMessage) -> None:
        queue, iface = msg.get("Queue"), msg.get("Interface")
        if queue not in self.queues:
            return await s.respond(msg, False, "Unable to remove interface: No such queue")
        m = self.queues[queue].pop(iface, None)
        if m is None:
            return await s.respond(msg, False, "Unable to remove interface: Not there")
        await s.respond(msg, True, "Removed interface from queue")
        await self.emit("QueueMemberRemoved", m.fields())

    def _members(self, iface: str, queue: str) -> list[FakeMember]:
        queues = [queue] if queue else list(self.queues)
        return [self.queues[q][iface] for q in queues if iface in self.queues.get(q, {})]

    async def _queue_pause(self, s: _Session, msg: AmiMessage) -> None:
        members = self._members(msg.get("Interface"), msg.get("Queue"))
        if not members:
            return await s.respond(msg, False, "Interface not found")
        paused = msg.get("Paused").lower() in ("1", "true", "yes")
        await s.respond(msg, True, f"Interface {'paused' if paused else 'unpaused'} successfully")
        for m in members:
            m.paused, m.reason = paused, msg.get("Reason") if paused else ""
            await self.emit("QueueMemberPause", [*m.fields(), ("Reason", msg.get("Reason"))])

    async def _queue_penalty(self, s: _Session, msg: AmiMessage) -> None:
        members = self._members(msg.get("Interface"), msg.get("Queue"))
        if not members:
            return await s.respond(msg, False, "Invalid interface, queuename or penalty")
        await s.respond(msg, True, "Interface penalty set successfully")
        for m in members:
            m.penalty = int(msg.get("Penalty") or 0)
            await self.emit("QueueMemberPenalty", m.fields())

    async def _queue_status(self, s: _Session, msg: AmiMessage) -> None:
        aid, only, member = msg.action_id, msg.get("Queue"), msg.get("Member")
        await s.respond(msg, True, "Queue status will follow", [("EventList", "start")])
        items = 0
        now = time.monotonic()
        for name, members in self.queues.items():
            if only and name != only:
                continue
            line = self.entries.get(name, [])
            await s.send(("Event", "QueueParams"), aid, [
                ("Queue", name), ("Max", 0), ("Strategy", "leastrecent"), ("Calls", len(line)),
                ("Holdtime", 0), ("TalkTime", 0), ("Completed", 0), ("Abandoned", 0),
                ("ServiceLevel", 60), ("ServicelevelPerf", "0.0"),
                ("ServicelevelPerf2", "0.0"), ("Weight", 0)])
            items += 1
            for m in members.values():
                if not member or m.interface == member:
                    await s.send(("Event", "QueueMember"), aid, m.fields(reply=True))
                    items += 1
            for pos, e in enumerate(line, 1):
                await s.send(("Event", "QueueEntry"), aid, [
                    ("Queue", name), ("Position", pos), ("Channel", e.channel),
                    ("Uniqueid", e.uniqueid), ("CallerIDNum", e.caller_id),
                    ("CallerIDName", ""), ("ConnectedLineNum", ""), ("ConnectedLineName", ""),
                    ("Wait", int(now - e.joined)), ("Priority", e.priority)])
                items += 1
        await s.send(("Event", "QueueStatusComplete"), aid,
                     [("EventList", "Complete"), ("ListItems", items)])

    async def _db_put(self, s: _Session, msg: AmiMessage) -> None:
        self.astdb[f"{msg.get('Family')}/{msg.get('Key')}"] = msg.get("Val")
        await s.respond(msg, True, "Updated database successfully")

    async def _db_del(self, s: _Session, msg: AmiMessage) -> None:
        found = self.astdb.pop(f"{msg.get('Family')}/{msg.get('Key')}", None)
        await s.respond(msg, found is not None, "Key deleted successfully" if found is not None
                        else "Database entry not found")

    async def _db_get_tree(self, s: _Session, msg: AmiMessage) -> None:
        # As Asterisk 22's db.c: a list answer whose Key is the whole path (/family/key).
        prefix = f"{msg.get('Family')}/"
        rows = [(k, v) for k, v in sorted(self.astdb.items()) if k.startswith(prefix)]
        await s.respond(msg, True, "Result will follow", [("EventList", "start")])
        for key, value in rows:
            await s.send(("Event", "DBGetTreeResponse"), msg.action_id,
                         [("Key", f"/{key}"), ("Val", value)])
        await s.send(("Event", "DBGetTreeComplete"), msg.action_id,
                     [("EventList", "Complete"), ("ListItems", len(rows))])

    _ACTIONS: Mapping[str, Callable[[FakeAmiServer, _Session, AmiMessage], Awaitable[None]]] = {
        "queueadd": _queue_add, "queueremove": _queue_remove, "queuepause": _queue_pause,
        "queuepenalty": _queue_penalty, "queuestatus": _queue_status,
        "dbput": _db_put, "dbdel": _db_del, "dbgettree": _db_get_tree,
    }
