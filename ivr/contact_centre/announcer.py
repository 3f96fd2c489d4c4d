"""Keeps queued callers informed: their position and expected wait, and a way out.

Every ``every_s`` seconds a caller waiting in an app_queue queue hears, in their
own language, where they are in line now and how long it should still take (the
same M/M/c estimate as at hand-off, on the live state), and that pressing 1
leaves the queue for a text-message link instead (queues.conf ``context=``
sends the key back into the app, see dialplan/extensions.conf
``[ivr-queue-exit]``).

app_queue's own ``announce-position`` was not used: it needs Asterisk's core
sound files in every language the centre serves, says nothing Kanaal knows (the
estimate from its live state, the way out), and cannot be phrased. The message
is whispered over the queue's ring-back through a snoop channel
(``ivr.telephony.ari.whisper``), so the caller never leaves Queue() and keeps
their place. A message still playing when the caller is answered is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ivr.contact_centre.feed import CentreFeed
from ivr.domain.centre import CentreSnapshot, WaitingCaller
from ivr.domain.model import Language, as_language
from ivr.domain.ports import Prompt
from ivr.domain.prompts import render
from ivr.domain.queue_care import split_queue_key
from ivr.domain.smart_routing import RoutingPolicy, expected_wait_s

log = logging.getLogger(__name__)


class Whisperer(Protocol):
    """Plays a sound to a channel outside the app (ARI snoop whisper)."""

    async def whisper(self, channel_id: str, media: str) -> bool:
        """Play ``media``; False when the channel is gone."""


class SoundResolver(Protocol):
    """Prompt -> media URI Asterisk can play (the node's prompt resolver)."""

    async def resolve(self, prompt: Prompt) -> str:
        """The ``sound:`` URI of the rendered prompt."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """What one waiting caller was told, for the log and the wait-estimate check."""

    uniqueid: str
    queue: str
    position: int
    expected_wait_s: float | None
    at: float


def update_for(caller: WaitingCaller, position: int, snapshot: CentreSnapshot,
               policy: RoutingPolicy, now: float) -> Announcement:
    """Position and expected wait of a waiting caller (pure; ``position`` 1 = next)."""
    skill, side = split_queue_key(caller.queue)
    view = snapshot.skill(skill)
    wait = expected_wait_s(position, view.ready(side), view.working(side),
                           view.handle_time_s(now) or policy.default_aht_s)
    return Announcement(caller.uniqueid, caller.queue, position, wait, now)


def wait_words(seconds: float | None, language: Language) -> str:
    if seconds is None or seconds < 60:
        return render("wait_under_minute", language).text
    return render("wait_minutes", language, minutes=max(1, round(seconds / 60))).text


class QueueAnnouncer:
    """Periodic position/wait messages to every queued caller (see module doc)."""

    def __init__(self, feed: CentreFeed, policy: Callable[[], RoutingPolicy],
                 whisperer: Whisperer, sounds: SoundResolver,
                 language_of: Callable[[str], Awaitable[str | None]], *,
                 every_s: float = 45.0, tick_s: float = 1.0,
                 wall: Callable[[], float] = time.time) -> None:
        self._feed = feed
        self._policy = policy
        self._whisperer = whisperer
        self._sounds = sounds
        self._language_of = language_of
        self._every_s = every_s
        self._tick_s = tick_s
        self._wall = wall
        self._next: dict[str, float] = {}
        self._playing: dict[str, asyncio.Task[None]] = {}
        self.told: list[Announcement] = []  # recent, bounded (wait-estimate checks)

    async def run(self) -> None:
        """Announce until cancelled (nothing while the live state is stale)."""
        if self._every_s <= 0:
            return
        try:
            while True:
                await asyncio.sleep(self._tick_s)
                if self._feed.stale_s == 0:
                    self.tick()
        finally:
            for task in self._playing.values():
                task.cancel()

    def tick(self) -> None:
        """Start the messages that are due; cut off those of callers who left."""
        now = self._wall()
        snapshot = self._feed.snapshot()
        waiting: dict[str, tuple[WaitingCaller, int]] = {}
        for key, queue in snapshot.queues.items():
            if queue.waiting:
                for position, c in enumerate(self._feed.state.waiting(key), start=1):
                    waiting[c.uniqueid] = (c, position)
        for uid in list(self._playing):
            if uid not in waiting:
                self._playing.pop(uid).cancel()
        for uid in self._next.keys() - waiting.keys():
            del self._next[uid]
        for uid, (caller, position) in waiting.items():
            # The hand-off already told them; the first update comes a period later.
            due = self._next.setdefault(uid, caller.joined_at + self._every_s)
            if now < due or uid in self._playing:
                continue
            self._next[uid] = now + self._every_s
            update = update_for(caller, position, snapshot, self._policy(), now)
            task = asyncio.create_task(self._tell(update), name=f"queue-update-{uid}")
            self._playing[uid] = task
            task.add_done_callback(functools.partial(self._done, uid))

    def _done(self, uid: str, task: asyncio.Task[None]) -> None:
        if self._playing.get(uid) is task:
            del self._playing[uid]

    async def _tell(self, update: Announcement) -> None:
        try:
            language = as_language(await self._language_of(update.uniqueid) or "en")
            prompt = render("queue_update", language, position=update.position,
                            wait=wait_words(update.expected_wait_s, language))
            media = await self._sounds.resolve(prompt)
            if await self._whisperer.whisper(update.uniqueid, media):
                self.told.append(update)
                del self.told[:-1000]
                log.info("told queued caller %s: number %d in %s, about %s s", update.uniqueid,
                         update.position, update.queue,
                         "?" if update.expected_wait_s is None else
                         f"{update.expected_wait_s:.0f}")
        except asyncio.CancelledError:
            raise
        except Exception:  # one failed message must not stop the others
            log.exception("queue update for %s failed", update.uniqueid)


async def channel_language(get_variable: Callable[[str, str], Awaitable[str | None]],
                           channel_id: str) -> str | None:
    """The caller's language, as the hand-off left it on the channel (IVR_LANG)."""
    with contextlib.suppress(Exception):
        return await get_variable(channel_id, "IVR_LANG")
    return None
