"""Care for callers already waiting in app_queue: priority aging and overflow widening.

A routing decision places a caller once; these rules keep acting while they wait.
Both are pure functions of the live state; the contact centre's ``QueueKeeper``
applies them with AMI actions once a second.

* **Aging.** app_queue fixes a caller's priority at join, so a steady stream of
  gold callers would starve a standard one. Each waiting caller's priority rises
  by one per ``policy.aging_step_s`` waited (capped, :func:`aged_priority`),
  applied with ``QueueChangePriorityCaller``.
* **Widening without losing the place.** Substitute agents (agents of a skill's
  overflow skill) are members of the primary's queue *in standby*: paused, at
  penalty ``SUBSTITUTE_PENALTY`` and up. When the caller at the head of that queue
  has waited ``OverflowStep.after_s`` — or nobody of the primary skill is staffed
  any more — the keeper unpauses them in that queue only; when the queue is back
  under the threshold it pauses them again. The caller never leaves the queue, so
  they keep their place. (Penalty ceilings from ``queuerules.conf`` were tried
  first and dropped: app_queue counts every free member as available to every
  caller whatever their ceiling, which let a standard caller overtake a platinum
  one on the rig. A paused member is not counted.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ivr.domain.centre import STAFFED_STATES, CentreKind, CentreSnapshot, WaitingCaller
from ivr.domain.smart_routing import RoutingPolicy, aged_priority

_SIDES = {kind.value: kind for kind in CentreKind}


@dataclass(frozen=True, slots=True)
class FirstSeen:
    """A caller's priority and wait when the keeper first saw them.

    Normally at join (wait 0). After a node restart callers are first seen mid-wait
    with a priority a previous node may already have raised; aging then counts from
    that moment, so nobody is boosted twice for the same minutes.
    """

    priority: int
    waited_s: float


def split_queue_key(key: str) -> tuple[str, CentreKind | None]:
    """``billing`` -> (billing, None); ``general-own`` -> (general, OWN)."""
    skill, _, side = key.rpartition("-")
    if skill and side in _SIDES:
        return skill, _SIDES[side]
    return key, None


def aging_changes(callers: Iterable[WaitingCaller], seen: Mapping[str, FirstSeen],
                  now: float, policy: RoutingPolicy) -> tuple[tuple[WaitingCaller, int], ...]:
    """Callers whose aged priority is above their current one, with the new priority.

    Priorities only ever rise here; a caller never seen before is left alone until
    the keeper has recorded them.
    """
    out: list[tuple[WaitingCaller, int]] = []
    for caller in callers:
        first = seen.get(caller.uniqueid)
        if first is None or not caller.channel:
            continue
        waited = max(0.0, now - caller.joined_at) - first.waited_s
        target = aged_priority(first.priority, waited, policy)
        if target > caller.priority:
            out.append((caller, target))
    return tuple(out)


def standby_wanted(snapshot: CentreSnapshot, policy: RoutingPolicy,
                   now: float) -> frozenset[tuple[str, str]]:
    """(queue key, interface) of substitutes that should take calls now.

    A queue is widened when a caller in it has waited a step's ``after_s`` or when
    its own skill has nobody staffed (on that side, for a split skill's side queue).
    Only substitutes who are logged in and not paused by themselves qualify.
    """
    active: set[tuple[str, str]] = set()
    for key, queue in snapshot.queues.items():
        if queue.waiting == 0:
            continue
        skill, side = split_queue_key(key)
        steps = policy.overflow.get(skill, ())
        if not steps:
            continue
        waited = queue.longest_wait_s(now)
        unstaffed = snapshot.skill(skill).staffed(side) == 0
        for step in steps:
            if not unstaffed and waited < step.after_s:
                continue
            for view in snapshot.agents.values():
                agent = view.agent
                if (step.skill in agent.skills and skill not in agent.skills
                        and (side is None or agent.kind is side)
                        and view.status.state in STAFFED_STATES):
                    active.add((key, agent.interface))
    return frozenset(active)
