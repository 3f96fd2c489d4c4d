"""JSON shapes of agents, membership results and load splits (shared by CLI and web)."""

from __future__ import annotations

from typing import Any

from ivr.contact_centre.membership import MembershipResult
from ivr.domain.centre import AgentState, CentreSnapshot
from ivr.domain.centre_errors import (
    AgentAlreadyLoggedIn,
    AgentInactive,
    AgentNotLoggedIn,
    BadAgentProfile,
    BadSplit,
    CentreError,
    DuplicateAgent,
    MembershipRefused,
    MembershipUnavailable,
    NoQueueForSkills,
    UnknownAgent,
    UnknownSkill,
)
from ivr.domain.staffing import AgentRecord, SplitSetting


def agent_view(agent: AgentRecord) -> dict[str, Any]:
    """An agent with profile, skills and login state."""
    p = agent.profile
    return {
        "code": agent.code,
        "id": agent.db_id,
        "name": p.name,
        "interface": p.interface,
        "site": p.site,
        "region": p.region,
        "centre": p.centre,
        "centre_kind": p.kind.value,
        "languages": sorted(p.languages),
        "skills": dict(sorted(p.skills.items())),
        "active": agent.active,
        "logged_in": agent.logged_in,
        "paused": agent.paused,
        "pause_reason": agent.pause_reason,
        "updated_at": agent.updated_at.isoformat() if agent.updated_at else None,
    }


def membership_view(result: MembershipResult) -> dict[str, Any]:
    """A login/logout outcome; ``problems`` lists skills not joined/left and why."""
    return {
        "agent": agent_view(result.agent),
        "queues": list(result.queues),
        "complete": result.complete,
        "problems": [{"skill": p.skill, "queue": p.queue, "reason": p.reason}
                     for p in result.problems],
    }


def split_view(split: SplitSetting) -> dict[str, Any]:
    return {
        "skill": split.skill,
        "own_pct": split.own_pct,
        "partner_pct": split.partner_pct,
        "updated_at": split.updated_at.isoformat() if split.updated_at else None,
    }


# Error kinds for machine-readable output; ivr.web maps them to HTTP status codes.
_KINDS: tuple[tuple[type[CentreError], str], ...] = (
    (UnknownAgent, "unknown_agent"),
    (UnknownSkill, "unknown_skill"),
    (DuplicateAgent, "duplicate_agent"),
    (AgentAlreadyLoggedIn, "already_logged_in"),
    (AgentNotLoggedIn, "not_logged_in"),
    (AgentInactive, "inactive"),
    (NoQueueForSkills, "no_queue"),
    (BadSplit, "bad_split"),
    (BadAgentProfile, "bad_profile"),
    (MembershipRefused, "refused"),
    (MembershipUnavailable, "unavailable"),
)


def error_kind(exc: CentreError) -> str:
    """A short stable name for a domain error ('error' for an unlisted one)."""
    return next((kind for cls, kind in _KINDS if isinstance(exc, cls)), "error")


def centre_view(snapshot: CentreSnapshot, *, stale_s: float) -> dict[str, Any]:
    """Live state per skill and queue (``GET /api/queues``, ``ivr queues status --json``)."""
    skills = {}
    for name, view in sorted(snapshot.skills.items()):
        skills[name] = {
            "logged_in": view.logged_in(), "staffed": view.staffed(), "ready": view.ready(),
            "busy": view.count(AgentState.BUSY) + view.count(AgentState.RINGING),
            "paused": view.count(AgentState.PAUSED),
            "wrap_up": view.count(AgentState.WRAP_UP),
            "aht_s": None if view.aht_s is None else round(view.aht_s, 1),
            "aht_samples": view.aht_samples,
        }
    queues = {name: {"waiting": q.waiting,
                     "longest_wait_s": round(q.longest_wait_s(snapshot.at), 1),
                     "by_priority": [list(p) for p in q.by_priority]}
              for name, q in sorted(snapshot.queues.items()) if q.waiting}
    return {"stale_s": None if stale_s == float("inf") else round(stale_s, 1),
            "in_sync": stale_s == 0.0, "skills": skills, "queues": queues}
