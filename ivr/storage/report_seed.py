"""Synthetic contact history for report tests and ``bench/report.py``.

Deterministic for a seed: contacts spread evenly over ``days`` before ``end``,
callers drawn from a pool so some call again within a week, agent hand-offs with
wait and talk times, and a CSAT score on about a third of the answered calls.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from ivr.storage.tables import contacts

# (intent, scenario, skill): a spread like the demo catalogue's.
_INTENTS = (
    ("order_status", "S1", "orders"), ("opening_hours", "S1", "general"),
    ("outage_info", "S1", "technical"), ("change_address", "S2", "general"),
    ("password_reset", "S2", "technical"), ("app_problem", "S3", "technical"),
    ("invoice_question", "S4", "billing"), ("cancel_contract", "S4", "retention"),
    ("internet_down", "S4", "technical"), (None, None, None),
)
_CHANNELS = ("voice",) * 8 + ("whatsapp", "web")
_PATH = ("greeting", "identification", "question", "intent", "scenario", "action")


def _outcome(rng: random.Random, scenario: str | None) -> str:
    if scenario is None or rng.random() < 0.08:
        return "abandoned"
    if scenario == "S1":
        return "self_served" if rng.random() < 0.75 else "agent"
    if scenario == "S2":
        return "link_sent"
    if scenario == "S3":
        return "chat" if rng.random() < 0.6 else "agent"
    return "agent"


def synthetic_contact(i: int, rng: random.Random, at: datetime, callers: int) -> dict[str, Any]:
    """One ``contacts`` row."""
    intent, scenario, skill = rng.choice(_INTENTS)
    outcome = _outcome(rng, scenario)
    reached = _PATH[: rng.randint(2, len(_PATH))] if outcome == "abandoned" else _PATH
    if outcome == "agent":
        reached = (*reached, "handoff")
    answered = outcome == "agent" and rng.random() < 0.9
    return {
        "id": f"syn-{i:09d}", "channel": rng.choice(_CHANNELS),
        "caller": f"+3161{rng.randrange(callers):07d}", "customer_id": None, "language": "nl",
        "started_at": at, "ended_at": at + timedelta(seconds=rng.randint(20, 600)),
        "question": None, "intent": intent, "confidence": 0.9, "scenario": scenario,
        "skill": skill, "action": None, "outcome": outcome,
        "dropped_at": reached[-1] if outcome == "abandoned" else None, "transcript": [],
        "steps": [{"step": s, "at": at.isoformat(), "detail": {}} for s in reached],
        "agent_interface": f"PJSIP/agent{rng.randrange(40)}" if answered else None,
        "queue_wait_s": rng.choice((3, 8, 15, 19, 25, 40, 90)) if answered else None,
        "talk_s": rng.randint(60, 900) if answered else None,
        "csat": rng.randint(1, 5) if answered and rng.random() < 0.33 else None,
    }


def synthetic_contacts(n: int, *, end: datetime, days: int, callers: int,
                       seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` rows, evenly spread over the ``days`` before ``end`` (UTC)."""
    rng = random.Random(seed)
    start = end.astimezone(UTC) - timedelta(days=days)
    step = timedelta(days=days) / max(n, 1)
    for i in range(n):
        yield synthetic_contact(i, rng, start + step * i, callers)


def seed_contacts(engine: Engine, rows: Iterator[dict[str, Any]], *, chunk: int = 20_000,
                  progress: Callable[[int], None] | None = None) -> int:
    """Bulk-insert rows (one transaction per chunk); returns how many."""
    done, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            with engine.begin() as conn:
                conn.execute(insert(contacts), batch)
            done += len(batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(contacts), batch)
        done += len(batch)
        if progress:
            progress(len(batch))
    return done
