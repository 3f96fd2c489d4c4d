"""The customer timeline from ``contacts``, ``contact_events`` and ``outbox``; recording
what the web side sees (a link opened, a chat started, self-service completed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, bindparam, insert, or_, select
from sqlalchemy.engine import Connection

from ivr.domain.timeline import (
    CONTACT,
    EVENT_KINDS,
    TimelineEntry,
    contact_summary,
    merge_timeline,
)
from ivr.storage.outbox_tables import contact_events, outbox
from ivr.storage.repositories import _SqlAdapter
from ivr.storage.tables import contacts, customer_numbers


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _contacts_stmt() -> Any:
    c = contacts.c
    return (select(c.id, c.channel, c.started_at, c.ended_at, c.intent, c.outcome,
                   c.scenario, c.skill, c.question, c.agent_interface, c.queue_wait_s,
                   c.talk_s, c.csat, c.wrapup_code)
            .where(c.customer_id == bindparam("customer_id"))
            .order_by(c.started_at.desc()).limit(bindparam("limit", type_=Integer)))


def _events_stmt() -> Any:
    e = contact_events.c
    mine = select(contacts.c.id).where(contacts.c.customer_id == bindparam("customer_id"))
    numbers = select(customer_numbers.c.number).where(
        customer_numbers.c.customer_id == bindparam("customer_id"))
    return (select(e.at, e.kind, e.channel, e.direction, e.contact_id, e.body,
                   outbox.c.twilio_status, outbox.c.state, outbox.c.error_code)
            .select_from(contact_events.outerjoin(outbox, outbox.c.id == e.outbox_id))
            .where(or_(e.contact_id.in_(mine), e.address.in_(numbers)))
            .order_by(e.at.desc()).limit(bindparam("limit", type_=Integer)))


# Built once: building a select() per call cost ~0.3-0.6 ms each (see repositories).
_CONTACTS = _contacts_stmt()
_EVENTS = _events_stmt()


class SqlTimeline(_SqlAdapter):
    """Reads a customer's timeline; records web-side events on a contact."""

    def _contacts(self, conn: Connection, customer_id: int, limit: int
                  ) -> list[TimelineEntry]:
        rows = conn.execute(_CONTACTS, {"customer_id": customer_id, "limit": limit})
        return [TimelineEntry(
            at=_utc(r.started_at), kind=CONTACT, channel=r.channel, contact_id=r.id,
            summary=contact_summary(r.intent, r.outcome, r.scenario),
            detail={k: v for k, v in {
                "question": r.question, "skill": r.skill, "agent": r.agent_interface,
                "wait_s": r.queue_wait_s, "talk_s": r.talk_s, "csat": r.csat,
                "wrapup": r.wrapup_code,
                "ended_at": _utc(r.ended_at).isoformat() if r.ended_at else None,
            }.items() if v is not None}) for r in rows]

    def _events(self, conn: Connection, customer_id: int, limit: int) -> list[TimelineEntry]:
        rows = conn.execute(_EVENTS, {"customer_id": customer_id, "limit": limit})
        out = []
        for r in rows:
            detail: dict[str, Any] = {}
            if r.direction == "out" and r.kind == "message":
                # Twilio's callback status when one came, else the outbox's own state.
                detail["status"] = r.twilio_status or r.state
                if r.error_code:
                    detail["error_code"] = r.error_code
            out.append(TimelineEntry(at=_utc(r.at), kind=r.kind, channel=r.channel,
                                     contact_id=r.contact_id, direction=r.direction,
                                     summary=r.body[:160], detail=detail))
        return out

    def timeline_sync(self, customer_id: int, limit: int = 50) -> list[TimelineEntry]:
        with self._reads.connect() as conn:
            return merge_timeline(self._contacts(conn, customer_id, limit),
                                  self._events(conn, customer_id, limit), limit=limit)

    async def timeline(self, customer_id: int, limit: int = 50) -> list[TimelineEntry]:
        """The customer's contacts and messages, newest first."""
        return await self._run(lambda: self.timeline_sync(customer_id, limit))

    def record_sync(self, contact_id: str, kind: str, body: str, *,
                    channel: str = "web", at: datetime | None = None) -> bool:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown timeline event kind {kind!r}")
        with self._engine.begin() as conn:
            caller = conn.execute(select(contacts.c.caller).where(
                contacts.c.id == contact_id)).scalar()
            if caller is None:
                return False
            conn.execute(insert(contact_events).values(
                contact_id=contact_id, at=at or datetime.now(UTC), channel=channel,
                direction="in", address=caller[:48], body=body, kind=kind))
        return True

    async def record(self, contact_id: str, kind: str, body: str, *,
                     channel: str = "web") -> bool:
        """Note a web-side event on a stored contact; False if the contact is unknown."""
        return await self._run(lambda: self.record_sync(contact_id, kind, body,
                                                        channel=channel))
