"""Applies ``ivr.domain.queue_care`` to the live queues: priority aging and widening.

Once a second, while the feed follows Asterisk, the keeper

* raises the priority of callers who have waited (``QueueChangePriorityCaller``)
  and records the change in the centre state, so positions announced next are
  right;
* unpauses substitute members in a queue whose head caller has waited past the
  overflow threshold (or whose own agents are all gone) and pauses them again
  when it is back under, per queue (``QueuePause`` with ``Queue``).

It diffs against what Asterisk reported (``CentreFeed.substitutes``), so a lost
action or a reconnect converges on the next tick; an action it just sent is not
repeated for ``resend_s`` so it does not flood AMI before the event arrives.
While the state is stale it does nothing: acting on old state could unpause the
wrong agents, and callers keep their place in app_queue meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ivr.contact_centre.feed import CentreFeed
from ivr.domain.centre import CallerPriority
from ivr.domain.ports import PortError
from ivr.domain.queue_care import FirstSeen, aging_changes, standby_wanted
from ivr.domain.smart_routing import RoutingPolicy
from ivr.domain.staffing import QUEUE_PREFIX
from ivr.telephony.ami import AmiClient

log = logging.getLogger(__name__)

STANDBY_REASON = "overflow standby"


class QueueKeeper:
    """Priority aging and overflow widening for callers already queued."""

    def __init__(self, ami: AmiClient, feed: CentreFeed, policy: Callable[[], RoutingPolicy],
                 *, tick_s: float = 1.0, resend_s: float = 5.0,
                 wall: Callable[[], float] = time.time) -> None:
        self._ami = ami
        self._feed = feed
        self._policy = policy
        self._tick_s = tick_s
        self._resend_s = resend_s
        self._wall = wall
        self._seen: dict[str, FirstSeen] = {}
        self._sent: dict[tuple[str, str], tuple[bool, float]] = {}
        self.reprioritised = 0
        self.widened = 0
        self.narrowed = 0

    async def run(self) -> None:
        """Tick until cancelled; an AMI error is logged and retried on the next tick."""
        while True:
            await asyncio.sleep(self._tick_s)
            if self._feed.stale_s > 0:
                continue
            try:
                await self.tick()
            except PortError as exc:
                log.warning("queue keeper: AMI action failed (%s); retrying next tick", exc)

    async def tick(self) -> None:
        """One pass: age, then widen or narrow."""
        now = self._wall()
        policy = self._policy()
        await self._age(now, policy)
        await self._widen(now, policy)

    async def _age(self, now: float, policy: RoutingPolicy) -> None:
        state = self._feed.state
        snapshot = self._feed.snapshot()
        waiting = [c for key, q in snapshot.queues.items() if q.waiting
                   for c in state.waiting(key)]
        present = {c.uniqueid for c in waiting}
        for gone in self._seen.keys() - present:
            del self._seen[gone]
        for c in waiting:
            if c.uniqueid not in self._seen:
                self._seen[c.uniqueid] = FirstSeen(c.priority, max(0.0, now - c.joined_at))
        for caller, priority in aging_changes(waiting, self._seen, now, policy):
            await self._ami.queue_change_priority(QUEUE_PREFIX + caller.queue, caller.channel,
                                                  priority)
            self._feed.state.apply(CallerPriority(caller.uniqueid, priority, now))
            self.reprioritised += 1
            log.info("aged caller %s in %s to priority %d after %.0fs", caller.uniqueid,
                     caller.queue, priority, now - caller.joined_at)

    async def _widen(self, now: float, policy: RoutingPolicy) -> None:
        wanted = standby_wanted(self._feed.snapshot(), policy, now)
        clock = time.monotonic()
        for key, paused in list(self._feed.substitutes.items()):
            active = key in wanted
            if paused != active:
                continue  # already as wanted (paused and not wanted, or active and wanted)
            last = self._sent.get(key)
            if last is not None and last[0] == active and clock - last[1] < self._resend_s:
                continue
            queue, interface = key
            await self._ami.queue_pause(interface, not active, queue=QUEUE_PREFIX + queue,
                                        reason=None if active else STANDBY_REASON)
            self._sent[key] = (active, clock)
            if active:
                self.widened += 1
            else:
                self.narrowed += 1
            log.info("%s substitute %s in %s", "widened to" if active else "standby for",
                     interface, queue)
