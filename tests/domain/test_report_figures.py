"""Pure report aggregation: facts -> tallies -> figures, windows and rollup buckets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ivr.domain.reports import (
    BadReportWindow,
    Bucket,
    ContactFact,
    StepCount,
    build_report,
    plan_buckets,
    report_csv,
    report_window,
    tally_by_day,
)

D1, D2 = date(2026, 11, 2), date(2026, 11, 3)
T0 = datetime(2026, 11, 2, tzinfo=UTC)


def _facts() -> list[ContactFact]:
    return [
        ContactFact(D1, "voice", "order_status", "S1", "orders", "self_served", n=3),
        ContactFact(D1, "voice", "change_address", "S2", "general", "link_sent", repeat=True),
        ContactFact(D1, "whatsapp", None, None, None, "abandoned", dropped_at="question"),
        ContactFact(D2, "voice", "invoice_question", "S4", "billing", "agent", answered=True,
                    in_sl=True, csat=4, n=2, wait_s=20.0, talk_s=400.0, talked=2),
        ContactFact(D2, "voice", "invoice_question", "S4", "billing", "agent", answered=True,
                    csat=1, wait_s=50.0, talk_s=100.0, talked=1),
        # Abandoned in the queue: offered, never answered.
        ContactFact(D2, "voice", "invoice_question", "S4", "billing", "agent"),
    ]


def test_figures_from_grouped_facts() -> None:
    """Rates, funnel, per-skill service level and times, CSAT and the intent series."""
    steps = [StepCount(D1, "greeting", 5), StepCount(D1, "question", 5),
             StepCount(D2, "greeting", 4), StepCount(D2, "handoff", 4)]
    doc = build_report(T0, T0 + timedelta(days=2), tally_by_day(_facts(), steps)).as_dict()
    assert doc["contacts"] == 9
    assert [tuple(x) for x in doc["by_channel"]] == [("voice", 8), ("whatsapp", 1)]
    assert doc["containment_rate"] == round(4 / 9, 4)
    assert doc["deflection_rate"] == round(1 / 9, 4)
    assert doc["transfer_rate"] == round(4 / 9, 4)
    assert doc["repeat_contacts_7d"] == 1
    assert doc["funnel"][0] == {"step": "greeting", "reached": 9, "dropped": 0, "drop_rate": 0.0}
    question = next(r for r in doc["funnel"] if r["step"] == "question")
    assert question["dropped"] == 1 and question["drop_rate"] == 0.2
    [billing] = doc["skills"]
    assert billing == {"skill": "billing", "offered": 4, "answered": 3,
                       "service_level": 0.5, "mean_wait_s": round(70 / 3, 2),
                       "mean_handle_s": round(500 / 3, 2)}
    assert doc["csat"]["mean"] == 3.0  # (4 + 4 + 1) / 3
    assert doc["csat"]["by_skill"][0]["distribution"] == {"1": 1, "2": 0, "3": 0, "4": 2, "5": 0}
    assert doc["intents_by_day"]["2026-11-03"] == {"invoice_question": 4}
    csv_text = report_csv(doc)
    assert "skills,billing,service_level,0.5" in csv_text
    assert "funnel,question,dropped,1" in csv_text


def test_day_tallies_add_up_to_the_same_report() -> None:
    """Summing stored day tallies (rolled) gives what the raw facts give."""
    days = tally_by_day(_facts())
    whole = build_report(T0, T0, days)
    rolled = build_report(T0, T0, {D2: days[D2]}, rolled=days[D1],
                          rolled_intents={D1: {"order_status": 3, "change_address": 1,
                                               "unknown": 1}})
    assert rolled.total == whole.total and rolled.intents_by_day == whole.intents_by_day


def test_plan_buckets_covers_the_window_exactly_once() -> None:
    """Whole closed days, then closed hours, then raw edges; nothing after the horizon."""
    since = datetime(2026, 11, 1, 9, 47, tzinfo=UTC)
    until = datetime(2026, 11, 4, 10, 30, tzinfo=UTC)
    horizon = datetime(2026, 11, 4, 8, 15, tzinfo=UTC)
    buckets, raw = plan_buckets(since, until, horizon)
    days = [b for b in buckets if b.hours == 24]
    assert [b.start.day for b in days] == [2, 3]
    hours = [b.start for b in buckets if b.hours == 1]
    assert hours[0] == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert hours[-1] == datetime(2026, 11, 4, 7, tzinfo=UTC)  # 07:00-08:00 closed by 08:15
    assert raw == [(since, datetime(2026, 11, 1, 10, tzinfo=UTC)),
                   (datetime(2026, 11, 4, 8, tzinfo=UTC), until)]
    covered = sum((b.bounds[1] - b.bounds[0] for b in buckets), timedelta())
    covered += sum((hi - lo for lo, hi in raw), timedelta())
    assert covered == until - since
    assert plan_buckets(since, until, since) == ([], [(since, until)])
    assert Bucket(T0, 24).bounds == (T0, T0 + timedelta(days=1))


def test_report_window_parsing() -> None:
    """--hours, --since/--until as UTC days (until inclusive) or times; clear errors."""
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert report_window(now) == (now - timedelta(hours=24), now)
    assert report_window(now, hours=2) == (now - timedelta(hours=2), now)
    assert report_window(now, since="2026-11-01", until="2026-11-30") == (
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert report_window(now, since="2026-11-30T08:00")[0] == datetime(2026, 11, 30, 8,
                                                                       tzinfo=UTC)
    for bad in ({"since": "yesterday"}, {"since": "2026-11-30", "until": "2026-11-01"},
                {"hours": 5, "since": "2026-11-01"}, {"hours": -1},
                {"since": "2020-01-01"}):
        with pytest.raises(BadReportWindow):
            report_window(now, **bad)  # type: ignore[arg-type]
