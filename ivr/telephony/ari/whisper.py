"""Play audio to a caller who is *not* in the Stasis app (waiting in app_queue).

ARI can only play to channels in Stasis, and a queued caller is in the dialplan's
Queue(). A snoop channel with ``whisper=out`` on that caller is in Stasis,
though, and audio played to it is mixed into what the caller hears (over the
queue's ring-back or music). The caller stays in Queue() the whole time, so they
keep their place and app_queue's own keys (``context=`` exit) keep working.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from ivr.telephony.ari.client import AriClient, AriError, AriNotFound, Subscription
from ivr.telephony.ari.events import ChannelDestroyed, PlaybackFinished, StasisEnd

log = logging.getLogger(__name__)


class AriWhisper:
    """``whisper(channel, media)``: play ``media`` to a channel outside Stasis."""

    def __init__(self, client: AriClient, *, timeout_s: float = 30.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self.played = 0

    async def whisper(self, channel_id: str, media: str) -> bool:
        """Play ``media`` (a ``sound:`` URI) to the channel; False if it is gone.

        Returns when the playback finished (or the caller hung up, or the timeout
        passed); the snoop channel is always hung up again, also when the caller's
        task cancels this because they were answered (the message must not run on
        into the agent's conversation).
        """
        snoop_id = f"kanaal-whisper-{uuid.uuid4().hex[:16]}"
        playback_id = f"{snoop_id}-pb"
        # Subscribe first: the snoop's StasisStart must not reach the new-call queue.
        sub = self._client.subscribe(snoop_id, playback_id)
        try:
            try:
                await self._client.snoop(channel_id, snoop_id=snoop_id, spy="none",
                                         whisper="out")
                await self._client.play(snoop_id, media, playback_id)
            except AriNotFound:
                return False
            return await self._until_finished(sub, channel_id, snoop_id, playback_id)
        except AriError as exc:
            log.warning("whisper to %s failed: %s", channel_id, exc)
            return False
        finally:
            sub.close()
            try:
                await self._client.hangup(snoop_id)
            except AriError as exc:
                log.warning("could not hang up whisper snoop %s: %s", snoop_id, exc)

    async def _until_finished(self, sub: Subscription, channel_id: str, snoop_id: str,
                              playback_id: str) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                while True:
                    event = await sub.get()
                    if isinstance(event, PlaybackFinished) and event.playback.id == playback_id:
                        self.played += 1
                        return True
                    if isinstance(event, ChannelDestroyed | StasisEnd) and \
                            event.channel.id in (channel_id, snoop_id):
                        return False  # the caller left (answered or hung up) mid-message
        except TimeoutError:
            log.warning("whisper to %s did not finish within %.0fs", channel_id,
                        self._timeout_s)
            return True
