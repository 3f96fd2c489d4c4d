"""Router: (intent, customer, time, agent state) -> RouteDecision.

A deliberately small rule set behind the Router port: the intent's scenario and
skill, priority for high-value customers and sensitive topics, and overflow to a
substitute skill when nobody with the primary skill is ready, so a caller never
waits in a queue that nobody serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ivr.domain.model import Customer, IntentSpec, Language, RouteDecision, Scenario
from ivr.domain.ports import AgentPool

GENERAL_SKILL = "general"


class SimpleRouter:
    """Rules: scenario from the catalogue; VIP/sensitive priority; skill overflow."""

    def __init__(
        self,
        agents: AgentPool,
        *,
        vip_tiers: tuple[str, ...] = ("gold", "platinum"),
        overflow: Mapping[str, str] | None = None,
    ) -> None:
        self._agents = agents
        self._vip = vip_tiers
        self._overflow = dict(overflow or {})

    async def route(
        self,
        *,
        spec: IntentSpec,
        customer: Customer | None,
        at: datetime,
        language: Language,
    ) -> RouteDecision:
        priority = 0
        reason = f"intent {spec.name}"
        if customer is not None and customer.tier in self._vip:
            priority += 5
            reason += f", {customer.tier} customer"
        scenario = spec.scenario
        if spec.sensitive:
            # Seeds: some moments need a person; never automate them.
            scenario = Scenario.AGENT
            priority += 10
            reason += ", sensitive topic"
        skill = spec.skill
        if scenario is Scenario.AGENT:
            skill = await self._available_skill(spec.skill)
        if skill != spec.skill:
            reason += f", overflow {spec.skill}->{skill}"
        return RouteDecision(
            scenario=scenario,
            skill=skill,
            queue=skill,
            priority=priority,
            reason=reason,
            intent=spec.name,
            customer=customer,
        )

    async def _available_skill(self, skill: str) -> str:
        """Follow the overflow chain until a skill has someone ready (or it ends)."""
        seen = {skill}
        current = skill
        while True:
            availability = await self._agents.availability(current)
            if availability.agents_ready > 0:
                return current
            nxt = self._overflow.get(current, GENERAL_SKILL if current != GENERAL_SKILL else None)
            if nxt is None or nxt in seen:
                # Nobody ready anywhere: queue on the primary skill (it is staffed, just busy).
                return skill
            seen.add(nxt)
            current = nxt
