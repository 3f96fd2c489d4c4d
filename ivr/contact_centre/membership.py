"""Agent login/logout/pause as dynamic app_queue membership (QueueAdd/Remove/Pause).

The agent directory (the database) is the source of truth for who is logged in;
Asterisk holds the live membership. Every AMI (re)connect calls :meth:`reapply`,
so membership survives an Asterisk restart (``persistentmembers=no`` in
queues.conf: Asterisk forgets dynamic members when it restarts).

One skill = one queue, ``ivr-<skill>``; penalty = 5 - proficiency, so the best
agents are rung first (``ivr.domain.centre.penalty_for``). Two additions follow
the routing design (``ivr.domain.smart_routing``, dialplan/queues.conf):

* a skill with an own/partner load split also has a queue per side,
  ``ivr-<skill>-own`` / ``ivr-<skill>-partner``; agents join their side's queue
  as well as the main one (which stays the fallback);
* with ``overflow`` given (primary skill -> substitute skills, in order), an agent
  without the primary skill but with its i-th substitute joins the primary's
  queue(s) at penalty ``overflow_penalty + i`` *in standby* (paused): the
  contact centre's ``QueueKeeper`` unpauses them in that queue when its callers
  wait too long (``ivr.domain.queue_care``). Resuming an agent therefore unpauses
  their own queues one by one, never the standby ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ivr.domain.centre import penalty_for
from ivr.domain.centre_errors import (
    AgentAlreadyLoggedIn,
    AgentInactive,
    AgentNotLoggedIn,
    MembershipRefused,
    MembershipUnavailable,
    NoQueueForSkills,
    UnknownAgent,
)
from ivr.domain.ports import PortError
from ivr.domain.staffing import AgentDirectory, AgentRecord
from ivr.telephony.ami.client import AmiActionError

log = logging.getLogger(__name__)


class QueueControl(Protocol):
    """The part of :class:`~ivr.telephony.ami.AmiClient` membership needs.

    Raises ``AmiActionError`` when Asterisk answers ``Response: Error`` and another
    ``PortError`` when AMI is unreachable or silent.
    """

    async def queue_add(
        self, queue: str, interface: str, *, penalty: int = 0, paused: bool = False,
        member_name: str | None = None, state_interface: str | None = None,
    ) -> object:
        """AMI QueueAdd."""

    async def queue_remove(self, queue: str, interface: str) -> object:
        """AMI QueueRemove."""

    async def queue_pause(
        self, interface: str, paused: bool, *, queue: str | None = None,
        reason: str | None = None,
    ) -> object:
        """AMI QueuePause (every queue when ``queue`` is None)."""


@dataclass(frozen=True, slots=True)
class QueueProblem:
    """A skill the agent could not join or leave, and why."""

    skill: str
    queue: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.skill}: {self.reason}"


@dataclass(frozen=True, slots=True)
class MembershipResult:
    """Outcome of a login or logout: queues joined/left and per-skill problems."""

    agent: AgentRecord
    queues: tuple[str, ...]
    problems: tuple[QueueProblem, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.problems

    def problem_text(self) -> str:
        """One line for a CLI error or an API warning ('' when complete)."""
        return "; ".join(str(p) for p in self.problems)


@dataclass(frozen=True, slots=True)
class ReapplyReport:
    """What :meth:`Membership.reapply` did: agents and memberships (re)applied."""

    agents: int
    memberships: int
    problems: tuple[tuple[str, QueueProblem], ...] = ()  # (agent code, problem)


@dataclass(frozen=True, slots=True)
class _Target:
    skill: str  # the skill the queue serves
    queue: str
    penalty: int
    standby: bool = False  # a substitute: joins paused, the QueueKeeper unpauses


@dataclass(frozen=True, slots=True)
class _Layout:
    """Queues as configured now: skill -> main queue, and the skills split by side."""

    queues: Mapping[str, str]
    split: frozenset[str]


def _matches(exc: AmiActionError, *needles: str) -> bool:
    message = exc.response.message.lower()
    return any(n in message for n in needles)


class Membership:
    """Logs agents in and out of their skills' queues and keeps Asterisk in step.

    Concurrent requests for one agent are serialised here; across nodes the
    directory's conditional updates make a double login fail cleanly.
    """

    def __init__(self, directory: AgentDirectory, ami: QueueControl, *,
                 overflow: Mapping[str, Sequence[str]] | None = None,
                 overflow_penalty: int = 10) -> None:
        self._directory = directory
        self._ami = ami
        self._overflow = dict(overflow or {})
        self._overflow_penalty = overflow_penalty
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, code: str) -> asyncio.Lock:
        return self._locks.setdefault(code, asyncio.Lock())

    async def _require(self, code: str) -> AgentRecord:
        agent = await self._directory.get(code)
        if agent is None:
            raise UnknownAgent(code)
        return agent

    async def _layout(self) -> _Layout:
        queues = await self._directory.queues_for_skills()
        split = frozenset(sp.skill for sp in await self._directory.list_splits())
        return _Layout(queues, split)

    def _plan(self, agent: AgentRecord, layout: _Layout,
              ) -> tuple[list[_Target], list[QueueProblem]]:
        """Queues the agent belongs in (lowest penalty per queue) and skills without one."""
        wanted: dict[str, _Target] = {}
        missing: list[QueueProblem] = []

        def want(skill: str, penalty: int, standby: bool = False) -> None:
            main = layout.queues[skill]
            names = [main, f"{main}-{agent.profile.kind.value}"] if skill in layout.split \
                else [main]
            for queue in names:
                if queue not in wanted or penalty < wanted[queue].penalty:
                    wanted[queue] = _Target(skill, queue, penalty, standby)

        skills = agent.profile.skills
        for skill, proficiency in sorted(skills.items()):
            if skill in layout.queues:
                want(skill, penalty_for(proficiency))
            else:
                missing.append(QueueProblem(skill, None, "no queue in the skills table"))
        for primary, substitutes in self._overflow.items():
            if primary in skills or primary not in layout.queues:
                continue
            rank = next((i for i, sub in enumerate(substitutes) if sub in skills), None)
            if rank is not None:
                want(primary, self._overflow_penalty + rank, standby=True)
        return sorted(wanted.values(), key=lambda t: t.queue), missing

    # ------------------------------------------------------------ login
    async def login(self, code: str) -> MembershipResult:
        """QueueAdd the agent to each skill's queue and mark them logged in.

        Raises UnknownAgent, AgentInactive, AgentAlreadyLoggedIn (nothing changed),
        NoQueueForSkills (no skill has a queue), MembershipUnavailable (AMI down:
        queues joined so far are left again, the agent stays logged out) or
        MembershipRefused (Asterisk refused every queue). Skills without a queue
        are reported in the result's ``problems``; the other skills are joined.
        """
        async with self._lock(code):
            agent = await self._require(code)
            if agent.logged_in:
                raise AgentAlreadyLoggedIn(code)
            if not agent.active:
                raise AgentInactive(code)
            targets, missing = self._plan(agent, await self._layout())
            if not targets:
                raise NoQueueForSkills(code, agent.profile.skills)
            # Claim first: the conditional update is what stops a second node's login.
            await self._directory.set_logged_in(code, True)
            try:
                joined, refused = await self._join(agent, targets, undo_on_failure=True)
                if not joined:
                    raise MembershipRefused(
                        f"agent {code}: Asterisk refused every queue: "
                        + "; ".join(map(str, refused)))
            except BaseException:
                await self._release_claim(code)
                raise
            record = await self._require(code)
        log.info("agent %s logged in to %s", code, ", ".join(joined))
        return MembershipResult(record, tuple(joined), (*missing, *refused))

    async def _release_claim(self, code: str) -> None:
        try:
            await self._directory.set_logged_in(code, False)
        except Exception as exc:  # the login's own error is the one to report
            log.error("agent %s: could not undo the login flag: %s", code, exc)

    async def _join(self, agent: AgentRecord, targets: list[_Target], *,
                    undo_on_failure: bool) -> tuple[list[str], list[QueueProblem]]:
        """QueueAdd per target; 'Already there' counts as joined (a reapply, a retry)."""
        joined: list[str] = []
        refused: list[QueueProblem] = []
        for t in targets:
            try:
                await self._ami.queue_add(
                    t.queue, agent.interface, penalty=t.penalty,
                    paused=agent.paused or t.standby,
                    member_name=agent.name, state_interface=agent.interface)
                joined.append(t.queue)
            except AmiActionError as exc:
                if _matches(exc, "already there"):
                    joined.append(t.queue)
                else:
                    refused.append(QueueProblem(t.skill, t.queue, exc.response.message))
            except PortError as exc:
                if undo_on_failure:
                    await self._leave_quietly(agent, joined)
                raise MembershipUnavailable(
                    f"agent {agent.code}: Asterisk AMI unavailable ({exc})") from exc
        return joined, refused

    async def _leave_quietly(self, agent: AgentRecord, queues: list[str]) -> None:
        for queue in queues:
            try:
                await self._ami.queue_remove(queue, agent.interface)
            except PortError as exc:
                log.warning("agent %s: could not leave %s again: %s", agent.code, queue, exc)

    # ------------------------------------------------------------ logout
    async def logout(self, code: str) -> MembershipResult:
        """QueueRemove the agent from each skill's queue, then mark them logged out.

        If AMI fails half-way the agent stays logged in (the next :meth:`reapply`
        restores the queues left so far) and MembershipUnavailable is raised.
        """
        async with self._lock(code):
            agent = await self._require(code)
            if not agent.logged_in:
                raise AgentNotLoggedIn(code)
            targets, _ = self._plan(agent, await self._layout())
            left: list[str] = []
            problems: list[QueueProblem] = []
            for t in targets:
                try:
                    await self._ami.queue_remove(t.queue, agent.interface)
                    left.append(t.queue)
                except AmiActionError as exc:
                    if _matches(exc, "not there", "no such queue"):
                        left.append(t.queue)  # gone already: that is what we want
                    else:  # e.g. "Member not dynamic": a static member in queues.conf
                        problems.append(QueueProblem(t.skill, t.queue, exc.response.message))
                except PortError as exc:
                    raise MembershipUnavailable(
                        f"agent {code}: Asterisk AMI unavailable ({exc}); "
                        "still logged in") from exc
            record = await self._directory.set_logged_in(code, False)
        log.info("agent %s logged out", code)
        return MembershipResult(record, tuple(left), tuple(problems))

    # ------------------------------------------------------------ pause
    async def pause(self, code: str, reason: str | None = None) -> AgentRecord:
        """QueuePause in every queue (with ``reason``); the agent must be logged in."""
        return await self._set_paused(code, True, reason)

    async def resume(self, code: str) -> AgentRecord:
        """Unpause in every queue."""
        return await self._set_paused(code, False, None)

    async def _set_paused(self, code: str, paused: bool, reason: str | None) -> AgentRecord:
        async with self._lock(code):
            agent = await self._require(code)
            if not agent.logged_in:
                raise AgentNotLoggedIn(code)
            await self._pause_in_asterisk(agent, paused, reason)
            try:
                return await self._directory.set_paused(code, paused, reason)
            except BaseException:
                # Keep Asterisk and the directory in step: undo the pause.
                try:
                    await self._pause_in_asterisk(agent, agent.paused, agent.pause_reason)
                except (MembershipUnavailable, MembershipRefused) as exc:
                    log.error("agent %s: could not undo QueuePause: %s", code, exc)
                raise

    async def _pause_in_asterisk(self, agent: AgentRecord, paused: bool,
                                 reason: str | None) -> None:
        try:
            if paused or not self._overflow:
                await self._ami.queue_pause(agent.interface, paused, reason=reason or None)
            else:
                # Unpause the agent's own queues only: a standby membership stays paused
                # until the QueueKeeper widens that queue.
                targets, _ = self._plan(agent, await self._layout())
                for t in targets:
                    if not t.standby:
                        await self._ami.queue_pause(agent.interface, False, queue=t.queue)
        except AmiActionError as exc:
            raise MembershipRefused(
                f"agent {agent.code}: Asterisk refused QueuePause for {agent.interface} "
                f"({exc.response.message}); is it in any queue? (AMI reconnect reapplies "
                "logins)") from exc
        except PortError as exc:
            raise MembershipUnavailable(
                f"agent {agent.code}: Asterisk AMI unavailable ({exc})") from exc

    # ------------------------------------------------------------ resync
    async def reapply(self) -> ReapplyReport:
        """Re-add every logged-in agent to its queues (paused ones paused, with reason).

        'Already a member' is fine. Raises MembershipUnavailable if AMI drops, so the
        AMI client's resync loop retries with backoff. Agents are done one after the
        other: Asterisk runs one manager session's actions in order anyway.
        """
        layout = await self._layout()
        agents = await self._directory.list_agents(logged_in=True)
        count = 0
        problems: list[tuple[str, QueueProblem]] = []
        for listed in agents:
            joined, trouble = await self._reapply_one(listed.code, layout)
            count += joined
            problems.extend((listed.code, p) for p in trouble)
        for code, problem in problems:
            log.warning("reapply: agent %s: %s", code, problem)
        log.info("reapplied %d memberships of %d agents", count, len(agents))
        return ReapplyReport(agents=len(agents), memberships=count, problems=tuple(problems))

    async def _reapply_one(self, code: str, layout: _Layout,
                           ) -> tuple[int, list[QueueProblem]]:
        async with self._lock(code):
            agent = await self._directory.get(code)  # fresh: it may have changed meanwhile
            if agent is None or not agent.logged_in:
                return 0, []
            targets, problems = self._plan(agent, layout)
            joined, refused = await self._join(agent, targets, undo_on_failure=False)
            problems.extend(refused)
            if joined and agent.paused and agent.pause_reason:
                # QueueAdd carries no reason; supervisors' wallboards show it.
                try:
                    await self._pause_in_asterisk(agent, True, agent.pause_reason)
                except MembershipRefused as exc:
                    problems.append(QueueProblem("*", None, str(exc)))
        return len(joined), problems

    async def on_connect(self, _client: object) -> None:
        """``AmiClient.run(on_connect=...)`` hook: reapply after every (re)login."""
        await self.reapply()
