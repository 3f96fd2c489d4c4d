"""The live state of the centre, kept in step with Asterisk's app_queue over AMI.

``CentreFeed`` owns a :class:`~ivr.domain.centre.CentreState`. One task reads
AMI events (each translated at the edge into a domain input); after every
(re)connect the whole state is rebuilt from ``QueueStatus``, so events lost
while the connection was down cannot leave it wrong. Decisions read
``snapshot()``, refreshed once per batch of events (a snapshot costs ten
decisions, so it is not taken per call). When AMI is gone the last snapshot
stays available and ``stale_s`` says for how long.

Queue names: ``ivr-<skill>`` is a skill's queue; ``ivr-<skill>-own`` and
``ivr-<skill>-partner`` are the per-side queues of a skill with a load split.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from ivr.domain.centre import (
    Agent,
    AgentCompleted,
    AgentConnected,
    AgentKnown,
    CallerJoined,
    CallerLeft,
    CentreInput,
    CentreKind,
    CentreReset,
    CentreSnapshot,
    CentreState,
    ClockTick,
    MemberAdded,
    MemberPaused,
    MemberRemoved,
    MemberStatus,
    WaitingCaller,
)
from ivr.domain.staffing import QUEUE_PREFIX
from ivr.telephony.ami import AmiClient
from ivr.telephony.ami.events import (
    AgentComplete,
    AgentConnect,
    AmiEvent,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueEntry,
    QueueMember,
    QueueMemberAdded,
    QueueMemberEvent,
    QueueMemberPause,
    QueueMemberRemoved,
    QueueMemberStatus,
)

log = logging.getLogger(__name__)

SIDES = tuple(kind.value for kind in CentreKind)
# Members at or above this penalty are substitutes from an overflow skill (see
# Membership): they are not agents *of* the queue's skill, routing counts them
# under their own skills and reaches them through the overflow steps.
SUBSTITUTE_PENALTY = 10

Wall = Callable[[], float]


def queue_key(queue: str) -> str:
    """``ivr-billing`` -> ``billing``; ``ivr-general-own`` -> ``general-own``."""
    return queue.removeprefix(QUEUE_PREFIX)


def queue_skill(queue: str) -> tuple[str, str | None]:
    """The skill a queue serves and its side (None for a skill's main queue)."""
    key = queue_key(queue)
    skill, _, side = key.rpartition("-")
    if skill and side in SIDES:
        return skill, side
    return key, None


def translate(event: AmiEvent, now: float) -> Iterable[CentreInput]:
    """AMI event -> domain inputs (none for events routing does not need)."""
    match event:
        case QueueMemberAdded() | QueueMember():
            yield _member_added(event, now)
        case QueueMemberRemoved():
            skill, side = queue_skill(event.queue)
            if side is None and event.penalty < SUBSTITUTE_PENALTY:
                yield MemberRemoved(event.interface, skill, now)
        case QueueMemberPause() if event.penalty < SUBSTITUTE_PENALTY:
            # A substitute's standby pause is per queue and Kanaal's own doing (see
            # ivr.domain.queue_care); it says nothing about the agent's availability.
            yield MemberPaused(event.interface, event.paused, now,
                               event.reason or event.paused_reason)
        case QueueMemberStatus():
            yield MemberStatus(event.interface, event.status, now, event.in_call)
        case QueueCallerJoin():
            prio = event.variables.get("QUEUE_PRIO", "0")
            yield CallerJoined(WaitingCaller(
                uniqueid=event.uniqueid, queue=queue_key(event.queue),
                priority=int(prio) if prio.lstrip("-").isdigit() else 0, joined_at=now,
                position=event.position, caller_id=event.caller_id_num,
                channel=event.channel))
        case QueueCallerAbandon():
            yield CallerLeft(event.uniqueid, now, abandoned=True)
        case QueueCallerLeave():
            yield CallerLeft(event.uniqueid, now)
        case QueueEntry():
            yield CallerJoined(WaitingCaller(
                uniqueid=event.uniqueid, queue=queue_key(event.queue), priority=event.priority,
                joined_at=now - event.wait, position=event.position,
                caller_id=event.caller_id_num, channel=event.channel))
        case AgentConnect():
            yield AgentConnected(event.interface, event.uniqueid, now,
                                 skill=queue_skill(event.queue)[0])
        case AgentComplete():
            skill, _ = queue_skill(event.queue)
            yield AgentCompleted(event.interface, skill, float(event.talk_time), now)
        case _:
            return


def _member_added(event: QueueMemberEvent, now: float) -> CentreInput:
    skill, side = queue_skill(event.queue)
    if side is not None or event.penalty >= SUBSTITUTE_PENALTY:
        # A side queue repeats the membership of the skill's main queue (the agent's
        # side comes from their profile); a substitute is counted under their own
        # skills. Only the device state matters here.
        return MemberStatus(event.interface, event.status, now, event.in_call)
    return MemberAdded(event.interface, skill, now, penalty=event.penalty, paused=event.paused,
                       reason=event.paused_reason, device=event.status,
                       in_call=event.in_call, name=event.member_name)


class CentreFeed:
    """Live centre state from AMI: events in, snapshots out, full resync on reconnect."""

    def __init__(self, client: AmiClient, *,
                 profiles: Callable[[], Awaitable[Sequence[Agent]]],
                 before_resync: Callable[[], Awaitable[object]] | None = None,
                 wall: Wall = time.time, tick_s: float = 1.0) -> None:
        self._client = client
        self._profiles = profiles
        self._before_resync = before_resync
        self._wall = wall
        self._tick_s = tick_s
        self.state = CentreState()
        self._snapshot = self.state.snapshot(wall())
        self.synced = asyncio.Event()
        self.resyncs = 0
        self.events = 0
        # (queue key, interface) -> paused, for substitute (standby) memberships, as
        # Asterisk reports them: the QueueKeeper pauses/unpauses against this.
        self.substitutes: dict[tuple[str, str], bool] = {}

    @property
    def stale_s(self) -> float:
        """Seconds since the state stopped following Asterisk (0 while in sync)."""
        since = self._client.stale_since
        if since is None and self.synced.is_set():
            return 0.0
        return max(0.0, time.monotonic() - since) if since is not None else float("inf")

    def snapshot(self) -> CentreSnapshot:
        """The latest published view (cheap: no rebuild)."""
        return self._snapshot

    def load_profiles(self, agents: Iterable[Agent]) -> None:
        """Agent profiles (skills, site, side) from the directory; call after changes."""
        for agent in agents:
            self.state.apply(AgentKnown(agent))
        self._publish()

    async def run(self) -> None:
        """Connect, resync, follow events and tick the clock, until cancelled."""
        self.load_profiles(await self._profiles())
        sub = self._client.subscribe(
            QueueMemberAdded, QueueMemberRemoved, QueueMemberPause, QueueMemberStatus,
            QueueCallerJoin, QueueCallerLeave, QueueCallerAbandon, AgentConnect, AgentComplete)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._client.run(on_connect=self._resync), name="ami")
            tg.create_task(self._tick(), name="centre-tick")
            with sub:
                async for event in sub:
                    if event.action_id:
                        continue  # a QueueStatus reply: the resync applies those
                    self._track_substitute(event)
                    self._apply(translate(event, self._wall()))
                    self.events += 1
                    if sub.dropped:
                        # We fell behind and lost events: rebuild rather than guess.
                        self._client.request_resync()

    def _track_substitute(self, event: AmiEvent) -> None:
        if not isinstance(event, QueueMemberEvent) or event.penalty < SUBSTITUTE_PENALTY:
            return
        key = (queue_key(event.queue), event.interface)
        if isinstance(event, QueueMemberRemoved):
            self.substitutes.pop(key, None)
        elif isinstance(event, QueueMemberAdded | QueueMember | QueueMemberPause):
            self.substitutes[key] = event.paused

    def _apply(self, inputs: Iterable[CentreInput]) -> None:
        for item in inputs:
            self.state.apply(item)
        self._publish()

    def _publish(self) -> None:
        self._snapshot = self.state.snapshot(self._wall())

    async def _resync(self, client: AmiClient) -> None:
        if self._before_resync is not None:
            # e.g. re-add logged-in agents after an Asterisk restart, so the status
            # read next already shows them.
            await self._before_resync()
        profiles = await self._profiles()
        status = await client.queue_status()
        now = self._wall()
        inputs: list[CentreInput] = [CentreReset(now)]
        inputs += [AgentKnown(a) for a in profiles]
        self.substitutes.clear()
        for member in status.members:
            inputs.append(_member_added(member, now))
            self._track_substitute(member)
        for entry in status.entries:
            inputs.extend(translate(entry, now))
        self._apply(inputs)
        self.resyncs += 1
        self.synced.set()
        log.info("centre state resynced: %d members, %d callers waiting",
                 len(status.members), len(status.entries))

    async def _tick(self) -> None:
        # Asterisk sends nothing when an agent's wrap-up ends; time has to move it.
        while True:
            await asyncio.sleep(self._tick_s)
            self._apply((ClockTick(self._wall()),))
