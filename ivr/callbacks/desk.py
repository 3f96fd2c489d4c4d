"""The flow's ``CallbackDesk`` on SQL: slots with capacity from the configured places
per skill or the agents logged in for it, skipping slots outside opening hours, and the
signed link where the customer cancels or moves the callback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from ivr.domain.callbacks import (
    OFFERED,
    CallbackDraft,
    CallbackError,
    CallbackRecord,
    Slot,
    SlotPolicy,
    candidate_starts,
    capacity,
)
from ivr.storage.callbacks import SqlCallbackBook

# How far ahead to look for three open slots with room (a weekend is about 130 half-hour
# slots); each candidate costs one opening-hours lookup (a cached, indexed read).
_SCAN = 200


class SqlCallbackDesk:
    """Implements ``CallbackDesk``: ``staffing(skill)`` counts agents logged in for a skill,
    ``is_open(at)`` says whether the centre takes calls then, ``token(key, id)`` signs."""

    def __init__(self, book: SqlCallbackBook, policy: SlotPolicy, *, offer_wait_s: float,
                 staffing: Callable[[str], Awaitable[int]],
                 is_open: Callable[[datetime], Awaitable[bool]],
                 token: Callable[[str, str], str], public_url: str) -> None:
        self.book_store = book
        self.policy = policy
        self._offer_wait_s = offer_wait_s
        self._staffing = staffing
        self._is_open = is_open
        self._token = token
        self._public = public_url.rstrip("/")

    @property
    def offer_wait_s(self) -> float:
        return self._offer_wait_s

    async def capacity(self, skill: str) -> int:
        return capacity(skill, self.policy, await self._staffing(skill))

    async def offer(self, skill: str, at: datetime) -> Sequence[Slot]:
        cap = await self.capacity(skill)
        if cap <= 0:
            return ()
        starts = candidate_starts(at, self.policy, _SCAN)
        booked = await self.book_store.booked(skill, starts)
        step = timedelta(seconds=self.policy.slot_s)
        out: list[Slot] = []
        for start in starts:
            free = cap - booked.get(start, 0)
            if free <= 0 or not await self._is_open(start):
                continue
            out.append(Slot(skill, start, start + step, free))
            if len(out) == OFFERED:
                break
        return tuple(out)

    async def book(self, draft: CallbackDraft) -> CallbackRecord:
        return await self.book_store.book(draft, policy=self.policy,
                                          cap=await self.capacity(draft.skill))

    async def book_now(self, draft: CallbackDraft) -> CallbackRecord:
        """A callback due at once (a web "call me now"); SlotFull when nobody has room,
        CallbackError when the centre is closed (nobody to put the customer through to)."""
        if not await self._is_open(datetime.now(UTC)):
            raise CallbackError("the centre is closed now; the customer can call when it opens")
        return await self.book_store.book_now(draft, policy=self.policy,
                                              cap=await self.capacity(draft.skill))

    def manage_link(self, callback_id: str) -> str:
        return f"{self._public}/cb/{self._token('callback', callback_id)}"
