"""Caller-ID as delivered by the network -> the domain's ``Caller``."""

from __future__ import annotations

import phonenumbers
from phonenumbers import geocoder

from ivr.domain.model import Caller, Presentation

# What switches put in the caller-ID when the number is withheld (CLIR).
_WITHHELD = {"", "anonymous", "restricted", "private", "unknown", "unavailable", "withheld"}
_MAX_RAW = 64  # longer than any dial string: not a number, and not worth keeping whole


def parse_caller(raw: str | None, default_region: str = "NL", dialed: str | None = None,
                 *, trusted: bool = True) -> Caller:
    """Parse a raw caller number into E.164.

    'anonymous'/empty -> WITHHELD; anything not a possible number -> MALFORMED.
    National numbers are read in ``default_region``; ``00`` international prefix
    and ``+`` are both accepted. Never raises.
    """
    text = (raw or "").strip()[:_MAX_RAW]
    if text.lower() in _WITHHELD:
        return Caller(raw=text, number=None, presentation=Presentation.WITHHELD, dialed=dialed,
                      cli_trusted=trusted)
    candidate = text
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    try:
        parsed = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException:
        return Caller(raw=text, number=None, presentation=Presentation.MALFORMED, dialed=dialed,
                      cli_trusted=trusted)
    # is_possible (length/shape) rather than is_valid: test and new ranges are not
    # in libphonenumber's metadata yet and must still identify the customer.
    if not phonenumbers.is_possible_number(parsed) or any(c.isalpha() for c in text):
        return Caller(raw=text, number=None, presentation=Presentation.MALFORMED, dialed=dialed,
                      cli_trusted=trusted)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return Caller(raw=text, number=e164, presentation=Presentation.VALID, dialed=dialed,
                  region=_area_of(parsed), cli_trusted=trusted)


def region_of(number: str) -> str | None:
    """Caller region from an E.164 number (Dutch area codes and others), for unknown
    callers; None when the number says nothing more precise than its country."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    return _area_of(parsed)


def _area_of(parsed: phonenumbers.PhoneNumber) -> str | None:
    area = geocoder.description_for_number(parsed, "en") or None
    # A mobile number geocodes to its country ("Netherlands"): no region at all.
    country = geocoder.country_name_for_number(parsed, "en")
    return None if area == country else area


CLI_TRUSTED_ARG = "cli_trusted="


def cli_trust_of(args: tuple[str, ...]) -> bool:
    """Whether the dialplan vouches for the caller ID: ``Stasis(app,cli_trusted=1)``
    or ``AGI(url,cli_trusted=1)`` among the application's arguments.

    dialplan/extensions.conf passes ``cli_trusted=1`` only for calls from the trusted
    trunk endpoint (pjsip.conf ``set_var=IVR_CLI_TRUSTED=1``) and ``cli_trusted=0``
    otherwise. A dialplan that passes nothing (written before this argument existed)
    keeps the old behaviour: trusted.
    """
    for arg in args:
        if arg.startswith(CLI_TRUSTED_ARG):
            return arg[len(CLI_TRUSTED_ARG):].strip() == "1"
    return True
