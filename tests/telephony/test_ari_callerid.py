"""Caller-ID parsing into E.164 / withheld / malformed."""

from __future__ import annotations

import pytest

from ivr.domain.model import Presentation
from ivr.telephony.callerid import parse_caller


@pytest.mark.parametrize(("raw", "e164"), [
    ("0612345678", "+31612345678"),
    ("+31 20 123 4567", "+31201234567"),
    ("0031201234567", "+31201234567"),
    ("+442079460000", "+442079460000"),
])
def test_valid_numbers_become_e164(raw: str, e164: str) -> None:
    """National (NL default), 00- and +-international numbers parse to E.164."""
    caller = parse_caller(raw, "NL")
    assert caller.presentation is Presentation.VALID and caller.number == e164
    assert caller.raw == raw


@pytest.mark.parametrize("raw", ["", None, "anonymous", "Anonymous", " restricted "])
def test_withheld(raw: str | None) -> None:
    """Empty and 'anonymous'-style caller-IDs are WITHHELD with no number."""
    caller = parse_caller(raw)
    assert caller.presentation is Presentation.WITHHELD and caller.number is None


@pytest.mark.parametrize("raw", ["abc", "12", "sip:bob@example.com", "+999999999999999999",
                                 "06-BANANAS", "x" * 5000])
def test_malformed(raw: str) -> None:
    """Garbage is MALFORMED, never an exception; raw is kept (bounded)."""
    caller = parse_caller(raw)
    assert caller.presentation is Presentation.MALFORMED and caller.number is None
    assert len(caller.raw) <= 64


def test_default_region_applies() -> None:
    """A national number is read in the given default region."""
    assert parse_caller("02079460000", "GB").number == "+442079460000"
