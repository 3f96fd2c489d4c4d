"""Outage announcements as supervisors (and the surge detector) manage them.

Pure: validation of what a supervisor posts and the life cycle of an announcement.
Storage (``ivr.storage.outages``), the CLI and the web API translate to and from
these values; their errors map to exit codes and HTTP statuses at the edge.

Life cycle::

    pending --confirm--> active --end--> ended
       |                  (update: messages, regions, window)
       +--dismiss--> dismissed

A supervisor's outage is ``active`` at once (callers hear it between ``starts_at``
and ``ends_at``); one the surge detector creates is ``active`` or ``pending`` a
supervisor's confirmation, as configured (``IVR_SURGE_AUTO_ACTIVATE``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ivr.domain.model import LANGUAGES, Language

MAX_MESSAGE = 600  # a spoken announcement longer than this loses the caller
MAX_REGIONS = 20
MAX_REGION = 64


class OutageStatus(enum.StrEnum):
    PENDING = "pending"  # surge-created, waiting for a supervisor
    ACTIVE = "active"
    ENDED = "ended"
    DISMISSED = "dismissed"  # a pending one a supervisor rejected


class OutageSource(enum.StrEnum):
    SUPERVISOR = "supervisor"
    SURGE = "surge"


class OutageError(ValueError):
    """Base of the outage errors; ``code`` is the machine-readable kind."""

    code = "bad_outage"


class BadOutage(OutageError):
    """What was posted is not a valid outage (422 / exit 1)."""


class UnknownOutage(OutageError):
    """No outage with that id (404)."""

    code = "not_found"


class OutageConflict(OutageError):
    """The outage's state does not allow this (409): ending an ended one, confirming an
    active one ..."""

    code = "conflict"


@dataclass(frozen=True, slots=True)
class OutageDraft:
    """A validated outage to store (see :func:`draft`)."""

    regions: tuple[str, ...]
    messages: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    status: OutageStatus = OutageStatus.ACTIVE
    source: OutageSource = OutageSource.SUPERVISOR
    created_by: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutageRecord:
    """A stored outage with its life-cycle fields."""

    id: int
    regions: tuple[str, ...]
    messages: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    status: OutageStatus
    source: OutageSource
    created_by: str
    updated_at: datetime | None
    detail: Mapping[str, Any]
    subscribers: int = 0

    def state_at(self, at: datetime) -> str:
        """What a supervisor sees: pending, scheduled, active, ended or dismissed."""
        if self.status is OutageStatus.ACTIVE:
            if self.ends_at is not None and self.ends_at <= at:
                return "ended"
            return "scheduled" if self.starts_at > at else "active"
        return self.status.value

    def covers(self, region: str) -> bool:
        r = region.strip().lower()
        return any(x.lower() == r for x in self.regions)


def clean_regions(regions: Sequence[str]) -> tuple[str, ...]:
    """Trimmed, de-duplicated (case-insensitively) regions; at least one."""
    out: list[str] = []
    for raw in regions:
        for part in raw.split(","):
            r = " ".join(part.split())
            if not r:
                continue
            if len(r) > MAX_REGION:
                raise BadOutage(f"region {r[:20]!r}... is longer than {MAX_REGION} characters")
            if r.lower() not in {x.lower() for x in out}:
                out.append(r)
    if not out:
        raise BadOutage("give at least one region")
    if len(out) > MAX_REGIONS:
        raise BadOutage(f"at most {MAX_REGIONS} regions per outage")
    return tuple(out)


def clean_messages(messages: Mapping[str, str]) -> dict[str, str]:
    """Messages per supported language; at least one, none empty or too long."""
    out: dict[str, str] = {}
    for lang, text in messages.items():
        if lang not in LANGUAGES:
            raise BadOutage(f"language {lang!r}: use one of {', '.join(LANGUAGES)}")
        t = " ".join(str(text).split())
        if not t:
            raise BadOutage(f"the {lang} message is empty")
        if len(t) > MAX_MESSAGE:
            raise BadOutage(f"the {lang} message is longer than {MAX_MESSAGE} characters")
        out[lang] = t
    if not out:
        raise BadOutage("give a message in at least one language (en, nl)")
    return out


def check_window(starts_at: datetime, ends_at: datetime | None) -> None:
    if starts_at.tzinfo is None or (ends_at is not None and ends_at.tzinfo is None):
        raise BadOutage("times need a time zone (e.g. 2026-12-01T08:00+01:00)")
    if ends_at is not None and ends_at <= starts_at:
        raise BadOutage("the end must be after the start")


def draft(*, regions: Sequence[str], messages: Mapping[str, str], starts_at: datetime,
          ends_at: datetime | None, created_by: str = "",
          source: OutageSource = OutageSource.SUPERVISOR,
          status: OutageStatus = OutageStatus.ACTIVE,
          detail: Mapping[str, Any] | None = None) -> OutageDraft:
    """Validate a new outage (raises :class:`BadOutage` with a reason)."""
    check_window(starts_at, ends_at)
    return OutageDraft(regions=clean_regions(regions), messages=clean_messages(messages),
                       starts_at=starts_at, ends_at=ends_at, status=status, source=source,
                       created_by=created_by, detail=dict(detail or {}))


def check_move(record: OutageRecord, action: str, at: datetime) -> None:
    """Raise :class:`OutageConflict` unless ``action`` (update, end, confirm, dismiss)
    is allowed in the record's current state."""
    state = record.state_at(at)
    allowed = {
        "update": {"pending", "scheduled", "active"},
        "end": {"pending", "scheduled", "active"},
        "confirm": {"pending"},
        "dismiss": {"pending"},
    }[action]
    if state not in allowed:
        raise OutageConflict(f"outage {record.id} is {state}: cannot {action} it")


def language_of(value: str) -> Language:
    for lang in LANGUAGES:
        if value == lang:
            return lang
    raise BadOutage(f"language {value!r}: use one of {', '.join(LANGUAGES)}")
