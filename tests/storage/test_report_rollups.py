"""SqlReportStore on real SQLite and PostgreSQL: rolled-up reports equal raw ones, late
changes reopen their day, agent events land on the contact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.db import make_engine
from ivr.storage.report_seed import seed_contacts, synthetic_contacts
from ivr.storage.reports import SqlReportStore
from ivr.storage.tables import contacts, report_buckets

NOW = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)


async def test_rollups_give_the_raw_figures_and_reopen_on_late_changes(db_url: str) -> None:
    """A report over stored day/hour tallies equals one over raw rows, before and after a
    late CSAT/talk time reopens a sealed day."""
    engine = make_engine(db_url)
    seed_contacts(engine, synthetic_contacts(3000, end=NOW, days=6, callers=400))
    since, until = NOW - timedelta(days=4, minutes=13), NOW
    rolled = SqlReportStore(engine, clock=lambda: NOW)
    raw = SqlReportStore(engine, clock=lambda: since)  # nothing closed yet: all raw
    first = await rolled.report(since, until)
    with engine.connect() as conn:
        kinds = dict(conn.execute(select(report_buckets.c.hours, func.count())
                                  .group_by(report_buckets.c.hours)).all())
    assert kinds[24] == 3 and kinds[1] >= 9  # 3 whole days, the hours of the partial ones
    assert first.total == (await raw.report(since, until)).total
    assert (await rolled.report(since, until)).total == first.total  # from the memory cache
    doc = first.as_dict()
    assert 2000 <= doc["contacts"] <= 2010  # 3000 over 6 days, 4 days in the window
    assert doc["repeat_contacts_7d"] > 0 and doc["csat"]["responses"] > 0
    assert {r["skill"] for r in doc["skills"]} >= {"billing", "technical"}

    # A late talk time on a contact of a sealed day: that day is tallied again.
    with engine.connect() as conn:
        cid = conn.execute(select(contacts.c.id).where(
            contacts.c.started_at < NOW - timedelta(days=2), contacts.c.outcome == "agent",
            contacts.c.started_at >= since + timedelta(days=1))
            .order_by(contacts.c.id).limit(1)).scalar_one()
    directory = SqlAgentDirectory(engine)
    assert await directory.record_agent(cid, "PJSIP/agent7", wait_s=5)
    assert await directory.record_talk(cid, 12345)
    assert not await directory.record_talk("no-such-contact", 5)
    again = await rolled.report(since, until)
    assert again.total == (await raw.report(since, until)).total
    for _ in range(2):  # re-tallied marks: the cache refills, never serves the old sum
        assert (await rolled.report(since, until)).total == again.total
    handled = {r["skill"]: r["mean_handle_s"] for r in again.per_skill()}
    assert handled != {r["skill"]: r["mean_handle_s"] for r in first.per_skill()}
    engine.dispose()
