"""The call flow: one caller's dialogue as a declared state machine over the ports.

identify (CLI) -> greet -> [key in customer number] -> proactive message ->
open question -> understand -> [confirm | keypad menu] -> decide -> [PIN] ->
act (S1 answer + "was this helpful?", S2 self-service link, S3 chat link, S4
agent) -> hand-off | close.

- ``states``: the states and the transition table (checked at run time);
- ``identify``, ``understand``, ``act``, ``handoff``: the handlers, by phase;
- ``events`` and ``journal``: what the flow emits and the contact record it folds into;
- ``core``: the driver (``CallFlow``).

Any failure of a port sends the caller to a human; the caller is never dropped
by the IVR itself.
"""

from ivr.domain.flow.config import FlowConfig
from ivr.domain.flow.context import FlowPorts
from ivr.domain.flow.core import HANDLERS, CallFlow, FlowResult
from ivr.domain.flow.journal import (
    ContactJournal,
    ContactLogObserver,
    FlowMetrics,
    ScreenPopObserver,
)
from ivr.domain.flow.states import (
    START,
    STEP_OF,
    TRANSITIONS,
    IllegalTransition,
    State,
    check_transition,
)

__all__ = [
    "HANDLERS", "START", "STEP_OF", "TRANSITIONS", "CallFlow", "ContactJournal",
    "ContactLogObserver", "FlowConfig", "FlowMetrics", "FlowPorts", "FlowResult",
    "IllegalTransition", "ScreenPopObserver", "State", "check_transition",
]
