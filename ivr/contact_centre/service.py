"""The contact centre of one node: live state, membership and the live-state Router.

``ContactCentre`` ties the AMI client, the agent directory, the membership
service, the state feed and the ``SmartRouter`` together, and runs what must
keep running: the feed (events, resyncs; membership is re-applied on every
(re)connect so it survives an Asterisk restart), and the recording of which
agent answered which contact (AgentConnect carries IVR_SESSION), which
repeat-caller routing reads back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from ivr.contact_centre.feed import SUBSTITUTE_PENALTY, CentreFeed
from ivr.contact_centre.keeper import QueueKeeper
from ivr.contact_centre.membership import Membership
from ivr.contact_centre.router import SmartRouter
from ivr.domain.centre import Agent
from ivr.domain.ports import AgentPool
from ivr.domain.smart_routing import LoadSplit, OverflowStep, RoutingPolicy
from ivr.storage.agents import SqlAgentDirectory
from ivr.telephony.ami import AmiClient
from ivr.telephony.ami.events import AgentComplete, AgentConnect
from ivr.telephony.callerid import region_of  # re-exported: its home is the caller-ID parser

__all__ = ["ContactCentre", "build_policy", "region_of"]

log = logging.getLogger(__name__)


def build_policy(*, overflow: Mapping[str, str], splits: Mapping[str, LoadSplit],
                 overflow_after_s: float, repeat_window_days: float,
                 aging_step_s: float = 60.0) -> RoutingPolicy:
    """The routing policy from the skills table's overflow chain and the load splits."""
    steps = {skill: (OverflowStep(sub, overflow_after_s),) for skill, sub in overflow.items()}
    return RoutingPolicy(overflow=steps, load_split=dict(splits),
                         repeat_window_days=repeat_window_days, aging_step_s=aging_step_s)


class ContactCentre:
    """Live routing for a node (see the module docstring)."""

    def __init__(self, *, ami: AmiClient, directory: SqlAgentDirectory, pool: AgentPool,
                 overflow: Mapping[str, str], vip_tiers: tuple[str, ...],
                 always_pin: frozenset[str], stale_limit_s: float, overflow_after_s: float,
                 repeat_window_days: float, aging_step_s: float = 60.0,
                 after_agent_call: Callable[[str], Awaitable[object]] | None = None) -> None:
        self.ami = ami
        # Runs once an agent call of a contact ended (AgentComplete): the CSAT survey.
        self._after_agent_call = after_agent_call
        self.directory = directory
        self._overflow = dict(overflow)
        self._overflow_after_s = overflow_after_s
        self._repeat_window_days = repeat_window_days
        self._aging_step_s = aging_step_s
        # Substitutes join a skill's queue in standby (paused); the keeper unpauses them
        # there once its callers wait too long, so nobody loses their place
        # (ivr.domain.queue_care says why not penalty ceilings).
        self.membership = Membership(
            directory, ami, overflow={p: (sub,) for p, sub in self._overflow.items()},
            overflow_penalty=SUBSTITUTE_PENALTY)
        self.feed = CentreFeed(ami, profiles=self._profiles, before_resync=self._on_connect)
        self.router = SmartRouter(
            pool, centre=self.feed, policy=self._policy({}), history=directory,
            region_of=region_of, stale_limit_s=stale_limit_s, vip_tiers=vip_tiers,
            overflow=self._overflow, always_pin=always_pin)
        self.keeper = QueueKeeper(ami, self.feed, lambda: self.router.policy)
        self.recorded = 0

    def _policy(self, splits: Mapping[str, LoadSplit]) -> RoutingPolicy:
        return build_policy(overflow=self._overflow, splits=splits,
                            overflow_after_s=self._overflow_after_s,
                            repeat_window_days=self._repeat_window_days,
                            aging_step_s=self._aging_step_s)

    async def _profiles(self) -> Sequence[Agent]:
        return [r.profile for r in await self.directory.list_agents()]

    async def refresh(self) -> None:
        """Reload the load splits (after an API or CLI change); profiles come with the
        feed's resync."""
        self.router.set_policy(self._policy(await self.directory.load_splits()))

    async def _on_connect(self) -> None:
        await self.refresh()
        report = await self.membership.reapply()
        removed = await self._remove_logged_out()
        log.info("membership re-applied after AMI connect: %s; %d stale members removed",
                 report, removed)

    async def _remove_logged_out(self) -> int:
        """Members Asterisk kept (persistentmembers) for agents now logged out in Kanaal.

        Only agents the directory knows are touched: a member an admin configured by
        hand stays.
        """
        agents = {r.interface: r for r in await self.directory.list_agents()}
        status = await self.ami.queue_status()
        removed = 0
        for member in status.members:
            record = agents.get(member.interface)
            if record is not None and not record.logged_in:
                await self.ami.queue_remove(member.queue, member.interface)
                removed += 1
        return removed

    async def run(self) -> None:
        """Follow Asterisk until cancelled (reconnecting; calls route meanwhile)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.feed.run(), name="centre-feed")
            tg.create_task(self._record_agents(), name="centre-agents")
            tg.create_task(self.keeper.run(), name="centre-keeper")

    async def _record_agents(self) -> None:
        # AgentConnect: who answered and how long the caller queued (HoldTime);
        # AgentComplete: the talk time. Reports read both (wait, handle time, SLA).
        with self.ami.subscribe(AgentConnect, AgentComplete) as sub:
            async for event in sub:
                if not isinstance(event, AgentConnect | AgentComplete):
                    continue
                session = event.variables.get("IVR_SESSION", "")
                if not session:
                    continue
                try:
                    if isinstance(event, AgentComplete):
                        await self.directory.record_talk(session, event.talk_time)
                        if self._after_agent_call is not None:
                            await self._after_agent_call(session)
                    elif await self.directory.record_agent(session, event.interface,
                                                           wait_s=event.hold_time):
                        self.recorded += 1
                except Exception:  # the call goes on; only routing hints and reports lose
                    log.exception("could not record the agent of %s", session)
