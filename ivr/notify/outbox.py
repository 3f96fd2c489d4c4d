"""Durable message outbox: write first, send from a worker, retry, never duplicate.

Life of a row (``ivr.storage.outbox_tables.outbox``)::

    pending --claim--> sending --accepted--> accepted   (SID recorded atomically
       ^                  |                              with the history event)
       |   transient /    +--permanent error--> failed
       +-- uncertain -----+

* The row is committed before any network I/O, so a crash never loses a message.
* A claim is a conditional ``UPDATE ... WHERE state='pending'``: one sender per row
  even with several workers on one database.
* Transient errors (5xx, 429, connect errors) go back to pending with exponential
  backoff. Outcomes where the request may have reached the provider without the
  answer reaching us (read timeout, reset, crash while ``sending``) set
  ``uncertain``; before the next attempt the transport looks the message up at the
  provider (``find_existing``) and adopts its SID instead of sending again.
* A row stuck in ``sending`` longer than ``lease_s`` belongs to a crashed worker and
  is put back to pending (uncertain). This also runs at start-up: pending rows are
  resumed, in-flight ones reconciled.

The remaining duplicate window is a crash/timeout where the provider accepted the
message but does not list it yet (or a template message whose rendered body cannot
be matched): then the row is sent again. See ``TwilioTransport`` for details.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, insert, select, update

from ivr.storage.outbox_tables import contact_events, outbox
from ivr.storage.tables import contacts

log = logging.getLogger(__name__)

# Twilio message statuses in the order they can happen; callbacks may arrive out of
# order (each is its own HTTP request), so a status never moves a row backwards.
_STATUS_RANK = {
    "accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "receiving": 1, "received": 4, "read": 5,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; they are UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class SendKind(enum.StrEnum):
    ACCEPTED = "accepted"  # provider took it; ``sid`` set
    TRANSIENT = "transient"  # not sent; safe to retry
    UNCERTAIN = "uncertain"  # may have been sent; look it up before retrying
    PERMANENT = "permanent"  # will never succeed for this row


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one send attempt (or lookup) came to."""

    kind: SendKind
    sid: str | None = None
    status: str | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """An outbox row as the transport needs it."""

    id: str
    channel: str
    to: str
    from_: str
    body: str
    content_sid: str | None
    content_variables: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    uncertain: bool
    message_sid: str | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """Read model of an outbox row (tests, webhooks, the demo)."""

    id: str
    contact_id: str | None
    channel: str
    to: str
    state: str
    attempts: int
    uncertain: bool
    message_sid: str | None
    twilio_status: str | None
    error_code: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """One text message in a contact's cross-channel history."""

    contact_id: str | None
    at: datetime
    channel: str
    direction: str
    address: str
    body: str
    message_sid: str | None


class MessageTransport(Protocol):
    """Vendor side of the outbox. Both methods are blocking; they run in worker threads."""

    def send(self, message: OutgoingMessage) -> SendResult:
        """One attempt at the provider, classified; errors are results, never raised.

        UNCERTAIN means the request may have gone out (a reset or read timeout):
        the outbox then calls :meth:`find_existing` before sending again.
        """

    def find_existing(self, message: OutgoingMessage) -> SendResult | None:
        """The provider's record of this message if an earlier attempt got through."""


