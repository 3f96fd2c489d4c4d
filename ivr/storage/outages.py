"""Managed outages in SQL: what supervisors and the surge detector post, and the callers
who asked for an SMS when an outage changes or ends.

Blocking methods (``*_sync``) are for the CLI; the async ones run them in a worker
thread for the node. Life-cycle rules live in ``ivr.domain.outages``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ivr.domain.outages import (
    OutageDraft,
    OutageRecord,
    OutageSource,
    OutageStatus,
    UnknownOutage,
    check_move,
    check_window,
    clean_messages,
    clean_regions,
)
from ivr.storage.db import SyncStore
from ivr.storage.tables import contacts, customers, outage_subscribers, outages


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A caller waiting for news of an outage by SMS/WhatsApp."""

    number: str
    channel: str
    language: str
    contact_id: str | None


@dataclass(frozen=True, slots=True)
class OutageChange:
    """What an update changes; None leaves a field as it is (``clear_end`` removes the end)."""

    regions: Sequence[str] | None = None
    messages: Mapping[str, str] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    clear_end: bool = False


def _record(r: Any, subscribers: int = 0) -> OutageRecord:
    regions = tuple(r.regions or ([r.region] if r.region else []))
    starts = _aware(r.starts_at)
    assert starts is not None
    return OutageRecord(
        id=r.id, regions=regions, messages=dict(r.messages), starts_at=starts,
        ends_at=_aware(r.ends_at), status=OutageStatus(r.status),
        source=OutageSource(r.source), created_by=r.created_by or "",
        updated_at=_aware(r.updated_at), detail=dict(r.detail or {}), subscribers=subscribers)


