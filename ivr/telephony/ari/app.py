"""The Stasis application: one task per call, inside one TaskGroup.

A call task never lets an exception out: a bug in one call must not cancel the
TaskGroup (and with it every other call). Unexpected errors send the caller to
a human (fallback queue) instead of dropping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

from ivr.domain.model import RouteDecision
from ivr.domain.ports import CallChannel, CallerHungUp, Recognizer
from ivr.domain.routing import fallback_decision
from ivr.logs import bind_session
from ivr.telephony.ari.adopt import OrphanAdopter
from ivr.telephony.ari.channel import (
    AnswerBacklog,
    AriCallChannel,
    AriChannelSettings,
    CallState,
    LeaseRenewer,
    PromptResolver,
    is_helper_channel,
)
from ivr.telephony.ari.client import AriClient, AriError, Subscription
from ivr.telephony.ari.events import StasisStart
from ivr.telephony.callerid import cli_trust_of
from ivr.telephony.handoff import handoff_variables

log = logging.getLogger(__name__)

FlowRunner = Callable[[CallChannel], Awaitable[None]]
# (channel, session id) -> runs the flow on from the contact of that session
ResumeRunner = Callable[[CallChannel, str], Awaitable[None]]
# StasisStart argument of a caller who pressed the queue's exit key ([ivr-queue-exit])
QUEUE_EXIT = "queue-exit"
# StasisStart argument of a caller back after the agent hung up ([ivr-csat]): the survey
CSAT = "csat"
FailSafe = Callable[[str, str], RouteDecision]  # (reason, session id) -> a human queue


def _new_session_id() -> str:
    return uuid.uuid4().hex


class StasisApp:
    """Accepts calls entering ``Stasis(app)`` and runs ``flow_runner`` on each."""

    def __init__(
        self,
        client: AriClient,
        *,
        flow_runner: FlowRunner,
        prompts: PromptResolver,
        recognizer: Recognizer | None,
        settings: AriChannelSettings | None = None,
        fail_safe: FailSafe = fallback_decision,
        max_calls: int = 200,
        new_session_id: Callable[[], str] = _new_session_id,
        on_call_end: Callable[[AriCallChannel], None] | None = None,
        resume_runner: ResumeRunner | None = None,
        renew_lease: LeaseRenewer | None = None,
        survey_runner: ResumeRunner | None = None,
        adopter: OrphanAdopter | None = None,
    ) -> None:
        self._client = client
        self._flow_runner = flow_runner
        self._resume_runner = resume_runner
        self._survey_runner = survey_runner
        # Without a renewer (no AMI) calls have no lease: a dead node's callers then
        # wait for the call limit, as before the lease existed.
        self._renew_lease = renew_lease
        self._prompts = prompts
        self._recognizer = recognizer
        self._settings = settings or AriChannelSettings()
        self._fail_safe_decision = fail_safe
        self._max_calls = max_calls
        self._new_session_id = new_session_id
        self._on_call_end = on_call_end
        # Several nodes: on connecting, callers a dead node left in the app get a human.
        self._adopter = adopter
        self.calls: dict[str, AriCallChannel] = {}
        self._backlog = AnswerBacklog()  # this node's callers waiting for an answer
        self.completed = 0
        self.failed = 0
        self.adopted = 0  # calls a dead node left in the app, handed to a human here
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Read events and serve calls until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._client.run(on_connect=self._on_connect))
            self.ready.set()
            while True:
                start, sub = await self._client.next_call()
                tg.create_task(self._call(start, sub))

    async def _on_connect(self) -> None:
        # Only on this process's first connection (a start, or a standby taking over):
        # after a websocket gap the channels in the app are this node's own live calls.
        if self._client.connects == 1:
            try:
                await self.adopt_orphans()
            except AriError as exc:
                log.error("could not look for orphaned calls: %s", exc)

    def _is_ours(self, channel_id: str) -> bool:
        return self._client.claims(channel_id) or any(
            c.channel_id == channel_id for c in self.calls.values())

    async def adopt_orphans(self) -> int:
        """Callers a dead node left in this Stasis app go to a human with their context
        (``ivr.telephony.ari.adopt``, which also hangs up their snoop/externalMedia legs);
        the bridges of those legs are destroyed. Returns how many callers were handed."""
        if self._adopter is None:
            return 0
        done = await self._adopter.adopt(self._client, self._is_ours)
        callers = [a for a in done if a.queue]  # helper legs are adopted with no queue
        # A helper leg is <caller>-snoop / <caller>-em; its bridge is <caller>-br.
        stale = {a.channel_id for a in callers} | {a.channel_id.rsplit("-", 1)[0]
                                                   for a in done if not a.queue}
        for caller in stale:
            with contextlib.suppress(AriError):
                await self._client.destroy_bridge(f"{caller}-br")
        if callers:
            log.warning("adopted %d calls left in Stasis(%s) by a dead node",
                        len(callers), self._client.app)
        self.adopted += len(callers)
        return len(callers)

    async def _label(self, channel_id: str, session_id: str) -> None:
        """The session on the channel from the start, inherited by the agent leg: a node
        taking over (or the lease's dialplan path) hands the caller on with it."""
        try:
            await self._client.set_variable(channel_id, "__IVR_SESSION", session_id)
        except AriError as exc:  # a missing label costs context on failover, not the call
            log.warning("labelling %s with its session failed: %s", channel_id, exc)

    async def _call(self, start: StasisStart, sub: Subscription) -> None:
        info = start.channel
        if is_helper_channel(info):
            # An orphaned snoop/externalMedia leg (e.g. from before a restart).
            sub.close()
            await self._safe_hangup(info.id)
            return
        if len(self.calls) >= self._max_calls:
            sub.close()
            log.warning("at capacity (%d calls): sending %s to the fallback queue",
                        self._max_calls, info.id)
            await self._overflow(info.id)
            return
        # A caller back from the queue by key goes on with their contact (same session);
        # without one (a call that never had a session) the resume fails and the
        # fail-safe below puts them back with a human, whom they were waiting for.
        resumed = self._reentry(start, QUEUE_EXIT, self._resume_runner)
        survey = self._reentry(start, CSAT, self._survey_runner)
        session_id = resumed or survey or self._new_session_id()
        # Every log line of this call carries its session id. Each call runs in its own
        # task (its own copy of the context), so the binding ends with the call.
        bind_session(session_id)
        channel = AriCallChannel(
            self._client, sub, info,
            session_id=session_id,
            recognizer=self._recognizer,
            prompts=self._prompts,
            settings=self._settings,
            renew_lease=self._renew_lease,
            cli_trusted=cli_trust_of(start.args),
            backlog=self._backlog,
        )
        self.calls[channel.session_id] = channel
        try:
            if self._adopter is not None:
                await self._label(info.id, session_id)
            await channel.answer()
            await self._serve(channel, resumed, survey)
            if channel.state is CallState.ACTIVE:
                await channel.hang_up()
            self.completed += 1
        except CallerHungUp:
            self.completed += 1
        except Exception:
            self.failed += 1
            if survey is not None:
                # After the agent call a broken survey just lets the caller go.
                log.exception("survey of %s failed; hanging up", channel.session_id)
                await self._end(channel)
            else:
                log.exception("call %s failed; sending it to a human", channel.session_id)
                await self._fail_safe(channel)
        finally:
            try:
                await channel.close()
            except Exception:
                log.exception("teardown of call %s failed", channel.session_id)
            del self.calls[channel.session_id]
            if self._on_call_end is not None:
                self._on_call_end(channel)

    @staticmethod
    def _reentry(start: StasisStart, route: str, runner: ResumeRunner | None) -> str | None:
        """The session of a caller back into the app by ``route`` (its Stasis argument)."""
        if start.args[:1] != (route,) or runner is None:
            return None
        return start.args[1] if len(start.args) > 1 else ""

    async def _serve(self, channel: AriCallChannel, resumed: str | None,
                     survey: str | None) -> None:
        if survey is not None and self._survey_runner is not None:
            await self._survey_runner(channel, survey)
        elif resumed is not None and self._resume_runner is not None:
            await self._resume_runner(channel, resumed)
        else:
            await self._flow_runner(channel)

    async def _end(self, channel: AriCallChannel) -> None:
        if channel.state is CallState.ACTIVE:
            try:
                await channel.hang_up()
            except (CallerHungUp, AriError) as exc:
                log.warning("hangup of %s failed: %s", channel.session_id, exc)

    async def _fail_safe(self, channel: AriCallChannel) -> None:
        if channel.state not in (CallState.ACTIVE, CallState.RINGING):
            return
        decision = self._fail_safe_decision("error_to_agent", channel.session_id)
        try:
            await channel.hand_off(decision)
        except (CallerHungUp, AriError) as exc:
            log.error("fallback hand-off of %s failed (%s); hanging up",
                      channel.session_id, exc)
            await channel.hang_up()

    async def _overflow(self, channel_id: str) -> None:
        session_id = self._new_session_id()
        decision = self._fail_safe_decision("at_capacity", session_id)
        try:
            for name, value in handoff_variables(decision, session_id).items():
                await self._client.set_variable(channel_id, name, value)
            await self._client.continue_in_dialplan(
                channel_id, context=self._settings.handoff_context,
                extension=self._settings.handoff_extension,
                priority=self._settings.handoff_priority,
            )
        except AriError as exc:
            log.error("overflow of %s failed: %s", channel_id, exc)

    async def _safe_hangup(self, channel_id: str) -> None:
        try:
            await self._client.hangup(channel_id)
        except AriError as exc:
            log.warning("hangup of %s failed: %s", channel_id, exc)
