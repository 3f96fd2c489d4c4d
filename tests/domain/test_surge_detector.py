"""The pure surge detector: learning, the supervisor threshold, surges, their end, and
no false alarm on a normal Monday-morning peak."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from ivr.domain.surge import SurgeConfig, SurgeDetector, SurgeEnded, SurgeStarted

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday; slots are Europe/Amsterdam time


def week_of_calls(start: datetime, *, rng: random.Random, peak: float = 40.0
                  ) -> list[tuple[datetime, str | None, str | None]]:
    """One week: Utrecht gets ``peak`` calls/hour on Monday 08:00-10:00 UTC, 6/hour
    other weekday daytime hours, 1/hour otherwise; 10 % of them about faults."""
    calls = []
    for h in range(7 * 24):
        at = start + timedelta(hours=h)
        if at.weekday() == 0 and at.hour in (8, 9):
            n = peak
        elif at.weekday() < 5 and 7 <= at.hour < 18:
            n = 6
        else:
            n = 1
        for _ in range(int(n)):
            intent = "report_fault" if rng.random() < 0.1 else "invoice_question"
            calls.append((at + timedelta(seconds=rng.random() * 3600), "Utrecht", intent))
    return sorted(calls, key=lambda c: c[0])


def learned(weeks: int = 3, seed: int = 1) -> tuple[SurgeDetector, datetime]:
    det = SurgeDetector(SurgeConfig())
    rng = random.Random(seed)
    for w in range(weeks):
        det.learn(week_of_calls(MONDAY + timedelta(weeks=w), rng=rng))
    return det, MONDAY + timedelta(weeks=weeks)


def burst(det: SurgeDetector, start: datetime, n: int, every_s: float, region: str = "Utrecht",
          intent: str = "report_fault") -> list[SurgeStarted | SurgeEnded]:
    changes: list[SurgeStarted | SurgeEnded] = []
    for i in range(n):
        changes += det.observe(start + timedelta(seconds=i * every_s), region, intent)
    return changes


def test_without_history_it_is_learning_and_the_supervisor_threshold_applies() -> None:
    """No history: learning; 19 fault calls in 10 minutes are not a surge, 20 are."""
    det = SurgeDetector(SurgeConfig(learning_threshold=20))
    at = datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert det.learning(at)
    assert burst(det, at, 19, 25) == []
    assert det.threshold("region:Utrecht") == 20
    changes = burst(det, at + timedelta(seconds=19 * 25), 1, 1)
    assert [type(c) for c in changes] == [SurgeStarted]
    assert changes[0].learning and changes[0].region == "Utrecht"


def test_baseline_knows_the_hour_of_the_week() -> None:
    """After three weeks Monday 09:00 UTC expects ~40 calls/hour, Tuesday 03:00 ~1."""
    det, now = learned()
    det.tick(now + timedelta(hours=9, minutes=30))
    assert not det.learning()
    assert 5.0 < det.expected("region:Utrecht") < 8.5  # 40/hour over 10 minutes
    det.tick(now + timedelta(days=1, hours=3, minutes=30))
    assert det.expected("region:Utrecht") < 0.5


def test_a_normal_monday_peak_is_no_surge() -> None:
    """The fourth Monday's 08:00-10:00 peak (6x the weekday rate) raises nothing."""
    det, now = learned()
    rng = random.Random(99)
    changes = []
    for at, region, intent in week_of_calls(now, rng=rng):
        changes += det.observe(at, region, intent)
    assert changes == []


def test_fault_surge_is_found_within_two_minutes_and_ends_when_calls_fall_back() -> None:
    """30 fault calls in 5 minutes on a quiet Tuesday afternoon: a surge within 2 minutes;
    it ends once the rate is back to normal."""
    det, now = learned()
    onset = now + timedelta(days=1, hours=14)
    changes = burst(det, onset, 30, 10)
    started = [c for c in changes if isinstance(c, SurgeStarted) and c.region == "Utrecht"]
    assert len(started) == 1
    assert started[0].at - onset <= timedelta(minutes=2)
    assert dict(started[0].intents)["report_fault"] >= started[0].calls * 0.9
    assert not started[0].learning
    ended = []
    t = onset + timedelta(minutes=5)
    for _ in range(40):  # 20 quiet minutes, ticked every 30 s
        t += timedelta(seconds=30)
        ended += [c for c in det.tick(t) if isinstance(c, SurgeEnded) and c.region]
    assert [e.region for e in ended] == ["Utrecht"]
    assert ended[0].peak_calls >= 30


def test_busy_but_not_about_faults_is_no_region_surge() -> None:
    """Many calls about invoices (a mailing went out) do not announce an outage."""
    det, now = learned()
    changes = burst(det, now + timedelta(days=1, hours=14), 30, 10, intent="invoice_question")
    assert not [c for c in changes if isinstance(c, SurgeStarted) and c.region]


def test_surge_hours_are_not_learned() -> None:
    """A surge does not raise the baseline of its hour for the next week."""
    det, now = learned()
    onset = now + timedelta(days=1, hours=14)
    det.tick(onset)
    before = det.expected("region:Utrecht")
    burst(det, onset, 120, 25)  # 50 minutes of surge
    det.tick(now + timedelta(weeks=1, days=1, hours=14, minutes=5))
    assert det.expected("region:Utrecht") <= before * 1.5 + 0.5