class SqlOutageBoard(SyncStore):
    """Outages and their SMS subscribers (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(engine)
        self._now = now or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------------ reads

    def get_sync(self, outage_id: int) -> OutageRecord:
        def q() -> OutageRecord:
            with self._engine.connect() as conn:
                row = conn.execute(select(outages).where(outages.c.id == outage_id)).first()
                if row is None:
                    raise UnknownOutage(f"no outage {outage_id}")
                n = conn.execute(select(func.count()).select_from(outage_subscribers).where(
                    outage_subscribers.c.outage_id == outage_id)).scalar_one()
            return _record(row, int(n))
        return self._guard(q)

    def list_sync(self, *, include_ended: bool = False, limit: int = 200) -> list[OutageRecord]:
        """Newest first; ended and dismissed ones only with ``include_ended``."""
        def q() -> list[OutageRecord]:
            stmt = select(outages).order_by(outages.c.id.desc()).limit(limit)
            if not include_ended:
                stmt = stmt.where(outages.c.status.in_(("active", "pending")))
            counts = (select(outage_subscribers.c.outage_id, func.count().label("n"))
                      .group_by(outage_subscribers.c.outage_id))
            with self._engine.connect() as conn:
                rows = conn.execute(stmt).all()
                n = {r.outage_id: int(r.n) for r in conn.execute(counts)}
            now = self._now()
            found = [_record(r, n.get(r.id, 0)) for r in rows]
            if include_ended:
                return found
            return [o for o in found if o.state_at(now) != "ended"]
        return self._guard(q)

    def heard_sync(self, region: str | None, at: datetime) -> list[OutageRecord]:
        """Active outages callers from ``region`` hear at ``at`` (None: every region)."""
        when = at.astimezone(UTC)

        def q() -> list[OutageRecord]:
            with self._engine.connect() as conn:
                rows = conn.execute(select(outages).where(outages.c.status == "active")
                                    .where(outages.c.starts_at <= when)
                                    .order_by(outages.c.starts_at)).all()
            found = [_record(r) for r in rows]
            return [o for o in found if (o.ends_at is None or o.ends_at > when)
                    and (region is None or o.covers(region))]
        return self._guard(q)

    def subscribers_sync(self, outage_id: int) -> list[Subscriber]:
        def q() -> list[Subscriber]:
            with self._engine.connect() as conn:
                rows = conn.execute(select(outage_subscribers).where(
                    outage_subscribers.c.outage_id == outage_id)
                    .order_by(outage_subscribers.c.id)).all()
            return [Subscriber(r.number, r.channel, r.language, r.contact_id) for r in rows]
        return self._guard(q)

    # ----------------------------------------------------------------- writes

    def add_sync(self, d: OutageDraft) -> OutageRecord:
        now = self._now()

        def q() -> int:
            with self._engine.begin() as conn:
                return int(conn.execute(insert(outages).values(
                    region=d.regions[0], regions=list(d.regions), messages=dict(d.messages),
                    starts_at=d.starts_at.astimezone(UTC),
                    ends_at=d.ends_at.astimezone(UTC) if d.ends_at else None,
                    status=d.status.value, source=d.source.value, created_by=d.created_by,
                    updated_at=now, detail=dict(d.detail) or None,
                ).returning(outages.c.id)).scalar_one())
        return self.get_sync(self._guard(q))

    def update_sync(self, outage_id: int, change: OutageChange) -> OutageRecord:
        """Change regions, messages or the window of a pending or active outage."""
        current = self.get_sync(outage_id)
        check_move(current, "update", self._now())
        values: dict[str, Any] = {"updated_at": self._now()}
        if change.regions is not None:
            regions = clean_regions(change.regions)
            values.update(regions=list(regions), region=regions[0])
        if change.messages is not None:
            merged = {**current.messages, **change.messages}
            values["messages"] = clean_messages(merged)
        starts = change.starts_at or current.starts_at
        ends = None if change.clear_end else (change.ends_at or current.ends_at)
        check_window(starts, ends)
        if change.starts_at is not None:
            values["starts_at"] = starts.astimezone(UTC)
        if change.ends_at is not None or change.clear_end:
            values["ends_at"] = ends.astimezone(UTC) if ends else None
        self._write(outage_id, values)
        return self.get_sync(outage_id)

    def end_sync(self, outage_id: int, *, at: datetime | None = None) -> OutageRecord:
        """End it now (callers stop hearing it at once); kept for the record."""
        now = at or self._now()
        check_move(self.get_sync(outage_id), "end", now)
        self._write(outage_id, {"status": OutageStatus.ENDED.value,
                                "ends_at": now.astimezone(UTC), "updated_at": now})
        return self.get_sync(outage_id)

    def confirm_sync(self, outage_id: int, *, by: str = "") -> OutageRecord:
        """A supervisor confirms a surge's pending announcement: callers hear it now."""
        now = self._now()
        current = self.get_sync(outage_id)
        check_move(current, "confirm", now)
        detail = {**current.detail, "confirmed_by": by}
        self._write(outage_id, {"status": OutageStatus.ACTIVE.value,
                                "starts_at": min(current.starts_at, now).astimezone(UTC),
                                "updated_at": now, "detail": detail})
        return self.get_sync(outage_id)

    def dismiss_sync(self, outage_id: int, *, by: str = "") -> OutageRecord:
        now = self._now()
        current = self.get_sync(outage_id)
        check_move(current, "dismiss", now)
        detail = {**current.detail, "dismissed_by": by}
        self._write(outage_id, {"status": OutageStatus.DISMISSED.value, "ends_at": now,
                                "updated_at": now, "detail": detail})
        return self.get_sync(outage_id)

    def _write(self, outage_id: int, values: dict[str, Any]) -> None:
        def q() -> None:
            with self._engine.begin() as conn:
                conn.execute(update(outages).where(outages.c.id == outage_id).values(**values))
        self._guard(q)

    def subscribe_sync(self, outage_id: int, *, number: str, channel: str, language: str,
                       contact_id: str | None) -> bool:
        """Remember a caller for news of the outage; False if they already were."""
        def q() -> bool:
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(outage_subscribers).values(
                        outage_id=outage_id, number=number, channel=channel,
                        language=language, contact_id=contact_id, created_at=self._now()))
            except IntegrityError:
                return False
            return True
        return self._guard(q)

    def delete_sync(self, outage_id: int) -> None:
        """Only for tests and clean-up: the record is normally kept."""
        def q() -> None:
            with self._engine.begin() as conn:
                conn.execute(delete(outages).where(outages.c.id == outage_id))
        self._guard(q)

    def contact_history_sync(self, since: datetime
                             ) -> list[tuple[datetime, str, str | None, str | None]]:
        """Every contact since ``since``, oldest first: (started_at, caller, the
        customer's region or None, intent) -- what the surge detector learns from."""
        def q() -> list[tuple[datetime, str, str | None, str | None]]:
            stmt = (select(contacts.c.started_at, contacts.c.caller, customers.c.region,
                           contacts.c.intent)
                    .select_from(contacts.outerjoin(
                        customers, customers.c.id == contacts.c.customer_id))
                    .where(contacts.c.started_at >= since.astimezone(UTC))
                    .order_by(contacts.c.started_at))
            with self._engine.connect() as conn:
                return [(_aware(r.started_at) or since, r.caller, r.region or None, r.intent)
                        for r in conn.execute(stmt)]
        return self._guard(q)

    # ------------------------------------------------------------------ async

    async def get(self, outage_id: int) -> OutageRecord:
        return await self._run(lambda: self.get_sync(outage_id))

    async def listing(self, *, include_ended: bool = False) -> list[OutageRecord]:
        return await self._run(lambda: self.list_sync(include_ended=include_ended))

    async def add(self, d: OutageDraft) -> OutageRecord:
        return await self._run(lambda: self.add_sync(d))

    async def update(self, outage_id: int, change: OutageChange) -> OutageRecord:
        return await self._run(lambda: self.update_sync(outage_id, change))

    async def end(self, outage_id: int) -> OutageRecord:
        return await self._run(lambda: self.end_sync(outage_id))

    async def confirm(self, outage_id: int, *, by: str = "") -> OutageRecord:
        return await self._run(lambda: self.confirm_sync(outage_id, by=by))

    async def dismiss(self, outage_id: int, *, by: str = "") -> OutageRecord:
        return await self._run(lambda: self.dismiss_sync(outage_id, by=by))

    async def subscribers(self, outage_id: int) -> list[Subscriber]:
        return await self._run(lambda: self.subscribers_sync(outage_id))
