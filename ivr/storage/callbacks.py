"""Callbacks in SQL: booking a place in a slot (never overbooked), claiming due
callbacks exactly once across nodes, and every dial attempt written before it is made.

Claiming is a database lease (``lease_owner``/``lease_until``). On PostgreSQL the
candidates are read with ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent
dialers never wait on, or take, each other's rows; on SQLite (one writer at a
time) each claim is a conditional UPDATE in its own transaction: the row is taken
only if its lease is still free when the write lock is held.

Blocking methods (``*_sync``) are for the CLI and tests; the async ones run them in
a worker thread for the node. Rules (capacity, past/full, retries) live in
``ivr.domain.callbacks``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ivr.domain.callbacks import (
    Attempt,
    CallbackClosed,
    CallbackDraft,
    CallbackError,
    CallbackRecord,
    CallbackStatus,
    NextStep,
    SlotFull,
    SlotPolicy,
    UnknownCallback,
    check_booking,
    slot_start,
)
from ivr.storage.db import SyncStore
from ivr.storage.tables import callback_slots, callbacks

_CLAIMABLE = (CallbackStatus.BOOKED.value, CallbackStatus.RETRY.value,
              CallbackStatus.DIALING.value)
_CANCELLABLE = (CallbackStatus.BOOKED.value, CallbackStatus.RETRY.value)


def _utc(dt: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def _opt(dt: datetime | None) -> datetime | None:
    return None if dt is None else _utc(dt)


def _attempt(a: Mapping[str, Any]) -> Attempt:
    return Attempt(n=int(a["n"]), started_at=_utc(datetime.fromisoformat(a["started_at"])),
                   node=str(a["node"]), channel_id=str(a["channel_id"]),
                   outcome=a.get("outcome"), agent=a.get("agent"),
                   ended_at=_opt(datetime.fromisoformat(a["ended_at"]))
                   if a.get("ended_at") else None)


def _attempt_json(a: Attempt) -> dict[str, Any]:
    return {"n": a.n, "started_at": a.started_at.isoformat(), "node": a.node,
            "channel_id": a.channel_id, "outcome": a.outcome, "agent": a.agent,
            "ended_at": a.ended_at.isoformat() if a.ended_at else None}


def _record(r: Any) -> CallbackRecord:
    draft = CallbackDraft(
        contact_id=r.contact_id, number=r.number, language=r.language, skill=r.skill,
        slot_start=_utc(r.slot_start), slot_end=_utc(r.slot_end), question=r.question or "",
        intent=r.intent, customer_id=r.customer_id, customer_name=r.customer_name or "",
        transcript=tuple(r.transcript or ()), priority=r.priority, reason=r.reason or "")
    return CallbackRecord(
        id=r.id, draft=draft, status=CallbackStatus(r.status),
        attempts=tuple(_attempt(a) for a in (r.attempts or ())),
        next_attempt_at=_utc(r.next_attempt_at), created_at=_utc(r.created_at),
        lease_owner=r.lease_owner, lease_until=_opt(r.lease_until), outcome=r.outcome,
        cancel_count=r.cancel_count)


class LeaseLost(CallbackError):
    """The dialer's lease on a callback ran out or was taken over: it must not dial."""


