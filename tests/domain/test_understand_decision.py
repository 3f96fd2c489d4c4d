"""The understanding decision: the matcher's confidence joined with the recogniser's."""

from __future__ import annotations

import pytest

from ivr.domain.flow.config import FlowConfig
from ivr.domain.flow.understand import decide, joint_confidence
from ivr.domain.model import IntentMatch, IntentScore

CFG = FlowConfig(confirm_below=0.6, reject_below=0.35, confirm_asr_below=0.5)


def match(conf: float, *, oos: bool = False) -> IntentMatch:
    return IntentMatch(ranked=(IntentScore("refund", conf),), out_of_scope=oos)


def test_confident_words_leave_the_match_as_it_is() -> None:
    assert joint_confidence(0.9, 0.5, 0.5) == 0.9
    assert joint_confidence(0.9, 0.95, 0.5) == 0.9


def test_doubtful_words_scale_the_match_down_in_proportion() -> None:
    assert joint_confidence(0.9, 0.25, 0.5) == pytest.approx(0.45)
    assert joint_confidence(0.9, 0.0, 0.5) == 0.0
    assert joint_confidence(0.9, -0.2, 0.5) == 0.0  # never below zero


def test_zero_trust_threshold_turns_the_joining_off() -> None:
    assert joint_confidence(0.9, 0.05, 0.0) == 0.9


def test_confident_match_of_confident_words_is_routed() -> None:
    assert decide(match(0.9), CFG, sensitive=False, asr_confidence=0.8) == "route"


def test_confident_match_of_doubtful_words_is_confirmed() -> None:
    assert decide(match(0.9), CFG, sensitive=False, asr_confidence=0.3) == "confirm"


def test_doubtful_words_alone_never_reject_a_match() -> None:
    """Whisper may hesitate on words it got right: ask back, don't make them repeat."""
    assert decide(match(0.5), CFG, sensitive=False, asr_confidence=0.05) == "confirm"


def test_rejection_still_wins() -> None:
    assert decide(match(0.95, oos=True), CFG, sensitive=False, asr_confidence=1.0) == "reject"
    assert decide(match(0.3), CFG, sensitive=False, asr_confidence=1.0) == "reject"
    assert decide(IntentMatch(ranked=(), out_of_scope=False), CFG, sensitive=False) == "reject"


def test_sensitive_topic_is_never_asked_back() -> None:
    assert decide(match(0.9), CFG, sensitive=True, asr_confidence=0.1) == "route"


def test_unsure_match_is_confirmed_whatever_the_hearing() -> None:
    assert decide(match(0.5), CFG, sensitive=False, asr_confidence=1.0) == "confirm"
