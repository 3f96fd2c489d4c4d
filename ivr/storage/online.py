"""Online, then by phone: questions asked on the web or in chat, waiting for a call.

``create`` stores the question as a contact (channel web or chat, with the customer,
intent and text) and a ``phone_code`` contact event whose body is the short code; the
code expires ``ttl_s`` after it was made. The call that takes it over adds a
``phone_code_used`` event (the code stops working). No table of its own: both are on
the customer's timeline anyway.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, insert, or_, select
from sqlalchemy.engine import Connection, Engine

from ivr.domain.model import OnlineContact
from ivr.storage.outbox_tables import contact_events
from ivr.storage.repositories import _SqlAdapter
from ivr.storage.tables import contacts, customer_numbers, customers

CODE = "phone_code"
USED = "phone_code_used"
CODE_DIGITS = 6


class UnknownCustomer(LookupError):
    """No customer with that id or customer number."""


@dataclass(frozen=True, slots=True)
class Created:
    online: OnlineContact
    language: str
    number: str = ""  # the customer's first number ("" when the CRM has none)
    name: str = ""


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class SqlOnlineContacts(_SqlAdapter):
    """The ``OnlineContacts`` port and the API's ``create`` over contacts/contact_events."""

    def __init__(self, engine: Engine, *, ttl_s: int = 1800) -> None:
        super().__init__(engine)
        self._ttl = timedelta(seconds=ttl_s)

    # --- creating (the API) -------------------------------------------------------
    def create_sync(self, customer: str, intent: str, text: str, channel: str,
                    now: datetime | None = None) -> Created:
        """Store the question; raises UnknownCustomer. ``customer``: id or customer number."""
        now = _utc(now or datetime.now(UTC))
        with self._engine.begin() as conn:
            cust = self._customer(conn, customer)
            if cust is None:
                raise UnknownCustomer(customer)
            number = conn.execute(select(customer_numbers.c.number).where(
                customer_numbers.c.customer_id == cust.id).order_by(
                customer_numbers.c.number)).scalar() or ""
            code = self._free_code(conn, now)
            cid = uuid.uuid4().hex
            conn.execute(insert(contacts).values(
                id=cid, channel=channel, caller=number or channel, customer_id=cust.id,
                language=cust.language, started_at=now, question=text, intent=intent,
                transcript=[f"{channel}: {text}"], steps=[]))
            conn.execute(insert(contact_events).values(
                contact_id=cid, at=now, channel=channel, direction="in", address=number[:48],
                body=code, kind=CODE))
        return Created(OnlineContact(cid, code, cust.id, intent, text, now + self._ttl),
                       cust.language, number, cust.name)

    async def create(self, customer: str, intent: str, text: str, channel: str) -> Created:
        return await self._run(lambda: self.create_sync(customer, intent, text, channel))

    @staticmethod
    def _customer(conn: Connection, key: str) -> Any:
        c = customers.c
        cond = c.customer_no == key
        if key.isdigit() and len(key) < 10:
            cond = or_(cond, c.id == int(key))
        return conn.execute(select(c.id, c.language, c.name).where(cond)).first()

    def _free_code(self, conn: Connection, now: datetime) -> str:
        """A random code no open question has (a million codes, few open at a time)."""
        for _ in range(20):
            code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
            if conn.execute(self._open(now).where(contact_events.c.body == code)).first() is None:
                return code
        raise RuntimeError("no free phone code")

    # --- looking up (the call) ----------------------------------------------------
    def _open(self, now: datetime) -> Select[Any]:
        """Unexpired, unclaimed codes with their question, newest first."""
        e = contact_events.c
        used = select(contact_events.c.contact_id).where(contact_events.c.kind == USED)
        return (select(e.contact_id, e.body, e.at, contacts.c.customer_id, contacts.c.intent,
                       contacts.c.question)
                .select_from(contact_events.join(contacts, contacts.c.id == e.contact_id))
                .where(and_(e.kind == CODE, e.at >= now - self._ttl,
                            e.contact_id.not_in(used)))
                .order_by(e.at.desc()))

    def _found(self, row: Any) -> OnlineContact | None:
        if row is None:
            return None
        return OnlineContact(row.contact_id, row.body, row.customer_id, row.intent or "",
                             row.question or "", _utc(row.at) + self._ttl)

    def waiting_for_sync(self, number: str, now: datetime | None = None
                         ) -> OnlineContact | None:
        now = _utc(now or datetime.now(UTC))
        mine = select(customer_numbers.c.customer_id).where(
            customer_numbers.c.number == number)
        with self._engine.connect() as conn:
            row = conn.execute(self._open(now).where(or_(
                contacts.c.customer_id.in_(mine), contact_events.c.address == number))).first()
        return self._found(row)

    async def waiting_for(self, number: str) -> OnlineContact | None:
        return await self._run(lambda: self.waiting_for_sync(number))

    def by_code_sync(self, code: str, now: datetime | None = None) -> OnlineContact | None:
        now = _utc(now or datetime.now(UTC))
        with self._engine.connect() as conn:
            row = conn.execute(self._open(now).where(
                contact_events.c.body == code)).first()
        return self._found(row)

    async def by_code(self, code: str) -> OnlineContact | None:
        return await self._run(lambda: self.by_code_sync(code))

    def claim_sync(self, online: OnlineContact, call_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(contact_events).values(
                contact_id=online.contact_id, at=datetime.now(UTC), channel="voice",
                direction="in", address="", body=f"{online.code} call {call_id}"[:200],
                kind=USED))

    async def claim(self, online: OnlineContact, call_id: str) -> None:
        await self._run(lambda: self.claim_sync(online, call_id))
