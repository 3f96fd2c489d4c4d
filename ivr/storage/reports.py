"""Report queries: contacts as :class:`~ivr.domain.reports.ContactFact` rows, and the
daily rollups that keep a 30-day report fast on a million contacts.

A UTC day, or an hour of a day not yet closed, is *sealed* (tallied once into
``report_rollups`` and marked in ``report_buckets``) when a report first needs it
and it ended more than ``settle`` ago; later changes to its contacts (a CSAT
reply, AgentComplete's talk time) call :meth:`SqlReportStore.reopen`, and the
next report re-tallies it. Only the last hour and partial hours at the window's
edges are read raw (grouped in SQL).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Engine,
    and_,
    cast,
    delete,
    distinct,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ivr.domain.reports import (
    SERVICE_LEVEL_S,
    Bucket,
    ContactFact,
    Report,
    StepCount,
    Tally,
    add_entries,
    build_report,
    plan_buckets,
    tally_by_day,
)
from ivr.storage.repositories import _SqlAdapter
from ivr.storage.tables import contacts, report_buckets, report_rollups

REPEAT_WINDOW = timedelta(days=7)
# An hour is rolled up once it ended this long ago: calls still running in it are
# saved step by step, and few last longer. Later changes (talk time, CSAT) reopen it.
SETTLE = timedelta(minutes=15)
Clock = Callable[[], datetime]


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _in_ranges(col: Any, ranges: list[tuple[datetime, datetime]]) -> Any:
    return or_(*(and_(col >= _utc(lo), col < _utc(hi)) for lo, hi in ranges))


def _positions(count: int) -> list[Any]:
    # GROUP BY 1, 2, ...: the EXISTS and JSON expressions are not repeated (nor re-run).
    return [literal_column(str(i)) for i in range(1, count + 1)]


def _runs(buckets: list[Bucket]) -> list[tuple[int, datetime, datetime]]:
    """Consecutive buckets of one size merged: ``(hours, start, end)`` per run."""
    runs: list[tuple[int, datetime, datetime]] = []
    for b in buckets:
        lo, hi = b.bounds
        if runs and runs[-1][0] == b.hours and runs[-1][2] == lo:
            runs[-1] = (b.hours, runs[-1][1], hi)
        else:
            runs.append((b.hours, lo, hi))
    return runs


def _as_date(value: Any) -> date:
    # SQLite's date() gives text, PostgreSQL a date.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


class SqlReportStore(_SqlAdapter):
    """Reports over ``contacts`` with daily rollups (see the module docstring)."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None,
                 settle: timedelta = SETTLE) -> None:
        super().__init__(engine)
        self._now = clock or (lambda: datetime.now(UTC))
        self._settle = settle
        self._sqlite = engine.dialect.name == "sqlite"
        # runs of buckets -> (their seal marks, summed tally, intents per day)
        self._cache: dict[tuple[Any, ...], tuple[tuple[Any, ...], Tally,
                                                 dict[date, dict[str, int]]]] = {}

    # ------------------------------------------------------------ facts
    def _day_expr(self, col: Any) -> Any:
        # Days are UTC (stored times are UTC).
        if self._sqlite:
            return func.date(col)
        return cast(col.op("AT TIME ZONE")("UTC"), Date)

    def _repeat_expr(self) -> Any:
        prev = contacts.alias("prev")
        if self._sqlite:
            # SQLAlchemy stores "YYYY-MM-DD HH:MM:SS.ffffff" text: datetime() compares with it.
            lower: Any = func.datetime(contacts.c.started_at, "-7 days")
        else:
            lower = contacts.c.started_at - REPEAT_WINDOW
        # A range probe on ix_contacts_caller_started (caller, started_at) per contact.
        return exists().where(and_(
            prev.c.caller == contacts.c.caller, prev.c.started_at < contacts.c.started_at,
            prev.c.started_at >= lower,
        ))

    def facts(self, conn: Connection, since: datetime, until: datetime,
              *more: tuple[datetime, datetime]) -> list[ContactFact]:
        """Contacts that started in ``[since, until)``, grouped in SQL (no row per contact
        crosses into Python: a day is ~10,000 rows at a million contacts a quarter)."""
        c = contacts.c
        answered = c.agent_interface.is_not(None)
        in_sl = and_(answered, func.coalesce(c.queue_wait_s, 0) <= SERVICE_LEVEL_S)
        dims = [self._day_expr(c.started_at).label("day"), c.channel, c.intent, c.scenario,
                c.skill, c.outcome, c.dropped_at, answered.label("answered"),
                in_sl.label("in_sl"), c.csat, self._repeat_expr().label("repeat")]
        stmt = select(*dims, func.count().label("n"),
                      func.coalesce(func.sum(c.queue_wait_s), 0).label("wait_s"),
                      func.coalesce(func.sum(c.talk_s), 0).label("talk_s"),
                      func.count(c.talk_s).label("talked"),
                      ).where(_in_ranges(c.started_at, [(since, until), *more])
                              ).group_by(*_positions(len(dims)))
        return [ContactFact(
            day=_as_date(r.day), channel=r.channel, intent=r.intent, scenario=r.scenario,
            skill=r.skill, outcome=r.outcome, dropped_at=r.dropped_at,
            answered=bool(r.answered), in_sl=bool(r.in_sl), csat=r.csat, repeat=bool(r.repeat),
            n=r.n, wait_s=float(r.wait_s), talk_s=float(r.talk_s), talked=r.talked,
        ) for r in conn.execute(stmt)]

    def step_counts(self, conn: Connection, since: datetime, until: datetime,
                    *more: tuple[datetime, datetime]) -> list[StepCount]:
        """Per day and step: how many contacts reached it (a step repeated counts once)."""
        c = contacts.c
        day = self._day_expr(c.started_at)
        if self._sqlite:
            each = func.json_each(c.steps).table_valued("value").alias("s")
            step: Any = each.c.value.op("->>")("step")
        else:
            each = func.json_array_elements(c.steps).table_valued("value").alias("s")
            step = each.c.value.op("->>")("step")
        stmt = (select(day.label("day"), step.label("step"),
                       func.count(distinct(c.id)).label("n"))
                .select_from(contacts).join(each, true())
                .where(_in_ranges(c.started_at, [(since, until), *more]))
                .group_by(*_positions(2)))
        return [StepCount(_as_date(r.day), r.step, r.n) for r in conn.execute(stmt)
                if r.step]

    def _tallies(self, conn: Connection, since: datetime, until: datetime,
                 *more: tuple[datetime, datetime]) -> dict[date, Tally]:
        return tally_by_day(self.facts(conn, since, until, *more),
                            self.step_counts(conn, since, until, *more))

    # ------------------------------------------------------------ rollups
    def _seal(self, conn: Connection, bucket: Bucket) -> Tally:
        lo, hi = bucket.bounds
        counted: Tally = {}
        for t in self._tallies(conn, lo, hi).values():
            add_entries(counted, ((kind, key, n, v) for (kind, key), (n, v) in t.items()))
        if counted:
            conn.execute(insert(report_rollups), [
                {"start": lo, "hours": bucket.hours, "kind": kind, "key": key[:120], "n": n,
                 "total": total} for (kind, key), (n, total) in counted.items()])
        conn.execute(insert(report_buckets).values(
            start=lo, hours=bucket.hours, contacts=counted.get(("contacts", ""), (0, 0.0))[0],
            # Wall-clock time, not the injectable clock: the mark must change whenever a
            # bucket is tallied again (the in-memory cache keys on it).
            sealed_at=datetime.now(UTC)))
        if bucket.hours == 24:  # the day's hour rollups are now redundant
            conn.execute(delete(report_rollups).where(
                report_rollups.c.hours == 1, report_rollups.c.start >= lo,
                report_rollups.c.start < hi))
            conn.execute(delete(report_buckets).where(
                report_buckets.c.hours == 1, report_buckets.c.start >= lo,
                report_buckets.c.start < hi))
        return counted

    def _ensure_sealed(self, buckets: list[Bucket]) -> tuple[Any, ...] | None:
        """Roll up the buckets of ``buckets`` that are not yet. Returns the buckets' seal
        marks (a fingerprint of their stored tallies), or None when it sealed some now."""
        if not buckets:
            return ()
        lo, hi = buckets[0].bounds[0], buckets[-1].bounds[1]
        with self._engine.connect() as conn:
            sealed = {(_utc(r.start), r.hours): r.sealed_at for r in conn.execute(
                select(report_buckets.c.start, report_buckets.c.hours,
                       report_buckets.c.sealed_at).where(
                    report_buckets.c.start >= lo, report_buckets.c.start < hi))}
        missing = [b for b in buckets if (b.start, b.hours) not in sealed]
        for b in missing:
            self._seal_once(b)
        if missing:
            return None
        return tuple(sorted((b.start, b.hours, str(sealed[(b.start, b.hours)]))
                            for b in buckets))

    def _rolled_cached(self, buckets: list[Bucket], marks: tuple[Any, ...] | None
                       ) -> tuple[Tally, dict[date, dict[str, int]]]:
        """:meth:`_rolled`, kept in memory while the buckets' seal marks are unchanged
        (a reopened and re-tallied bucket gets a new mark), so a console refreshing the
        same 30 days re-reads only the open hour."""
        key = tuple(_runs(buckets))
        hit = self._cache.get(key)
        if marks is not None and hit is not None and hit[0] == marks:
            return hit[1], hit[2]
        total, intents = self._rolled(buckets)
        if marks is not None:
            if len(self._cache) >= 32:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (marks, total, intents)
        return total, intents

    def _rolled(self, buckets: list[Bucket]) -> tuple[Tally, dict[date, dict[str, int]]]:
        """The stored tallies of ``buckets`` summed in SQL: the total, and intents per day."""
        if not buckets:
            return {}, {}
        r = report_rollups.c
        # The buckets are runs of consecutive days or hours: one range test per run.
        runs = [and_(r.hours == hours, r.start >= lo, r.start < hi)
                for hours, lo, hi in _runs(buckets)]
        where = or_(*runs)
        with self._engine.connect() as conn:
            total = {(row.kind, row.key): (int(row.n), float(row.total)) for row in conn.execute(
                select(r.kind, r.key, func.sum(r.n).label("n"), func.sum(r.total).label("total"))
                .where(where).group_by(r.kind, r.key))}
            intents: dict[date, dict[str, int]] = {}
            for row in conn.execute(
                    select(self._day_expr(r.start).label("day"), r.key, func.sum(r.n).label("n"))
                    .where(where, r.kind == "intent").group_by(*_positions(2))):
                intents.setdefault(_as_date(row.day), {})[row.key] = int(row.n)
        return total, intents

    def _seal_once(self, bucket: Bucket) -> Tally:
        lo, _ = bucket.bounds
        where = and_(report_rollups.c.start == lo, report_rollups.c.hours == bucket.hours)
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(report_rollups).where(where))
                return self._seal(conn, bucket)
        except IntegrityError:
            # Another node sealed it meanwhile: read theirs.
            with self._engine.connect() as conn:
                return {(r.kind, r.key): (r.n, r.total)
                        for r in conn.execute(select(report_rollups).where(where))}

    def reopen_sync(self, at: datetime) -> None:
        """A contact that started at ``at`` changed: drop the rollups that counted it."""
        with self._engine.begin() as conn:
            reopen_at(conn, at)

    async def reopen(self, at: datetime) -> None:
        await self._run(lambda: self.reopen_sync(at))

    # ------------------------------------------------------------ the report
    def report_sync(self, since: datetime, until: datetime) -> Report:
        """Figures for contacts that started in ``[since, until)``."""
        since, until = _utc(since), _utc(until)
        buckets, raw = plan_buckets(since, until, self._now() - self._settle)
        rolled, rolled_intents = self._rolled_cached(buckets, self._ensure_sealed(buckets))
        days: dict[date, Tally] = {}
        if raw:  # one pass over every raw range (the window's partial edges, the open hour)
            with self._engine.connect() as conn:
                days = self._tallies(conn, *raw[0], *raw[1:])
        return build_report(since, until, days, rolled=rolled, rolled_intents=rolled_intents)

    async def report(self, since: datetime, until: datetime) -> Report:
        return await self._run(lambda: self.report_sync(since, until))


def reopen_at(conn: Connection, at: datetime) -> None:
    """Drop the stored day and hour tallies that count a contact started at ``at``."""
    at = _utc(at)
    day = _midnight(at.date())
    hour = at.replace(minute=0, second=0, microsecond=0)
    for table in (report_buckets, report_rollups):
        conn.execute(delete(table).where(or_(
            and_(table.c.start == day, table.c.hours == 24),
            and_(table.c.start == hour, table.c.hours == 1))))


def reopen_contact(conn: Connection, contact_id: str) -> None:
    """Call after changing a stored contact: its day and hour are tallied again."""
    started = conn.execute(select(contacts.c.started_at).where(
        contacts.c.id == contact_id)).scalar()
    if started is not None:
        reopen_at(conn, started)
