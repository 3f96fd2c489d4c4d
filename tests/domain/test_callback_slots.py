"""Callback slots: three concrete next slots with capacity, never overbooked, past/full
rejected; the dialer's retry rule; a slot picked by key or by voice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.domain.callbacks import (
    CallbackError,
    CallbackStatus,
    SlotFull,
    SlotInPast,
    SlotPolicy,
    after_attempt,
    candidate_starts,
    capacity,
    check_booking,
    choose_slot,
    offer,
    policy_from,
)

NOW = datetime(2026, 11, 30, 10, 7, tzinfo=UTC)
POLICY = policy_from(slot_s=1800, lead_s=900, capacity=["billing=2"], per_agent=3,
                     max_attempts=3, retry_s=300, strategy=["tech=customer_first"],
                     default_strategy="agent_first")


def test_three_next_slots_after_the_lead_time() -> None:
    """10:07 + 15 min lead -> the 10:30, 11:00 and 11:30 slots, each with its places."""
    slots = offer("billing", NOW, POLICY, booked={}, agents_logged_in=0)
    assert [s.start.strftime("%H:%M") for s in slots] == ["10:30", "11:00", "11:30"]
    assert all(s.free == 2 and s.end - s.start == timedelta(minutes=30) for s in slots)


def test_full_slots_are_skipped_and_closed_ones_too() -> None:
    """A full slot is not offered; neither is one outside opening hours."""
    s1030 = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
    s1100 = s1030 + timedelta(minutes=30)
    slots = offer("billing", NOW, POLICY, booked={s1030: 2, s1100: 1}, agents_logged_in=0,
                  is_open=lambda at: at < NOW.replace(hour=12, minute=0))
    assert [(s.start.strftime("%H:%M"), s.free) for s in slots] == [
        ("11:00", 1), ("11:30", 2)]


def test_capacity_from_staffing_when_not_configured() -> None:
    """An unconfigured skill has per_agent places per logged-in agent; nobody -> no offer."""
    assert capacity("tech", POLICY, 2) == 6
    assert capacity("billing", POLICY, 9) == 2
    assert offer("tech", NOW, POLICY, booked={}, agents_logged_in=0) == ()
    assert offer("tech", NOW, POLICY, booked={}, agents_logged_in=1)[0].free == 3


def test_booking_past_full_or_off_grid_rejected() -> None:
    """A slot that began, a full one, an off-grid time: refused (the lead time only
    shapes the offer)."""
    first = candidate_starts(NOW, POLICY, 1)[0]
    check_booking(first, NOW, POLICY, booked=1, cap=2)
    with pytest.raises(SlotFull):
        check_booking(first, NOW, POLICY, booked=2, cap=2)
    with pytest.raises(SlotInPast):
        check_booking(first - timedelta(minutes=30), NOW, POLICY, booked=0, cap=2)
    with pytest.raises(CallbackError):
        check_booking(first + timedelta(minutes=1), NOW, POLICY, booked=0, cap=2)


def test_retry_within_the_slot_then_failed_with_sms() -> None:
    """No answer retries while attempts and the slot last; then failed + SMS; connected = done."""
    end = NOW + timedelta(minutes=30)
    r = after_attempt("no_answer", attempts=1, now=NOW, slot_end=end, policy=POLICY)
    assert r.status is CallbackStatus.RETRY and r.retry_at == NOW + timedelta(minutes=5)
    r = after_attempt("busy", attempts=3, now=NOW, slot_end=end, policy=POLICY)
    assert r.status is CallbackStatus.FAILED and r.send_sms
    r = after_attempt("no_answer", attempts=1, now=end - timedelta(minutes=1), slot_end=end,
                      policy=POLICY)
    assert r.status is CallbackStatus.FAILED and r.send_sms
    assert after_attempt("connected", attempts=1, now=NOW, slot_end=end,
                         policy=POLICY).status is CallbackStatus.DONE


def test_pick_by_key_or_voice() -> None:
    """Key 2 or "the second one" picks slot 2; key 5 or gibberish picks nothing."""
    slots = offer("billing", NOW, POLICY, booked={}, agents_logged_in=0)
    ordinals = {"second": 2, "two": 2, "tweede": 2, "first": 1}
    assert choose_slot("2", "", slots, ordinals) == slots[1]
    assert choose_slot(None, "The second one, please", slots, ordinals) == slots[1]
    assert choose_slot("5", "", slots, ordinals) is None
    assert choose_slot(None, "whenever", slots, ordinals) is None


def test_strategy_per_skill_and_bad_settings() -> None:
    """Per-skill strategy with a default; junk in the lists is a clear error."""
    assert POLICY.strategy_for("tech") == "customer_first"
    assert POLICY.strategy_for("billing") == "agent_first"
    with pytest.raises(CallbackError, match="skill=value"):
        policy_from(slot_s=60, lead_s=0, capacity=["billing"], per_agent=1, max_attempts=1,
                    retry_s=1, strategy=[], default_strategy="agent_first")
    with pytest.raises(CallbackError, match="strategy"):
        policy_from(slot_s=60, lead_s=0, capacity=[], per_agent=1, max_attempts=1,
                    retry_s=1, strategy=["x=sometimes"], default_strategy="agent_first")
    assert SlotPolicy().strategy_for("any") == "agent_first"
