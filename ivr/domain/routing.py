"""Router: (intent, customer, time, agent state) -> RouteDecision.

The one place that decides where a caller goes: the intent's scenario and
skill, priority for high-value customers and sensitive topics, overflow to a
substitute skill when nobody with the primary skill is ready (so a caller never
waits in a queue that nobody serves), escalations to a person, the PIN rule,
and the fail-safe queue used when anything breaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from ivr.domain.model import (
    Customer,
    RouteDecision,
    RouteRequest,
    Scenario,
)
from ivr.domain.ports import AgentPool

# The skill (and queue) every caller can fall back to. Defined here only.
FALLBACK_SKILL = "general"

# Intents that disclose account data and need a PIN when the caller was not
# identified by their own number (keyed-in customer numbers can be guessed).
DEFAULT_PIN_PROTECTED = frozenset({"order_status", "invoice_question", "payment_arrears"})

# Intents that need to know whose account it is: an unknown caller is asked for
# their customer number only after asking one of these (ask first, identify when needed).
DEFAULT_ACCOUNT_INTENTS = DEFAULT_PIN_PROTECTED


def fallback_decision(reason: str, session_id: str | None = None, *,
                      customer: Customer | None = None, intent: str | None = None,
                      skill: str = FALLBACK_SKILL) -> RouteDecision:
    """The human queue of last resort. Pure: it must work when everything else is down."""
    return RouteDecision(scenario=Scenario.AGENT, skill=skill, queue=skill, priority=1,
                         reason=reason, intent=intent, customer=customer, session_id=session_id)


class SimpleRouter:
    """Rules: scenario from the catalogue; VIP/sensitive priority; skill overflow; PIN rule."""

    def __init__(
        self,
        agents: AgentPool,
        *,
        vip_tiers: tuple[str, ...] = ("gold", "platinum"),
        overflow: Mapping[str, str] | None = None,
        pin_protected: frozenset[str] = DEFAULT_PIN_PROTECTED,
        always_pin: frozenset[str] = frozenset(),
        fallback_skill: str = FALLBACK_SKILL,
        account_intents: frozenset[str] = DEFAULT_ACCOUNT_INTENTS,
    ) -> None:
        self._agents = agents
        self._vip = vip_tiers
        self._overflow = dict(overflow or {})
        self._pin_protected = pin_protected
        self._always_pin = always_pin
        self._fallback = fallback_skill
        self._account_intents = account_intents

    @property
    def overflow(self) -> Mapping[str, str]:
        """Skill -> substitute skill when nobody of the skill is ready (static plan)."""
        return MappingProxyType(self._overflow)

    async def route(self, request: RouteRequest) -> RouteDecision:
        spec = request.spec
        if spec is None:
            return await self.escalate(request, "no intent")
        customer = request.customer
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
        decision = RouteDecision(
            scenario=scenario, skill=spec.skill, queue=spec.skill, priority=priority,
            reason=reason, intent=spec.name, customer=customer, session_id=request.session_id,
        )
        if scenario is Scenario.AGENT:
            return await self.place(request, decision)
        return decision

    async def place(self, request: RouteRequest, decision: RouteDecision) -> RouteDecision:
        """Where an agent hand-off queues (the static plan: follow the overflow chain).

        The live-state router overrides this; everything else stays shared.
        """
        skill = await self._available_skill(decision.skill)
        if skill == decision.skill:
            return decision
        return replace(decision, skill=skill, queue=skill,
                       reason=f"{decision.reason}, overflow {decision.skill}->{skill}")

    async def escalate(self, request: RouteRequest, reason: str) -> RouteDecision:
        spec = request.spec
        if spec is None:
            return RouteDecision(scenario=Scenario.AGENT, skill=self._fallback,
                                 queue=self._fallback, reason=reason,
                                 customer=request.customer, session_id=request.session_id)
        as_agent = replace(request, spec=replace(spec, scenario=Scenario.AGENT))
        routed = await self.route(as_agent)
        return replace(routed, reason=f"{routed.reason}; {reason}")

    def needs_identity(self, request: RouteRequest, decision: RouteDecision) -> bool:
        spec = request.spec
        if request.customer is not None or spec is None or spec.sensitive:
            return False  # known already, or a moment that goes straight to a person
        return spec.name in self._account_intents or spec.answer_ref == "crm:order_status"

    def needs_pin(self, request: RouteRequest, decision: RouteDecision) -> bool:
        c, spec = request.customer, request.spec
        if c is None or spec is None or not c.has_pin or request.authenticated:
            return False
        if decision.scenario is Scenario.AGENT:
            return False  # the agent verifies identity themselves
        if spec.name in self._always_pin:
            return True
        return spec.name in self._pin_protected and request.identified_by != "cli"

    def fail_safe(self, reason: str, *, session_id: str | None = None,
                  customer: Customer | None = None, intent: str | None = None
                  ) -> RouteDecision:
        return fallback_decision(reason, session_id, customer=customer, intent=intent,
                                 skill=self._fallback)

    async def _available_skill(self, skill: str) -> str:
        """Follow the overflow chain until a skill has someone ready (or it ends)."""
        seen = {skill}
        current = skill
        while True:
            availability = await self._agents.availability(current)
            if availability.agents_ready > 0:
                return current
            nxt = self._overflow.get(current,
                                     self._fallback if current != self._fallback else None)
            if nxt is None or nxt in seen:
                # Nobody ready anywhere: queue on the primary skill (it is staffed, just busy).
                return skill
            seen.add(nxt)
            current = nxt
