"""The ``/route`` FastAGI handler: the whole call flow for dialplan-driven setups.

``AGI(agi://host:4573/route)`` runs the same CallFlow as the ARI app over an
``AgiCallChannel``: the caller is greeted, asked their question, and answered
(S1), sent a link (S2/S3) or handed off (S4, channel variables for the
dialplan's ``ivr-handoff``). When the flow cannot run at all, the handler sets
``IVR_FALLBACK=<reason>`` and the Router's fail-safe queue, and returns, so
the dialplan's fallback takes the caller: a broken AGI never strands a call.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from ivr.domain.model import Language, RouteDecision, known_language
from ivr.domain.ports import CallChannel, CallerHungUp
from ivr.logs import bind_session
from ivr.telephony.agi.channel import AgiCallChannel, SoundResolver, Transcribe
from ivr.telephony.agi.protocol import AgiHangup
from ivr.telephony.agi.server import AgiSession
from ivr.telephony.callerid import cli_trust_of, parse_caller
from ivr.telephony.handoff import handoff_variables

log = logging.getLogger(__name__)

FlowRunner = Callable[[CallChannel, Language], Awaitable[None]]
FailSafe = Callable[[str, str], RouteDecision]  # (reason, session id) -> a human queue


class FlowAgi:
    """Async FastAGI handler for ``/route``: ``FastAgiServer({"route": FlowAgi(...)})``.

    ``record_dir_asterisk`` is where Asterisk writes recordings (its view, e.g.
    inside a chroot or container) and ``record_dir_local`` the same directory
    as this process sees it.
    """

    def __init__(
        self,
        *,
        run_flow: FlowRunner,
        fail_safe: FailSafe,
        prompts: SoundResolver,
        transcribe: Transcribe,
        record_dir_asterisk: str,
        record_dir_local: Path,
        default_language: Language = "en",
        default_region: str = "NL",
        max_question_s: float = 15.0,
        silence_s: int = 2,
        keep_recordings: bool = False,
        new_session_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._run_flow, self._fail_safe = run_flow, fail_safe
        self._prompts, self._transcribe = prompts, transcribe
        self._rec_asterisk, self._rec_local = record_dir_asterisk, record_dir_local
        self._default_language, self._default_region = default_language, default_region
        self._max_question_s, self._silence_s = max_question_s, silence_s
        self._keep = keep_recordings
        self._new_session_id = new_session_id
        self.channels: list[AgiCallChannel] = []  # the last few, for tests and diagnostics

    def language(self, session: AgiSession) -> Language:
        """``?lang=nl`` on the AGI URL wins, then the channel's language, then the default."""
        env = session.env
        return (known_language(env.query.get("lang")) or known_language(env.language)
                or self._default_language)

    async def __call__(self, session: AgiSession) -> None:
        env = session.env
        session_id = self._new_session_id()
        # AGI(url,cli_trusted=0) from the dialplan: the number came from an untrusted source
        caller = parse_caller(env.callerid, self._default_region, dialed=env.dnid or env.extension,
                              trusted=cli_trust_of(env.arguments))
        channel = AgiCallChannel(
            session, caller=caller, prompts=self._prompts, transcribe=self._transcribe,
            record_dir_asterisk=self._rec_asterisk, record_dir_local=self._rec_local,
            session_id=session_id, max_question_s=self._max_question_s,
            silence_s=self._silence_s)
        self.channels = [*self.channels[-19:], channel]
        with bind_session(session_id):
            fallback: str | None = None
            try:
                # set first: even a fallback hand-off carries the session for screen-pop
                await session.set_variable("__IVR_SESSION", session_id)
                await self._run_flow(channel, self.language(session))
            except (AgiHangup, CallerHungUp):
                return
            except Exception:
                log.exception("agi route: the flow could not run; dialplan fallback")
                fallback = "flow_error"
            finally:
                if not self._keep:
                    for path in channel.recordings:
                        with contextlib.suppress(OSError):
                            path.unlink()
            if fallback is None and (channel.handed_off or channel.hung_up):
                return
            await self._to_human(session, fallback or "flow_ended", session_id)

    async def _to_human(self, session: AgiSession, reason: str, session_id: str) -> None:
        """The flow neither handed off nor hung up: the Router's fail-safe queue."""
        if session.hung_up:
            return
        decision = self._fail_safe(reason, session_id)
        with contextlib.suppress(AgiHangup, ConnectionError, TimeoutError):
            await session.set_variable("__IVR_FALLBACK", reason)
            for name, value in handoff_variables(decision, session_id).items():
                await session.set_variable(name, value)
