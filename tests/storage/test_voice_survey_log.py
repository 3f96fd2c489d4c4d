"""SqlSurveyLog on real SQLite and PostgreSQL: the voice survey's score lands on the
contact, in the report and on the timeline; the comment names its recording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from ivr.storage.csat import SqlSurveyLog
from ivr.storage.db import make_engine
from ivr.storage.outbox_tables import contact_events
from ivr.storage.reports import SqlReportStore
from ivr.storage.tables import contacts


async def test_score_and_comment_on_the_contact_report_and_timeline(db_url: str) -> None:
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(contacts).values(
            id="v1", channel="voice", caller="+31611113333", language="en", skill="billing",
            started_at=now - timedelta(minutes=5), outcome="agent", scenario="S4",
            intent="invoice_question", transcript=[], steps=[]))
    log = SqlSurveyLog(engine)
    await log.score("v1", 2, "voice")
    await log.comment("v1", text="", recording="csat-v1", channel="voice")
    with engine.connect() as conn:
        row = conn.execute(select(contacts.c.csat, contacts.c.csat_comment).where(
            contacts.c.id == "v1")).one()
        events = [(r.kind, r.body) for r in conn.execute(
            select(contact_events.c.kind, contact_events.c.body).where(
                contact_events.c.contact_id == "v1").order_by(contact_events.c.id))]
    assert row.csat == 2 and row.csat_comment == "[recording csat-v1]"
    assert events == [("csat_score", "CSAT 2/5"), ("csat_comment", "[recording csat-v1]")]
    doc = (await SqlReportStore(engine).report(now - timedelta(hours=1), now)).as_dict()
    assert doc["csat"]["mean"] == 2 and doc["csat"]["responses"] == 1
    engine.dispose()
