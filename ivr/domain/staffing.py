"""Staffing: the agent directory's records, load-split settings and the directory port.

Pure domain (no I/O). ``ivr.storage.agents.SqlAgentDirectory`` implements
:class:`AgentDirectory`; ``ivr.contact_centre.membership`` turns logins into
app_queue membership with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ivr.domain.centre import Agent
from ivr.domain.centre_errors import BadSplit
from ivr.domain.smart_routing import LoadSplit

QUEUE_PREFIX = "ivr-"


def queue_name(queue: str) -> str:
    """app_queue name for a skill's queue: ``billing`` -> ``ivr-billing``.

    The skills table holds the bare name (the dialplan accepts both spellings),
    queues.conf names them ``ivr-<skill>``; an already prefixed name is kept.
    """
    return queue if queue.startswith(QUEUE_PREFIX) else QUEUE_PREFIX + queue


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent as the directory keeps it: the routing profile plus login state.

    ``profile.id`` is the agent's code ("1001"), the key people and CentreState use;
    ``db_id`` is the table's integer key (``contacts.agent_id``).
    """

    db_id: int
    profile: Agent
    logged_in: bool = False
    paused: bool = False
    pause_reason: str | None = None
    active: bool = True
    updated_at: datetime | None = None

    @property
    def code(self) -> str:
        return self.profile.id

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def interface(self) -> str:
        return self.profile.interface


@dataclass(frozen=True, slots=True)
class SplitSetting:
    """Own/partner share of one skill's calls in percent (always sums to 100)."""

    skill: str
    own_pct: int
    partner_pct: int
    updated_at: datetime | None = None

    def as_load_split(self) -> LoadSplit:
        """The weights :class:`~ivr.domain.smart_routing.RoutingPolicy` takes."""
        return LoadSplit(own=self.own_pct, partner=self.partner_pct)


def make_split(skill: str, own: int, partner: int) -> SplitSetting:
    """A validated split; raises :class:`BadSplit` with the reason."""
    if not skill:
        raise BadSplit("a load split needs a skill")
    for side, pct in (("own", own), ("partner", partner)):
        if not 0 <= pct <= 100:
            raise BadSplit(f"{skill}: {side}={pct} must be between 0 and 100")
    if own + partner != 100:
        raise BadSplit(f"{skill}: own={own} + partner={partner} must add up to 100")
    return SplitSetting(skill=skill, own_pct=own, partner_pct=partner)


@dataclass(frozen=True, slots=True)
class PreviousAgentContact:
    """Who answered a customer's most recent contact about an intent (repeat callers)."""

    contact_id: str
    agent_interface: str
    agent_code: str | None  # None when the interface is not (or no longer) in the directory
    started_at: datetime
    intent: str | None = None

    def as_history(self) -> tuple[str, datetime, str | None]:
        """(interface, when, intent): the shape ``contact_centre.router.AgentHistory`` reads."""
        return self.agent_interface, self.started_at, self.intent


class AgentDirectory(Protocol):
    """What the membership service needs from the agent directory."""

    async def get(self, code: str) -> AgentRecord | None:
        """The agent with this code, None when unknown."""

    async def list_agents(self, *, logged_in: bool | None = None) -> Sequence[AgentRecord]:
        """Every agent (only those logged in / out when ``logged_in`` is given)."""

    async def queues_for_skills(self) -> dict[str, str]:
        """skill -> app_queue queue name, for every skill that has a queue."""
        ...

    async def set_logged_in(self, code: str, logged_in: bool) -> AgentRecord:
        """Record a login or logout; a second login raises AgentAlreadyLoggedIn."""

    async def set_paused(self, code: str, paused: bool,
                         reason: str | None = None) -> AgentRecord: ...

    async def list_splits(self) -> Sequence[SplitSetting]:
        """Skills with an own/partner split have a queue per side as well."""
        ...


class StaffingDirectory(AgentDirectory, Protocol):
    """The directory plus load-split editing, as the agents API and CLI use it."""

    async def get_split(self, skill: str) -> SplitSetting | None:
        """The skill's own/partner load split, None when it has none."""

    async def set_split(self, skill: str, own: int, partner: int) -> SplitSetting:
        """Store a load split (percentages adding up to 100, else BadSplit)."""
