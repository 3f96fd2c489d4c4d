"""Queries behind the agent desktop, the supervisor console and the health endpoints.

Wrap-ups written by agents, the recent-contacts list, the outbox backlog and the
database probe. Synchronous methods, run in worker threads by the web layer
(:meth:`SqlDeskStore.call`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import func, select, text, update

from ivr.storage.outbox_tables import outbox
from ivr.storage.repositories import _SqlAdapter
from ivr.storage.tables import contacts, customers

P = ParamSpec("P")
T = TypeVar("T")
# Outbox rows not yet handed to Twilio: "pending" waits for its turn (or a retry),
# "sending" is in flight (or was, on a node that died: recovered after a lease).
BACKLOG_STATES = ("pending", "sending")


@dataclass(frozen=True, slots=True)
class RecentContact:
    """One row of the supervisor's recent-contacts list."""

    session: str
    channel: str
    caller: str
    customer: str | None
    started_at: datetime
    intent: str | None
    scenario: str | None
    skill: str | None
    outcome: str | None
    dropped_at: str | None
    wrapup_code: str | None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class SqlDeskStore(_SqlAdapter):
    """Wrap-ups, recent contacts, outbox backlog and the health probe."""

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one of the synchronous methods in a worker thread (errors become PortError)."""
        return await self._run(lambda: fn(*args, **kwargs))

    def save_wrapup(self, session: str, code: str, note: str | None) -> bool:
        """Store the agent's wrap-up on the contact; False when there is no such contact.

        Separate columns the flow never writes, so the contact log's upserts (which
        set only the flow's fields) cannot overwrite a wrap-up.
        """
        with self._engine.begin() as conn:
            result = conn.execute(update(contacts).where(contacts.c.id == session)
                                  .values(wrapup_code=code, wrapup_note=note or None))
        return bool(result.rowcount)

    def wrapup(self, session: str) -> tuple[str | None, str | None] | None:
        """(code, note) of a contact; None when there is no such contact."""
        with self._engine.connect() as conn:
            row = conn.execute(select(contacts.c.wrapup_code, contacts.c.wrapup_note)
                               .where(contacts.c.id == session)).first()
        return None if row is None else (row.wrapup_code, row.wrapup_note)

    def recent_contacts(self, limit: int = 50) -> list[RecentContact]:
        """The newest contacts with the customer's name, newest first."""
        stmt = (select(contacts.c.id, contacts.c.channel, contacts.c.caller,
                       customers.c.name, contacts.c.started_at, contacts.c.intent,
                       contacts.c.scenario, contacts.c.skill, contacts.c.outcome,
                       contacts.c.dropped_at, contacts.c.wrapup_code)
                .select_from(contacts.outerjoin(customers,
                                                customers.c.id == contacts.c.customer_id))
                .order_by(contacts.c.started_at.desc()).limit(limit))
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [RecentContact(r.id, r.channel, r.caller, r.name, _utc(r.started_at), r.intent,
                              r.scenario, r.skill, r.outcome, r.dropped_at, r.wrapup_code)
                for r in rows]

    def outbox_backlog(self) -> dict[str, int]:
        """Messages per backlog state (every state present, zero when none)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(outbox.c.state, func.count())
                                .where(outbox.c.state.in_(BACKLOG_STATES))
                                .group_by(outbox.c.state)).all()
        counts: dict[str, int] = dict.fromkeys(BACKLOG_STATES, 0)
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts

    def probe(self) -> str | None:
        """The schema revision: proves the database answers *and* is migrated.

        A bare ``SELECT 1`` would pass on an empty SQLite file that replaced a deleted
        database, which serves no call.
        """
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            value: Any = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)
