"""``GET /api/agent-states``: every agent's live state and their calls today.

The state comes from the live centre (AMI): ready, ringing, busy, wrap-up, paused
(with the reason), unavailable or logged out, and for how long. "Calls today" counts
the contacts the agent answered since local midnight (``contacts.agent_id``, recorded
from AgentConnect), from the database, so it covers every node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from ivr.domain.centre import AgentState, CentreSnapshot
from ivr.domain.staffing import AgentRecord
from ivr.storage.tables import contacts


def today_start(now: datetime, timezone: str) -> datetime:
    """Local midnight of ``now``'s day in ``timezone`` (an aware datetime)."""
    local = now.astimezone(ZoneInfo(timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def calls_since(engine: Engine, since: datetime) -> dict[int, int]:
    """Answered contacts per agent (``agents.id``) started at or after ``since``."""
    c = contacts.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.agent_id, func.count()).where(
            c.agent_id.is_not(None), c.started_at >= since).group_by(c.agent_id))
        return {int(agent_id): int(n) for agent_id, n in rows}


def agent_states(records: Iterable[AgentRecord], snapshot: CentreSnapshot,
                 calls: Mapping[int, int]) -> list[dict[str, Any]]:
    """One entry per agent: live state, reason, seconds in it, calls today."""
    out = []
    for record in records:
        view = snapshot.agent(record.profile.interface)
        if view is None:  # not in the live state yet: what the directory says
            state, reason, since_s = AgentState.LOGGED_OUT.value, "", None
        else:
            state, reason = view.status.state.value, view.status.reason
            since_s = (round(max(0.0, snapshot.at - view.status.since))
                       if view.status.since else None)
        out.append({"code": record.code, "state": state, "reason": reason or None,
                    "since_s": since_s, "calls_today": calls.get(record.db_id, 0)})
    return out


async def states_doc(records: Iterable[AgentRecord], snapshot: CentreSnapshot,
                     engine: Engine, timezone: str, now: datetime) -> dict[str, Any]:
    calls = await asyncio.to_thread(calls_since, engine, today_start(now, timezone))
    return {"agents": agent_states(records, snapshot, calls)}
