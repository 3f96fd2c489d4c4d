"""Domain errors of the contact centre's staffing: agents, membership and load splits.

Small named classes so the CLI and the web layer can tell them apart; only
``ivr.web`` maps them to HTTP status codes (404 unknown, 409 conflicting state,
422 invalid input, 503 Asterisk unreachable).
"""

from __future__ import annotations

from collections.abc import Iterable


class CentreError(Exception):
    """Base class: a staffing request that cannot be carried out as asked."""


class UnknownAgent(CentreError):
    """No agent with this code (or id, or interface)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"unknown agent {key!r}")
        self.key = key


class UnknownSkill(CentreError):
    """The skill is not in the skills table."""

    def __init__(self, skill: str) -> None:
        super().__init__(f"unknown skill {skill!r} (not in the skills table)")
        self.skill = skill


class DuplicateAgent(CentreError):
    """Another agent already has this code or interface."""


class BadAgentProfile(CentreError, ValueError):
    """An agent profile with invalid values (proficiency outside 1..5, empty code...)."""


class AgentAlreadyLoggedIn(CentreError):
    """Login of an agent who is logged in already; nothing was changed."""

    def __init__(self, code: str) -> None:
        super().__init__(f"agent {code} is already logged in")
        self.code = code


class AgentNotLoggedIn(CentreError):
    """Logout, pause or resume of an agent who is not logged in."""

    def __init__(self, code: str) -> None:
        super().__init__(f"agent {code} is not logged in")
        self.code = code


class AgentInactive(CentreError):
    """The agent is deactivated (left, suspended) and may not log in."""

    def __init__(self, code: str) -> None:
        super().__init__(f"agent {code} is inactive")
        self.code = code


class NoQueueForSkills(CentreError):
    """None of the agent's skills has a queue, so a login would route nothing to them."""

    def __init__(self, code: str, skills: Iterable[str]) -> None:
        self.skills = tuple(sorted(skills))
        listed = ", ".join(self.skills) or "(agent has no skills)"
        super().__init__(f"agent {code}: no queue for any skill: {listed}")
        self.code = code


class BadSplit(CentreError, ValueError):
    """A load split that is not two sides of 0..100 % summing to 100."""


class MembershipUnavailable(CentreError):
    """Asterisk (AMI) could not be reached or did not answer; the stored state is unchanged."""


class MembershipRefused(CentreError):
    """Asterisk refused a membership action (e.g. QueuePause for a member it does not know)."""
