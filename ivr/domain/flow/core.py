"""The driver: runs one call through the declared states, emitting events.

Each state's handler returns the next state; the driver checks the move
against ``TRANSITIONS`` before taking it. Any port failure sends the caller to
a human (``fail_safe``); the contact record is completed in every case.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from ivr.domain.flow import act, handoff, identify, online, prepare, survey, understand
from ivr.domain.flow.config import FlowConfig
from ivr.domain.flow.context import Call, FlowPorts
from ivr.domain.flow.events import Ended
from ivr.domain.flow.journal import ContactJournal
from ivr.domain.flow.states import START, STEP_OF, State, check_transition
from ivr.domain.model import (
    Contact,
    ContactChannel,
    ContactSnapshot,
    Outcome,
    RouteDecision,
    Step,
)
from ivr.domain.ports import CallChannel, CallerHungUp, FlowObserver

log = logging.getLogger(__name__)

Handler = Callable[[Call], Awaitable[State]]

HANDLERS: Mapping[State, Handler] = MappingProxyType({
    State.IDENTIFY: identify.identify,
    State.GREET: identify.greet,
    State.KEY_IN: identify.key_in,
    State.PROACTIVE: identify.proactive,
    State.ASK: understand.ask,
    State.UNDERSTAND: understand.understand,
    State.CONFIRM: understand.confirm,
    State.KEYPAD: understand.keypad,
    State.DECIDE: act.decide,
    State.AUTHENTICATE: identify.authenticate,
    State.ACT: act.act,
    State.FEEDBACK: act.feedback,
    State.HANDOFF: handoff.handoff,
    State.CLOSE: handoff.close,
    State.QUEUE_EXIT: handoff.queue_exit,
    State.SURVEY: survey.survey,
    State.ONLINE: online.online,
})


@dataclass(frozen=True, slots=True)
class FlowResult:
    """What happened, for the caller of ``CallFlow.run`` (CLI table, tests, metrics)."""

    outcome: Outcome
    decision: RouteDecision | None
    contact: ContactSnapshot


class CallFlow:
    """Runs one call. Construct one per call; ``run()`` never raises (bar cancellation)."""

    def __init__(
        self,
        channel: CallChannel,
        *,
        ports: FlowPorts,
        config: FlowConfig,
        observers: Sequence[FlowObserver] = (),
        contact_channel: ContactChannel = ContactChannel.VOICE,
        handlers: Mapping[State, Handler] = HANDLERS,
        resume: ContactSnapshot | None = None,
        entry: State = State.QUEUE_EXIT,
    ) -> None:
        """``resume``: the contact of a caller who left the queue by key; the flow goes
        on with that record (question, intent, transcript, steps) from ``entry``
        (QUEUE_EXIT, or SURVEY for a caller back after the agent hung up)."""
        caller = channel.caller
        if resume is not None:
            contact = Contact.resumed(resume)
            config = replace(config, default_language=resume.language)
        else:
            contact = Contact(
                id=channel.session_id,
                channel=contact_channel,
                caller=caller.number or caller.raw or "withheld",
                started_at=ports.clock.now(),
                language=config.default_language,
            )
        self.journal = ContactJournal(contact, observers)
        self._call = Call(channel, ports, config, self.journal)
        self._handlers = handlers
        self._state = START if resume is None else entry

    @property
    def state(self) -> State:
        return self._state

    @property
    def contact(self) -> Contact:
        return self.journal.contact

    async def run(self) -> FlowResult:
        dropped: Step | None = None
        outcome: Outcome | None = None
        try:
            while self._state is not State.DONE:
                if self._state is State.GREET:
                    # Identified by caller ID (or not): the likely answers are prepared
                    # while the greeting plays and the caller asks.
                    prepare.start(self._call)
                nxt = await self._handlers[self._state](self._call)
                self._state = check_transition(self._state, nxt)
        except CallerHungUp:
            dropped = STEP_OF[self._state]
            log.info("caller hung up during %s", self._state.value)
        except Exception as exc:  # any port failure (or a bad transition): fail safe
            log.exception("call flow failed in %s; sending caller to a human",
                          self._state.value)
            if not await handoff.fail_safe(self._call, self._state, exc):
                dropped, outcome = Step.HANDOFF, Outcome.ABANDONED
        finally:
            await prepare.stop(self._call)
            # A caller who hangs up after being served keeps that outcome.
            outcome = outcome or self.contact.outcome or Outcome.ABANDONED
            await self.journal.emit(Ended(outcome, self._call.now(), dropped))
        return FlowResult(outcome=self.contact.outcome or Outcome.ABANDONED,
                          decision=self.journal.decision, contact=self.contact.snapshot())
