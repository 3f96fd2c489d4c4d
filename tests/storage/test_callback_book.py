"""Callbacks on SQLite and PostgreSQL: booking never overbooks a slot (even from many
threads at once), cancel twice is refused, due callbacks are claimed exactly once by
concurrent claimers, and a dial attempt is only written under a live lease."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from ivr.domain.callbacks import (
    CallbackClosed,
    CallbackDraft,
    CallbackStatus,
    NextStep,
    SlotFull,
    SlotInPast,
    SlotPolicy,
    candidate_starts,
    slot_start,
)
from ivr.storage.callbacks import LeaseLost, SqlCallbackBook
from ivr.storage.db import make_engine

POLICY = SlotPolicy(slot_s=600, lead_s=60)


class _Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.at


def _draft(start: datetime, n: int = 0) -> CallbackDraft:
    return CallbackDraft(contact_id=f"c{n}", number=f"+3130234567{n % 10}", language="nl",
                         skill="billing", slot_start=start, slot_end=start + timedelta(minutes=10),
                         question="my invoice is too high", intent="billing_question",
                         transcript=("IVR: how can I help?", "Caller: my invoice is too high"))


def test_book_cancel_and_the_context_kept(db_url: str) -> None:
    """A booking keeps the whole context; a second cancel is refused and frees nothing."""
    clock = _Clock()
    book = SqlCallbackBook(make_engine(db_url), now=clock)
    start = candidate_starts(clock.at, POLICY, 1)[0]
    cb = book.book_sync(_draft(start), policy=POLICY, cap=2)
    assert cb.status is CallbackStatus.BOOKED and cb.draft.question == "my invoice is too high"
    assert cb.draft.transcript[1] == "Caller: my invoice is too high"
    assert cb.draft.slot_start == start and cb.next_attempt_at == start
    assert book.booked_sync("billing", [start]) == {start: 1}
    assert book.cancel_sync(cb.id).status is CallbackStatus.CANCELLED
    with pytest.raises(CallbackClosed):
        book.cancel_sync(cb.id)
    assert book.booked_sync("billing", [start]) == {start: 0}
    with pytest.raises(SlotInPast):  # the slot under way has begun (start <= now)
        book.book_sync(_draft(slot_start(clock.at, POLICY.slot_s)), policy=POLICY, cap=2)
    book.engine.dispose()


def test_never_overbooked_from_many_threads(db_url: str) -> None:
    """Eight bookings race for three places: exactly three win, five are SlotFull."""
    clock = _Clock()
    book = SqlCallbackBook(make_engine(db_url), now=clock)
    start = candidate_starts(clock.at, POLICY, 1)[0]
    wins: list[str] = []
    full: list[int] = []

    def one(n: int) -> None:
        try:
            wins.append(book.book_sync(_draft(start, n), policy=POLICY, cap=3).id)
        except SlotFull:
            full.append(n)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(wins), len(full)) == (3, 5)
    assert book.booked_sync("billing", [start]) == {start: 3}
    assert len(book.list_sync()) == 3
    book.engine.dispose()


def test_move_takes_the_new_place_before_freeing_the_old(db_url: str) -> None:
    """Moving to a full slot changes nothing; to a free one moves the place."""
    clock = _Clock()
    book = SqlCallbackBook(make_engine(db_url), now=clock)
    s1, s2 = candidate_starts(clock.at, POLICY, 2)
    cb = book.book_sync(_draft(s1), policy=POLICY, cap=1)
    book.book_sync(_draft(s2, 1), policy=POLICY, cap=1)
    with pytest.raises(SlotFull):
        book.move_sync(cb.id, s2, s2 + timedelta(minutes=10), policy=POLICY, cap=1)
    assert book.get_sync(cb.id).draft.slot_start == s1
    s3 = s2 + timedelta(minutes=10)
    moved = book.move_sync(cb.id, s3, s3 + timedelta(minutes=10), policy=POLICY, cap=1)
    assert moved.draft.slot_start == s3 and moved.next_attempt_at == s3
    assert book.booked_sync("billing", [s1, s3]) == {s1: 0, s3: 1}
    book.engine.dispose()


def test_due_callbacks_claimed_exactly_once_by_racing_claimers(db_url: str) -> None:
    """Six claimers race over twenty due callbacks: each is claimed by exactly one."""
    clock = _Clock()
    engine = make_engine(db_url)
    book = SqlCallbackBook(engine, now=clock)
    start = candidate_starts(clock.at, POLICY, 1)[0]
    ids = {book.book_sync(_draft(start, n), policy=POLICY, cap=50).id for n in range(20)}
    clock.at = start + timedelta(seconds=1)
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        for _ in range(4):
            got = book.claim_due_sync(name, lease_s=60, limit=3)
            with lock:
                claimed.extend((cb.id, name) for cb in got)

    threads = [threading.Thread(target=claimer, args=(f"node{k}",)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got_ids = [cid for cid, _ in claimed]
    assert sorted(got_ids) == sorted(ids)  # all claimed, none twice
    assert book.claim_due_sync("late", lease_s=60) == []
    engine.dispose()


def test_attempt_written_only_under_a_live_lease(db_url: str) -> None:
    """Attempt 1 is written before the dial; once the lease lapses another node takes the
    row, the first node can no longer write (LeaseLost), and attempt 2 gets a new id."""
    clock = _Clock()
    book = SqlCallbackBook(make_engine(db_url), now=clock)
    start = candidate_starts(clock.at, POLICY, 1)[0]
    cb = book.book_sync(_draft(start), policy=POLICY, cap=5)
    clock.at = start
    (mine,) = book.claim_due_sync("a", lease_s=30)
    a1 = book.start_attempt_sync(mine.id, "a", lease_s=30)
    assert book.get_sync(cb.id).status is CallbackStatus.DIALING
    assert book.claim_due_sync("b", lease_s=30) == []  # still leased by a
    clock.at += timedelta(seconds=31)  # node a died: its lease lapses
    (theirs,) = book.claim_due_sync("b", lease_s=30)
    assert theirs.attempts[-1].outcome is None and theirs.lease_owner == "b"
    with pytest.raises(LeaseLost):
        book.start_attempt_sync(cb.id, "a", lease_s=30)
    done = book.finish_attempt_sync(cb.id, "b", outcome="interrupted",
                                    step=NextStep(CallbackStatus.RETRY, retry_at=clock.at))
    assert done.attempts[0].outcome == "interrupted" and done.lease_owner is None
    (again,) = book.claim_due_sync("b", lease_s=30)
    a2 = book.start_attempt_sync(again.id, "b", lease_s=30)
    assert a2.n == 2 and a2.channel_id != a1.channel_id
    book.engine.dispose()
