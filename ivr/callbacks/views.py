"""Callbacks as JSON for the CLI (`ivr callbacks list --json`) and the API."""

from __future__ import annotations

from typing import Any

from ivr.domain.callbacks import CallbackRecord


def callback_view(cb: CallbackRecord) -> dict[str, Any]:
    """One callback: its slot, state, every attempt, and the contact context."""
    d = cb.draft
    return {
        "id": cb.id, "status": cb.status.value, "outcome": cb.outcome,
        "skill": d.skill, "slot_start": d.slot_start.isoformat(),
        "slot_end": d.slot_end.isoformat(), "next_attempt_at": cb.next_attempt_at.isoformat(),
        "number": d.number, "language": d.language, "contact_id": d.contact_id,
        "customer_id": d.customer_id, "customer_name": d.customer_name,
        "question": d.question, "intent": d.intent, "reason": d.reason,
        "transcript": list(d.transcript), "created_at": cb.created_at.isoformat(),
        "lease_owner": cb.lease_owner,
        "attempts": [{"n": a.n, "started_at": a.started_at.isoformat(), "node": a.node,
                      "channel_id": a.channel_id, "outcome": a.outcome, "agent": a.agent,
                      "ended_at": a.ended_at.isoformat() if a.ended_at else None}
                     for a in cb.attempts],
    }
