"""Bounded asyncio queues that keep the newest items, and a cancel-safe timed get.

Live streams (ARI events, RTP frames, screen pops) must never block their
producer: when a consumer lags, the oldest item goes.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


def put_latest(queue: asyncio.Queue[T], item: T) -> bool:
    """Put ``item``, first dropping the oldest item if the queue is full; True if one was."""
    dropped = queue.full()
    if dropped:
        queue.get_nowait()
    queue.put_nowait(item)
    return dropped


async def get_within(queue: asyncio.Queue[T], within_s: float | None) -> T | None:
    """Next item, or None after ``within_s`` seconds (None: wait for ever).

    asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
    lands as an item arrives, and a listen turn's audio task then never ended
    (the call hung until the caller gave up; tests/telephony/test_media.py).
    """
    try:
        async with asyncio.timeout(None if within_s is None else max(within_s, 0.0)):
            return await queue.get()
    except TimeoutError:
        return None
