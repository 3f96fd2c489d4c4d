"""The ``/route`` FastAGI handler: who is calling, what do they want, which queue.

For dialplan-driven setups without the ARI app: ``AGI(agi://host:4573/route)``
records the caller's question, has it transcribed and routed by injected
callables, and leaves the answer in channel variables for the dialplan
(``IVR_SESSION``, ``IVR_INTENT``, ``IVR_SCENARIO``, ``IVR_QUEUE``). Every
failure ends in ``IVR_FALLBACK=<reason>`` and an early return, so the
dialplan's fallback queue takes the caller: a broken AGI never strands a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ivr.domain.model import LANGUAGES, Caller, Language, RouteDecision
from ivr.telephony.agi.protocol import AgiHangup
from ivr.telephony.agi.server import AgiSession
from ivr.telephony.callerid import parse_caller

log = logging.getLogger(__name__)

Transcribe = Callable[[Path, Language], Awaitable[str]]
Decide = Callable[[str, Caller, Language], Awaitable[RouteDecision]]


@dataclass(frozen=True, slots=True)
class AgiRouteOutcome:
    """What one /route session did (handed to ``on_outcome``, e.g. the contact log)."""

    session_id: str
    caller: Caller
    language: Language
    question: str | None
    decision: RouteDecision | None
    fallback: str | None  # reason when the dialplan's fallback queue takes over
    recording: Path | None


class RouteAgi:
    """Async FastAGI handler for ``/route``.

    Register it as ``FastAgiServer({"route": RouteAgi(...)})``.

    ``record_dir_asterisk`` is where Asterisk writes (its view, e.g. inside a
    chroot or container) and ``record_dir_local`` the same directory as this
    process sees it.
    """

    def __init__(
        self,
        *,
        transcribe: Transcribe,
        decide: Decide,
        record_dir_asterisk: str,
        record_dir_local: Path,
        default_language: Language = "en",
        default_region: str = "NL",
        prompt: str | None = None,
        max_question_s: float = 15.0,
        silence_s: int = 2,
        transcribe_timeout_s: float = 20.0,
        on_outcome: Callable[[AgiRouteOutcome], Awaitable[None]] | None = None,
        new_session_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.transcribe, self.decide = transcribe, decide
        self.record_dir_asterisk = record_dir_asterisk.rstrip("/")
        self.record_dir_local = record_dir_local
        self.default_language, self.default_region = default_language, default_region
        self.prompt = prompt
        self.max_question_s, self.silence_s = max_question_s, silence_s
        self.transcribe_timeout_s = transcribe_timeout_s
        self.on_outcome = on_outcome
        self.new_session_id = new_session_id

    def _language(self, session: AgiSession) -> Language:
        # ?lang=nl on the AGI URL wins, then the channel's language, then the default
        for candidate in (session.env.query.get("lang", ""), session.env.language):
            for lang in LANGUAGES:
                if candidate.lower().startswith(lang):
                    return lang
        return self.default_language

    async def __call__(self, session: AgiSession) -> None:
        env = session.env
        caller = parse_caller(env.callerid, self.default_region, dialed=env.dnid or env.extension)
        language = self._language(session)
        session_id = self.new_session_id()
        question: str | None = None
        decision: RouteDecision | None = None
        fallback: str | None = None
        recording: Path | None = None
        try:
            # set first: even a fallback hand-off carries the session for screen-pop
            await session.set_variable("__IVR_SESSION", session_id)
            if self.prompt:
                await session.stream_file(self.prompt)
            name = f"agi-{session_id}"
            rec = await session.record_file(
                f"{self.record_dir_asterisk}/{name}", "wav",
                max_s=self.max_question_s, silence_s=self.silence_s,
            )
            if rec.result_int == -1 or session.hung_up:
                fallback = "hangup"
                return
            recording = self.record_dir_local / f"{name}.wav"
            if not recording.is_file():
                fallback = "no_recording"
                return
            try:
                async with asyncio.timeout(self.transcribe_timeout_s):
                    question = await self.transcribe(recording, language)
            except Exception as exc:  # ASR down or slow: a human takes the call
                log.warning("agi route: transcription failed: %s", exc)
                fallback = "asr_error"
                return
            if not question.strip():
                fallback = "no_speech"
                return
            try:
                decision = await self.decide(question, caller, language)
            except Exception as exc:
                log.warning("agi route: routing failed: %s", exc)
                fallback = "route_error"
                return
            await session.set_variable("__IVR_INTENT", decision.intent or "")
            await session.set_variable("__IVR_SCENARIO", decision.scenario.value)
            await session.set_variable("__IVR_QUEUE", decision.queue)
            await session.set_variable("QUEUE_PRIO", str(decision.priority))
        except AgiHangup:
            fallback = fallback or "hangup"
        finally:
            if fallback and not session.hung_up:
                with contextlib.suppress(AgiHangup, ConnectionError, TimeoutError):
                    await session.set_variable("__IVR_FALLBACK", fallback)
            if self.on_outcome is not None:
                await self.on_outcome(AgiRouteOutcome(
                    session_id=session_id, caller=caller, language=language,
                    question=question, decision=decision, fallback=fallback,
                    recording=recording,
                ))
