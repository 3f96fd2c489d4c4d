"""Outbound calls over ARI for the callback dialer: originate with our own channel id
into the Stasis app, see the answer (StasisStart) or the failure (ChannelDestroyed
with its cause), bridge answered legs or continue one into the hand-off dialplan.

The channel id is the attempt's (``kanaal-cb-<id>-<n>``): the subscription is made
before the originate so the answer reaches the dialer and never the new-call path,
and after a node restart the dialer can ask Asterisk whether that attempt is still up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from ivr.domain.ports import LegResult
from ivr.telephony.ari.client import AriClient, AriConflict, AriError, Subscription
from ivr.telephony.ari.events import ChannelDestroyed, StasisEnd, StasisStart

log = logging.getLogger(__name__)
CALLBACK_ARG = "callback"
# Q.850 cause for "in use": the attempt's channel id is already taken (never dial twice).
IN_USE = 17


class AriOutboundCalls:
    """Implements ``OutboundCalls`` with ARI originate (one ARI client per node)."""

    def __init__(self, client: AriClient, *, caller_id: str = "",
                 handoff_context: str = "ivr-handoff") -> None:
        self._client = client
        self._caller_id = caller_id
        self._context = handoff_context
        self._subs: dict[str, Subscription] = {}

    def _sub(self, channel_id: str) -> Subscription:
        sub = self._subs.get(channel_id)
        if sub is None:
            sub = self._subs[channel_id] = self._client.subscribe(channel_id)
        return sub

    def _close(self, channel_id: str) -> None:
        sub = self._subs.pop(channel_id, None)
        if sub is not None:
            sub.close()

    async def ring(self, channel_id: str, endpoint: str, *, timeout_s: float,
                   variables: dict[str, str]) -> LegResult:
        sub = self._sub(channel_id)
        try:
            await self._client.originate(
                channel_id, endpoint, app_args=CALLBACK_ARG, caller_id=self._caller_id,
                timeout_s=max(1, round(timeout_s)), variables=variables)
        except AriConflict as exc:
            self._close(channel_id)
            return LegResult(False, IN_USE, f"channel id in use: {exc}")
        except AriError as exc:
            self._close(channel_id)
            return LegResult(False, 0, str(exc))
        try:
            async with asyncio.timeout(timeout_s + 10):
                while True:
                    event = await sub.get(within_s=1.0)
                    if isinstance(event, StasisStart):
                        return LegResult(True)
                    if isinstance(event, ChannelDestroyed):
                        self._close(channel_id)
                        return LegResult(False, event.cause, event.cause_txt)
        except TimeoutError:
            await self.hang_up(channel_id)
            return LegResult(False, 19, "no answer (timed out)")

    async def bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        await self._client.create_bridge(bridge_id, "mixing")
        await self._client.add_to_bridge(bridge_id, channel_ids)

    async def to_queue(self, channel_id: str, variables: dict[str, str]) -> None:
        for name, value in variables.items():
            await self._client.set_variable(channel_id, name, value)
        await self._client.continue_in_dialplan(channel_id, context=self._context,
                                                extension="s", priority=1)
        self._close(channel_id)

    async def until_hangup(self, channel_ids: Sequence[str], bridge_id: str | None,
                           max_s: float) -> None:
        subs = [self._sub(c) for c in channel_ids]
        try:
            async with asyncio.timeout(max_s):
                while not await self._one_gone(subs):
                    pass
        except TimeoutError:
            log.warning("callback call %s over its limit: hanging up", channel_ids[0])
        finally:
            for c in channel_ids:
                await self.hang_up(c)
            if bridge_id is not None:
                with contextlib.suppress(AriError):
                    await self._client.destroy_bridge(bridge_id)

    @staticmethod
    async def _one_gone(subs: Sequence[Subscription]) -> bool:
        for sub in subs:
            event = await sub.get(within_s=0.2)
            if isinstance(event, (ChannelDestroyed, StasisEnd)):
                return True
        return False

    async def hang_up(self, channel_id: str) -> None:
        self._close(channel_id)
        with contextlib.suppress(AriError):
            await self._client.hangup(channel_id)

    async def alive(self, channel_id: str) -> bool:
        return await self._client.get_channel(channel_id) is not None
