"""Outages as the CLI and the web API show them (one JSON shape)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ivr.domain.outages import OutageRecord


def outage_view(o: OutageRecord, at: datetime | None = None) -> dict[str, Any]:
    """An outage as the CLI and the API show it."""
    now = at or datetime.now(UTC)
    return {"id": o.id, "regions": list(o.regions), "messages": dict(o.messages),
            "starts_at": o.starts_at.isoformat(),
            "ends_at": o.ends_at.isoformat() if o.ends_at else None,
            "status": o.state_at(now), "source": o.source.value, "created_by": o.created_by,
            "updated_at": o.updated_at.isoformat() if o.updated_at else None,
            "subscribers": o.subscribers, "detail": dict(o.detail)}