class OutboxStore:
    """Blocking SQL operations on the outbox tables (call them via ``asyncio.to_thread``)."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now

    def insert(
        self,
        *,
        contact_id: str | None,
        channel: str,
        to: str,
        from_: str,
        body: str,
        language: str,
        content_sid: str | None = None,
        content_variables: Mapping[str, str] | None = None,
        row_id: str | None = None,
    ) -> str:
        """Write a pending row (committed on return) and give its id."""
        row_id = row_id or str(uuid.uuid4())
        now = self._now()
        with self._engine.begin() as conn:
            conn.execute(insert(outbox).values(
                id=row_id, contact_id=contact_id, channel=channel, to_addr=to,
                from_addr=from_, body=body, content_sid=content_sid,
                content_variables=json.dumps(dict(content_variables))
                if content_variables is not None else None,
                language=language, state="pending", attempts=0, uncertain=0,
                next_attempt_at=now, created_at=now, updated_at=now,
            ))
        return row_id

    def due(self, limit: int) -> list[str]:
        """Ids of pending rows whose next attempt is due, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.id)
                .where(and_(outbox.c.state == "pending", outbox.c.next_attempt_at <= self._now()))
                .order_by(outbox.c.next_attempt_at)
                .limit(limit)
            )
            return [r.id for r in rows]

    def next_due_at(self) -> datetime | None:
        """When the earliest pending row becomes due (None if there is none)."""
        with self._engine.connect() as conn:
            value = conn.execute(
                select(outbox.c.next_attempt_at)
                .where(outbox.c.state == "pending")
                .order_by(outbox.c.next_attempt_at)
                .limit(1)
            ).scalar()
        return _aware(value)

    def claim(self, row_id: str) -> OutgoingMessage | None:
        """Move a pending row to sending; None if someone else has it."""
        now = self._now()
        with self._engine.begin() as conn:
            res = conn.execute(
                update(outbox)
                .where(and_(outbox.c.id == row_id, outbox.c.state == "pending"))
                .values(state="sending", attempts=outbox.c.attempts + 1,
                        last_attempt_at=now, updated_at=now)
            )
            if res.rowcount != 1:
                return None
            r = conn.execute(select(outbox).where(outbox.c.id == row_id)).one()
        return OutgoingMessage(
            id=r.id, channel=r.channel, to=r.to_addr, from_=r.from_addr, body=r.body,
            content_sid=r.content_sid, content_variables=r.content_variables,
            created_at=_aware(r.created_at) or now, last_attempt_at=now,
            uncertain=bool(r.uncertain), message_sid=r.message_sid,
        )

    def mark_accepted(self, row_id: str, sid: str, status: str | None) -> None:
        """Record the SID and the history event in one transaction."""
        now = self._now()
        with self._engine.begin() as conn:
            r = conn.execute(select(outbox).where(outbox.c.id == row_id)).one()
            values: dict[str, Any] = {"state": "accepted", "message_sid": sid, "uncertain": 0,
                                      "error_code": None, "error": None, "updated_at": now}
            if status and _STATUS_RANK.get(status, 0) >= _STATUS_RANK.get(r.twilio_status, -1):
                values["twilio_status"] = status
            conn.execute(update(outbox).where(outbox.c.id == row_id).values(**values))
            already = conn.execute(
                select(contact_events.c.id).where(and_(
                    contact_events.c.outbox_id == row_id, contact_events.c.direction == "out"))
            ).first()
            if already is None:
                conn.execute(insert(contact_events).values(
                    contact_id=r.contact_id, at=now, channel=r.channel, direction="out",
                    address=r.to_addr, body=r.body, message_sid=sid, outbox_id=row_id,
                ))

    def mark_retry(self, row_id: str, *, delay_s: float, uncertain: bool,
                   error_code: str | None, error: str | None) -> None:
        """Back to pending after a transient failure."""
        now = self._now()
        values: dict[str, Any] = {
            "state": "pending", "next_attempt_at": now + timedelta(seconds=delay_s),
            "error_code": error_code, "error": error, "updated_at": now,
        }
        if uncertain:
            # Never clear the flag here: an earlier attempt may still have got through.
            values["uncertain"] = 1
        with self._engine.begin() as conn:
            conn.execute(update(outbox).where(
                and_(outbox.c.id == row_id, outbox.c.state == "sending")).values(**values))

    def mark_failed(self, row_id: str, *, error_code: str | None, error: str | None) -> None:
        """Final failure: the row is never sent again."""
        with self._engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == row_id).values(
                state="failed", error_code=error_code, error=error, updated_at=self._now()))

    def recover_stale(self, lease_s: float) -> int:
        """Rows left in ``sending`` by a crashed worker go back to pending, uncertain."""
        now = self._now()
        with self._engine.begin() as conn:
            res = conn.execute(
                update(outbox)
                .where(and_(outbox.c.state == "sending",
                            outbox.c.last_attempt_at <= now - timedelta(seconds=lease_s)))
                .values(state="pending", uncertain=1, next_attempt_at=now, updated_at=now)
            )
            return int(res.rowcount or 0)

    def get(self, row_id: str) -> OutboxRow | None:
        with self._engine.connect() as conn:
            r = conn.execute(select(outbox).where(outbox.c.id == row_id)).first()
        return None if r is None else _row(r)

    def rows(self) -> list[OutboxRow]:
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(outbox).order_by(outbox.c.created_at))]

    def apply_status(self, *, row_id: str | None, sid: str, status: str,
                     error_code: str | None) -> bool:
        """Apply a status callback; False when no row matches. Never moves status back."""
        now = self._now()
        with self._engine.begin() as conn:
            r = None
            if row_id:
                r = conn.execute(select(outbox).where(outbox.c.id == row_id)).first()
            if r is None and sid:
                r = conn.execute(select(outbox).where(outbox.c.message_sid == sid)).first()
            if r is None:
                return False
            values: dict[str, Any] = {"updated_at": now}
            if r.message_sid is None and sid:
                # The callback beat the API response (or we crashed before recording
                # the SID): adopting it here means the row is never sent twice.
                values["message_sid"] = sid
            if _STATUS_RANK.get(status, 0) >= _STATUS_RANK.get(r.twilio_status, -1):
                values["twilio_status"] = status
                if status in ("failed", "undelivered") and error_code:
                    values["error_code"] = error_code
            conn.execute(update(outbox).where(outbox.c.id == r.id).values(**values))
        return True

    def record_inbound(self, *, address: str, channel: str, body: str, sid: str,
                       replied_sid: str | None, recent_days: int = 7) -> str | None:
        """Store an inbound reply on the contact it belongs to; returns that contact id.

        Order: the message it replies to (WhatsApp ``OriginalRepliedMessageSid``),
        the latest message we sent to this number within ``recent_days``, the
        latest contact from this number. Duplicate webhooks (same SID) are ignored.
        """
        now = self._now()
        with self._engine.begin() as conn:
            dup = conn.execute(select(contact_events.c.contact_id).where(and_(
                contact_events.c.message_sid == sid, contact_events.c.direction == "in"))).first()
            if dup is not None:
                return str(dup.contact_id) if dup.contact_id is not None else None
            contact_id = None
            if replied_sid:
                contact_id = conn.execute(select(outbox.c.contact_id).where(
                    outbox.c.message_sid == replied_sid)).scalar()
            if contact_id is None:
                contact_id = conn.execute(
                    select(outbox.c.contact_id)
                    .where(and_(outbox.c.to_addr == address, outbox.c.contact_id.is_not(None),
                                outbox.c.created_at >= now - timedelta(days=recent_days)))
                    .order_by(outbox.c.created_at.desc()).limit(1)
                ).scalar()
            if contact_id is None:
                contact_id = conn.execute(
                    select(contacts.c.id).where(contacts.c.caller == address)
                    .order_by(contacts.c.started_at.desc()).limit(1)
                ).scalar()
            conn.execute(insert(contact_events).values(
                contact_id=contact_id, at=now, channel=channel, direction="in",
                address=address, body=body, message_sid=sid, outbox_id=None))
        return contact_id

    def events(self, contact_id: str) -> list[ContactEvent]:
        """A contact's text history, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(contact_events)
                                .where(contact_events.c.contact_id == contact_id)
                                .order_by(contact_events.c.at, contact_events.c.id))
            return [ContactEvent(contact_id=r.contact_id, at=_aware(r.at) or r.at,
                                 channel=r.channel, direction=r.direction, address=r.address,
                                 body=r.body, message_sid=r.message_sid) for r in rows]


def _row(r: Any) -> OutboxRow:
    return OutboxRow(
        id=r.id, contact_id=r.contact_id, channel=r.channel, to=r.to_addr, state=r.state,
        attempts=r.attempts, uncertain=bool(r.uncertain), message_sid=r.message_sid,
        twilio_status=r.twilio_status, error_code=r.error_code, error=r.error,
    )


class Outbox:
    """The worker: sends due rows through a transport with retries and backoff.

    Run :meth:`run` as a long-lived task (inside the app's TaskGroup). Callers add
    rows with :meth:`enqueue` and may wait for the first attempt's outcome with
    :meth:`first_outcome`.
    """

    def __init__(
        self,
        *,
        store: OutboxStore,
        transport: MessageTransport,
        max_attempts: int = 8,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        lease_s: float = 60.0,
        concurrency: int = 4,
        poll_s: float = 5.0,
    ) -> None:
        self.store = store
        self._transport = transport
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._lease_s = lease_s
        self._concurrency = concurrency
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._inflight: set[str] = set()
        self._waiters: dict[str, asyncio.Future[SendResult]] = {}

    async def enqueue(self, **row: Any) -> str:
        """Persist a message (see ``OutboxStore.insert``) and wake the worker."""
        row_id = str(uuid.uuid4())
        # Register the waiter before the row exists: a worker polling concurrently
        # may pick the row up and finish its first attempt before we resume here.
        self._waiters[row_id] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.to_thread(lambda: self.store.insert(row_id=row_id, **row))
        except BaseException:
            self._waiters.pop(row_id, None)
            raise
        self._wake.set()
        return row_id

    async def first_outcome(self, row_id: str, timeout_s: float) -> SendResult | None:
        """Outcome of the row's first attempt, or None if it takes longer than ``timeout_s``."""
        fut = self._waiters.get(row_id)
        if fut is None:
            return None
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(fut)
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(row_id, None)

    async def run(self) -> None:
        """Send forever (until cancelled). Resumes pending and crashed rows at start."""
        slots = asyncio.Semaphore(self._concurrency)
        async with asyncio.TaskGroup() as tg:
            while True:
                try:
                    recovered = await asyncio.to_thread(self.store.recover_stale, self._lease_s)
                    if recovered:
                        log.warning("outbox: %d in-flight rows from a crashed worker resumed",
                                    recovered)
                    due = await asyncio.to_thread(self.store.due, self._concurrency * 4)
                except Exception as exc:  # DB down: keep the worker alive, try again later
                    # One line per poll, not a traceback a second for a known outage.
                    log.warning("outbox: database error while polling: %s",
                                (str(exc).splitlines() or [type(exc).__name__])[0])
                    due = []
                for row_id in due:
                    if row_id in self._inflight:
                        continue
                    await slots.acquire()
                    self._inflight.add(row_id)
                    tg.create_task(self._attempt(row_id, slots))
                await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        timeout = self._poll_s
        try:
            nxt = await asyncio.to_thread(self.store.next_due_at)
        except Exception:
            nxt = None
        if nxt is not None:
            timeout = min(timeout, max(0.0, (nxt - utcnow()).total_seconds()))
        self._wake.clear()
        if timeout > 0:
            # asyncio.timeout rather than wait_for: 3.11's wait_for can swallow a
            # cancellation that races with its timeout, leaving shutdown hanging.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _attempt(self, row_id: str, slots: asyncio.Semaphore) -> None:
        result = SendResult(SendKind.TRANSIENT, error="internal error")
        try:
            result = await self._attempt_inner(row_id)
        except Exception as exc:  # never let one row kill the worker's TaskGroup
            log.exception("outbox: attempt for %s failed", row_id)
            result = SendResult(SendKind.UNCERTAIN, error=repr(exc))
        finally:
            self._inflight.discard(row_id)
            slots.release()
            fut = self._waiters.get(row_id)
            if fut is not None and not fut.done():
                fut.set_result(result)
            self._wake.set()

    async def _attempt_inner(self, row_id: str) -> SendResult:
        msg = await asyncio.to_thread(self.store.claim, row_id)
        if msg is None:
            return SendResult(SendKind.TRANSIENT, error="claimed elsewhere")
        if msg.message_sid:  # a status callback already told us the SID
            await asyncio.to_thread(self.store.mark_accepted, row_id, msg.message_sid, None)
            return SendResult(SendKind.ACCEPTED, sid=msg.message_sid)
        result: SendResult | None = None
        if msg.uncertain:
            try:
                result = await asyncio.to_thread(self._transport.find_existing, msg)
            except Exception as exc:
                # Cannot see whether it went out: do not resend blind, try again later.
                result = SendResult(SendKind.UNCERTAIN, error=f"lookup failed: {exc!r}")
            else:
                if result is not None:
                    log.info("outbox: %s was already accepted as %s; not resending",
                             row_id, result.sid)
        if result is None:
            result = await asyncio.to_thread(self._transport.send, msg)
        await self._record(row_id, result)
        return result

    async def _record(self, row_id: str, result: SendResult) -> None:
        row = await asyncio.to_thread(self.store.get, row_id)
        attempts = row.attempts if row else self._max_attempts
        if result.kind is SendKind.ACCEPTED and result.sid:
            await asyncio.to_thread(self.store.mark_accepted, row_id, result.sid, result.status)
        elif result.kind is SendKind.PERMANENT:
            await asyncio.to_thread(self.store.mark_failed, row_id,
                                    error_code=result.error_code, error=result.error)
        elif attempts >= self._max_attempts:
            await asyncio.to_thread(self.store.mark_failed, row_id, error_code=result.error_code,
                                    error=f"gave up after {attempts} attempts: {result.error}")
        else:
            delay = min(self._backoff_max_s, self._backoff_base_s * 2 ** max(0, attempts - 1))
            delay *= random.uniform(0.75, 1.0)  # jitter: restarts do not retry in lockstep
            await asyncio.to_thread(
                self.store.mark_retry, row_id, delay_s=delay,
                uncertain=result.kind is SendKind.UNCERTAIN,
                error_code=result.error_code, error=result.error,
            )
