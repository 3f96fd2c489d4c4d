"""The channel variables a hand-off leaves for the dialplan and the agent leg.

Shared by the ARI and the FastAGI channels so both paths hand over the same
context. ``__`` makes a variable inherit to the agent leg that Queue() dials,
so the agent's phone and desktop can read IVR_SESSION there; the
``ivr-handoff`` context turns IVR_QUEUE (a skill or a queue name) into a queue.
"""

from __future__ import annotations

from ivr.domain.model import RouteDecision


def handoff_variables(decision: RouteDecision, session_id: str,
                      language: str | None = None) -> dict[str, str]:
    """Variable name -> value, in the order they should be set."""
    variables = {
        # The caller's language for what Kanaal says while they wait in the queue
        # (ivr.contact_centre.announcer) and after they leave it with a key.
        "IVR_LANG": language or "",
        "__IVR_SESSION": decision.session_id or session_id,
        "__IVR_INTENT": decision.intent or "",
        "__IVR_SCENARIO": decision.scenario.value,
        "__IVR_SKILL": decision.skill,
        "__IVR_CUSTOMER": str(decision.customer.id) if decision.customer else "",
        "IVR_QUEUE": decision.queue,
        "QUEUE_PRIO": str(int(decision.priority)),
        # Smart routing: the dialplan rings IVR_PREFERRED (a repeat caller's previous
        # agent, or a ready agent in their region with nobody waiting ahead) first.
        "IVR_PREFERRED": decision.preferred_agent or "",
        # A surveyed skill: app_queue continues after the agent hangs up ([ivr-csat]).
        "IVR_CSAT": "1" if decision.survey else "",
    }
    # A fresh channel has none of the routing extras: setting them empty would only
    # cost requests on every hand-off.
    extras = ("IVR_PREFERRED", "IVR_LANG", "IVR_CSAT")
    return {k: v for k, v in variables.items() if v or k not in extras}
