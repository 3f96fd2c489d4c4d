"""Dialogue tuning: every limit and threshold of the flow, in one typed object."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.domain.model import Language


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Taken from Settings by the composition root; defaults are the tested behaviour."""

    default_language: Language = "en"
    # Callers the CRM does not know hear the other language offered right after the
    # open question, while it already listens ("Voor Nederlands, druk 2"): "auto" only
    # when a recogniser here hears that language, "always", or "off". Known customers
    # keep their CRM language, unasked.
    language_offer: str = "off"
    # Languages a recogniser hears on this node; callers in any other language are told
    # to use the keys (text channels hear every language).
    speech_languages: tuple[Language, ...] = ("en", "nl")
    timezone: str = "Europe/Amsterdam"
    no_input_timeout_s: float = 6.0
    digit_timeout_s: float = 8.0
    # Re-asks of the open question (no input or not understood) before the keypad menu.
    max_reprompts: int = 1
    confirm_below: float = 0.6
    reject_below: float = 0.35
    # Whisper's confidence from which its words are taken at face value; below it the
    # match confidence is scaled down (see understand.joint_confidence). 0: off.
    # 0.4, not the bench's best 0.5: the same 2 of 61 clear requests asked back, and a
    # margin over the IVR's own voice in calls (its test phrases score 0.56-0.85)
    confirm_asr_below: float = 0.4
    # "agent" in the answer wins unless an intent is this sure (e.g. "agent login problem").
    agent_words_unless_above: float = 0.9
    customer_no_tries: int = 2
    customer_no_digits: int = 10
    pin_tries: int = 3
    pin_digits: int = 4
    keypad_tries: int = 2
    # Skills whose callers hear the after-call survey if they stay on the line ("*": all).
    csat_voice_skills: frozenset[str] = frozenset()
    # The survey's follow-up answer: recorded for at most this long.
    csat_comment_max_s: float = 20.0
