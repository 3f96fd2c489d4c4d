"""Clock adapters: wall clock, and a pinned clock for demos and reproducible runs."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class PinnedClock:
    """Always returns the same moment (``ivr call --at``), so opening hours are predictable."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at