class SqlCallbackBook(SyncStore):
    """Callbacks and slot bookings (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(engine)
        clock = now or (lambda: datetime.now(UTC))
        # SQLite stores datetimes without their zone: everything goes in as UTC, or a
        # clock in another zone (a demo's local time) would compare wrongly.
        self._now: Callable[[], datetime] = lambda: _utc(clock())
        self._pg = engine.dialect.name == "postgresql"

    # ------------------------------------------------------------------ reads

    def booked_sync(self, skill: str, starts: Iterable[datetime]) -> dict[datetime, int]:
        """Places booked per slot start for ``skill`` (slots without bookings are absent)."""
        wanted = [_utc(s) for s in starts]
        if not wanted:
            return {}

        def q() -> dict[datetime, int]:
            stmt = select(callback_slots.c.slot_start, callback_slots.c.booked).where(
                callback_slots.c.skill == skill, callback_slots.c.slot_start.in_(wanted))
            with self._engine.connect() as conn:
                return {_utc(r.slot_start): int(r.booked) for r in conn.execute(stmt)}
        return self._guard(q)

    async def booked(self, skill: str, starts: Iterable[datetime]) -> dict[datetime, int]:
        starts = list(starts)
        return await self._run(lambda: self.booked_sync(skill, starts))

    def get_sync(self, callback_id: str) -> CallbackRecord:
        def q() -> CallbackRecord:
            with self._engine.connect() as conn:
                row = conn.execute(select(callbacks).where(callbacks.c.id == callback_id)).first()
            if row is None:
                raise UnknownCallback(f"no callback {callback_id}")
            return _record(row)
        return self._guard(q)

    async def get(self, callback_id: str) -> CallbackRecord:
        return await self._run(lambda: self.get_sync(callback_id))

    def list_sync(self, *, status: Sequence[CallbackStatus] = (), limit: int = 200,
                  skills: Sequence[str] | None = None) -> list[CallbackRecord]:
        """Earliest slot first; only the given statuses if any, and only these skills
        when ``skills`` is given (an empty list: none)."""
        def q() -> list[CallbackRecord]:
            stmt = select(callbacks).order_by(callbacks.c.slot_start, callbacks.c.created_at
                                              ).limit(limit)
            if status:
                stmt = stmt.where(callbacks.c.status.in_([s.value for s in status]))
            if skills is not None:
                stmt = stmt.where(callbacks.c.skill.in_(list(skills)))
            with self._engine.connect() as conn:
                return [_record(r) for r in conn.execute(stmt)]
        return self._guard(q)

    async def listing(self, *, status: Sequence[CallbackStatus] = (), limit: int = 200,
                      skills: Sequence[str] | None = None) -> list[CallbackRecord]:
        return await self._run(lambda: self.list_sync(status=status, limit=limit,
                                                      skills=skills))

    # ---------------------------------------------------------------- booking

    def _take_place(self, conn: Connection, skill: str, start: datetime, cap: int) -> None:
        """One place in (skill, slot), or SlotFull: a conditional UPDATE, atomic on both DBs."""
        ins = postgresql.insert(callback_slots) if self._pg else sqlite.insert(callback_slots)
        conn.execute(ins.values(skill=skill, slot_start=start, booked=0)
                     .on_conflict_do_nothing())
        took = conn.execute(update(callback_slots).where(
            callback_slots.c.skill == skill, callback_slots.c.slot_start == start,
            callback_slots.c.booked < cap).values(booked=callback_slots.c.booked + 1))
        if took.rowcount != 1:
            raise SlotFull(f"the slot at {start.isoformat()} is full ({cap} places)")

    def _free_place(self, conn: Connection, skill: str, start: datetime) -> None:
        conn.execute(update(callback_slots).where(
            callback_slots.c.skill == skill, callback_slots.c.slot_start == start,
            callback_slots.c.booked > 0).values(booked=callback_slots.c.booked - 1))

    def book_sync(self, draft: CallbackDraft, *, policy: SlotPolicy, cap: int) -> CallbackRecord:
        """Book a place in the draft's slot for its skill; SlotInPast / SlotFull otherwise."""
        now = self._now()
        start = _utc(draft.slot_start)
        check_booking(start, now, policy, booked=0, cap=cap)
        return self._insert(draft, start, _utc(draft.slot_end), start, now, cap)

    def _insert(self, draft: CallbackDraft, start: datetime, end: datetime, due: datetime,
                now: datetime, cap: int) -> CallbackRecord:
        """Take a place in (skill, start) and store the callback, in one transaction."""
        cid = str(uuid.uuid4())

        def tx() -> None:
            with self._engine.begin() as conn:
                self._take_place(conn, draft.skill, start, cap)
                conn.execute(insert(callbacks).values(
                    id=cid, contact_id=draft.contact_id, number=draft.number,
                    language=draft.language, customer_id=draft.customer_id,
                    customer_name=draft.customer_name, question=draft.question,
                    intent=draft.intent, transcript=list(draft.transcript), skill=draft.skill,
                    priority=draft.priority, reason=draft.reason, slot_start=start,
                    slot_end=end, status=CallbackStatus.BOOKED.value, next_attempt_at=due,
                    attempts=[], created_at=now, updated_at=now))
        self._guard(tx)
        return self.get_sync(cid)

    async def book(self, draft: CallbackDraft, *, policy: SlotPolicy, cap: int
                   ) -> CallbackRecord:
        return await self._run(lambda: self.book_sync(draft, policy=policy, cap=cap))

    def book_now_sync(self, draft: CallbackDraft, *, policy: SlotPolicy, cap: int
                      ) -> CallbackRecord:
        """"Call me now": a place in the slot under way (SlotFull when it has none left),
        due at once, retried for one slot length from now. The draft's slot is ignored."""
        now = self._now()
        return self._insert(draft, slot_start(now, policy.slot_s),
                            now + timedelta(seconds=policy.slot_s), now, now, cap)

    async def book_now(self, draft: CallbackDraft, *, policy: SlotPolicy, cap: int
                       ) -> CallbackRecord:
        return await self._run(lambda: self.book_now_sync(draft, policy=policy, cap=cap))

    def cancel_sync(self, callback_id: str) -> CallbackRecord:
        """Cancel a booked (or retrying) callback and free its place; a second cancel, or
        one while it is being dialled, is ``CallbackClosed``."""
        now = self._now()

        def tx() -> None:
            with self._engine.begin() as conn:
                row = conn.execute(select(callbacks.c.skill, callbacks.c.slot_start).where(
                    callbacks.c.id == callback_id)).first()
                if row is None:
                    raise UnknownCallback(f"no callback {callback_id}")
                done = conn.execute(update(callbacks).where(
                    callbacks.c.id == callback_id, callbacks.c.status.in_(_CANCELLABLE),
                    or_(callbacks.c.lease_until.is_(None), callbacks.c.lease_until < now),
                ).values(status=CallbackStatus.CANCELLED.value, outcome="cancelled",
                         updated_at=now, cancel_count=callbacks.c.cancel_count + 1))
                if done.rowcount != 1:
                    raise CallbackClosed(f"callback {callback_id} is not open to cancel")
                self._free_place(conn, row.skill, _utc(row.slot_start))
        self._guard(tx)
        return self.get_sync(callback_id)

    async def cancel(self, callback_id: str) -> CallbackRecord:
        return await self._run(lambda: self.cancel_sync(callback_id))

    def move_sync(self, callback_id: str, new_start: datetime, new_end: datetime, *,
                  policy: SlotPolicy, cap: int) -> CallbackRecord:
        """Move a booked callback to another slot: the new place is taken before the old
        one is freed (in one transaction), so a full target leaves the booking as it was."""
        now = self._now()
        start = _utc(new_start)
        check_booking(start, now, policy, booked=0, cap=cap)

        def tx() -> None:
            with self._engine.begin() as conn:
                row = conn.execute(select(callbacks).where(callbacks.c.id == callback_id)).first()
                if row is None:
                    raise UnknownCallback(f"no callback {callback_id}")
                if row.status != CallbackStatus.BOOKED.value:
                    raise CallbackClosed(f"callback {callback_id} is {row.status}: not movable")
                self._take_place(conn, row.skill, start, cap)
                moved = conn.execute(update(callbacks).where(
                    callbacks.c.id == callback_id,
                    callbacks.c.status == CallbackStatus.BOOKED.value,
                    or_(callbacks.c.lease_until.is_(None), callbacks.c.lease_until < now),
                ).values(slot_start=start, slot_end=_utc(new_end), next_attempt_at=start,
                         updated_at=now))
                if moved.rowcount != 1:
                    raise CallbackClosed(f"callback {callback_id} is being dialled")
                self._free_place(conn, row.skill, _utc(row.slot_start))
        self._guard(tx)
        return self.get_sync(callback_id)

    async def run_move(self, callback_id: str, new_start: datetime, new_end: datetime, *,
                       policy: SlotPolicy, cap: int) -> CallbackRecord:
        return await self._run(lambda: self.move_sync(callback_id, new_start, new_end,
                                                      policy=policy, cap=cap))

    # ---------------------------------------------------------- the dialer

    def claim_due_sync(self, owner: str, *, lease_s: float, limit: int = 10,
                       ) -> list[CallbackRecord]:
        """Take up to ``limit`` due callbacks whose lease is free; each is taken by exactly
        one claimer. A row left ``dialing`` by a dead node is due again once its lease
        has run out (the dialer then settles the interrupted attempt before any dial)."""
        now = self._now()
        until = now + timedelta(seconds=lease_s)
        free = or_(callbacks.c.lease_until.is_(None), callbacks.c.lease_until < now)
        due = (select(callbacks.c.id)
               .where(callbacks.c.status.in_(_CLAIMABLE), callbacks.c.next_attempt_at <= now,
                      free)
               .order_by(callbacks.c.next_attempt_at).limit(limit))
        take = update(callbacks).where(free).values(lease_owner=owner, lease_until=until)

        def pg() -> list[str]:
            with self._engine.begin() as conn:
                ids = list(conn.execute(due.with_for_update(skip_locked=True)).scalars())
                if ids:
                    conn.execute(take.where(callbacks.c.id.in_(ids)))
                return ids

        def lite() -> list[str]:
            with self._engine.connect() as conn:
                ids = list(conn.execute(due).scalars())
            taken = []
            for cid in ids:
                with self._engine.begin() as conn:
                    if conn.execute(take.where(callbacks.c.id == cid)).rowcount == 1:
                        taken.append(cid)
            return taken

        ids = self._guard(pg if self._pg else lite)
        return [self.get_sync(cid) for cid in ids]

    async def claim_due(self, owner: str, *, lease_s: float, limit: int = 10,
                        ) -> list[CallbackRecord]:
        return await self._run(lambda: self.claim_due_sync(owner, lease_s=lease_s, limit=limit))

    def _owned(self, callback_id: str, owner: str, now: datetime) -> Any:
        return (callbacks.c.id == callback_id, callbacks.c.lease_owner == owner,
                callbacks.c.lease_until >= now)

    def start_attempt_sync(self, callback_id: str, owner: str, *, lease_s: float) -> Attempt:
        """Write attempt N (status dialing, lease extended) before the dial; ``LeaseLost``
        if this owner no longer holds the lease. The channel id is unique per attempt, so
        a dial can be recognised (and never repeated) after a restart."""
        now = self._now()

        def tx() -> Attempt:
            with self._engine.begin() as conn:
                row = conn.execute(select(callbacks.c.attempts, callbacks.c.status).where(
                    *self._owned(callback_id, owner, now))).first()
                if row is None:
                    raise LeaseLost(f"lease on callback {callback_id} lost")
                history = list(row.attempts or ())
                n = len(history) + 1
                attempt = Attempt(n=n, started_at=now, node=owner,
                                  channel_id=f"kanaal-cb-{callback_id[:8]}-{n}")
                done = conn.execute(update(callbacks).where(
                    *self._owned(callback_id, owner, now)).values(
                    status=CallbackStatus.DIALING.value, attempt_count=n,
                    attempts=[*history, _attempt_json(attempt)], updated_at=now,
                    lease_until=now + timedelta(seconds=lease_s)))
                if done.rowcount != 1:
                    raise LeaseLost(f"lease on callback {callback_id} lost")
                return attempt
        return self._guard(tx)

    async def start_attempt(self, callback_id: str, owner: str, *, lease_s: float) -> Attempt:
        return await self._run(lambda: self.start_attempt_sync(callback_id, owner,
                                                               lease_s=lease_s))

    def finish_attempt_sync(self, callback_id: str, owner: str | None, *, outcome: str,
                            step: NextStep, agent: str | None = None) -> CallbackRecord:
        """Record the last attempt's outcome and the next step; the lease is released.

        ``owner=None`` settles an attempt a dead node left behind (after its lease expired
        and this node claimed the row, the claim's owner is passed instead)."""
        now = self._now()

        def tx() -> None:
            with self._engine.begin() as conn:
                conds = (callbacks.c.id == callback_id,) if owner is None else \
                    self._owned(callback_id, owner, now)
                row = conn.execute(select(callbacks.c.attempts).where(*conds)).first()
                if row is None:
                    raise LeaseLost(f"lease on callback {callback_id} lost")
                history = [_attempt(a) for a in (row.attempts or ())]
                if history and history[-1].outcome is None:
                    history[-1] = replace(history[-1], outcome=outcome, ended_at=now,
                                          agent=agent or history[-1].agent)
                values: dict[str, Any] = dict(
                    status=step.status.value, attempts=[_attempt_json(a) for a in history],
                    lease_owner=None, lease_until=None, updated_at=now, outcome=outcome)
                if step.retry_at is not None:
                    values["next_attempt_at"] = _utc(step.retry_at)
                conn.execute(update(callbacks).where(*conds).values(**values))
        self._guard(tx)
        return self.get_sync(callback_id)

    async def finish_attempt(self, callback_id: str, owner: str | None, *, outcome: str,
                             step: NextStep, agent: str | None = None) -> CallbackRecord:
        return await self._run(lambda: self.finish_attempt_sync(
            callback_id, owner, outcome=outcome, step=step, agent=agent))

    def postpone_sync(self, callback_id: str, owner: str, *, until: datetime
                      ) -> CallbackRecord:
        """Look again at ``until`` without touching the attempts (a dead node's call is
        still up in Asterisk); the lease is released."""
        now = self._now()

        def tx() -> None:
            with self._engine.begin() as conn:
                done = conn.execute(update(callbacks).where(
                    *self._owned(callback_id, owner, now)).values(
                    next_attempt_at=_utc(until), lease_owner=None, lease_until=None,
                    updated_at=now))
                if done.rowcount != 1:
                    raise LeaseLost(f"lease on callback {callback_id} lost")
        self._guard(tx)
        return self.get_sync(callback_id)

    async def postpone(self, callback_id: str, owner: str, *, until: datetime
                       ) -> CallbackRecord:
        return await self._run(lambda: self.postpone_sync(callback_id, owner, until=until))

    def renew_sync(self, callback_id: str, owner: str, *, lease_s: float) -> bool:
        """Extend this owner's lease (while a call is ringing or talking)."""
        now = self._now()

        def tx() -> bool:
            with self._engine.begin() as conn:
                return conn.execute(update(callbacks).where(
                    *self._owned(callback_id, owner, now)).values(
                    lease_until=now + timedelta(seconds=lease_s))).rowcount == 1
        return self._guard(tx)

    async def renew(self, callback_id: str, owner: str, *, lease_s: float) -> bool:
        return await self._run(lambda: self.renew_sync(callback_id, owner, lease_s=lease_s))

    def count_sync(self) -> dict[str, int]:
        """Callbacks per status (for ``ivr callbacks list`` totals)."""
        def q() -> dict[str, int]:
            stmt = select(callbacks.c.status, func.count()).group_by(callbacks.c.status)
            with self._engine.connect() as conn:
                return {str(s): int(n) for s, n in conn.execute(stmt)}
        return self._guard(q)
