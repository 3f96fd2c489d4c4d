"""A CallChannel over FastAGI, so dialplan-driven setups run the same CallFlow.

Prompts are ``STREAM FILE`` of the same audio the ARI path plays, a listen turn
is ``RECORD FILE`` (ends on silence, a key or the limit) transcribed by the
node's recogniser, and keypad entry is ``GET DATA``. A hand-off sets the same
channel variables as the ARI path and returns: the dialplan goes on to
``ivr-handoff``. The AGI path has no streaming barge-in; a key pressed during
a prompt stops it and counts as the answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from ivr.domain.model import Caller, Language, RouteDecision, Utterance
from ivr.domain.ports import CallerHungUp, Prompt
from ivr.telephony.agi.protocol import AgiHangup, AgiResponse
from ivr.telephony.agi.server import AgiSession
from ivr.telephony.handoff import handoff_variables

log = logging.getLogger(__name__)

KEYS = "0123456789*#"

# (recording as this process sees it, language, vocabulary hint) -> what was said
Transcribe = Callable[[Path, Language, Sequence[str]], Awaitable[Utterance | None]]


class SoundResolver(Protocol):
    """Prompt -> ``sound:/path`` as Asterisk sees it (the node's FilePromptResolver)."""

    async def resolve(self, prompt: Prompt) -> str:
        """``sound:`` URI of the prompt's audio, recorded or synthesised (cached)."""


class AgiCallChannel:
    """One FastAGI session as the flow's CallChannel."""

    def __init__(
        self,
        session: AgiSession,
        *,
        caller: Caller,
        prompts: SoundResolver,
        transcribe: Transcribe,
        record_dir_asterisk: str,
        record_dir_local: Path,
        session_id: str | None = None,
        max_question_s: float = 15.0,
        silence_s: int = 2,
    ) -> None:
        self._session = session
        self._caller = caller
        self._prompts = prompts
        self._transcribe = transcribe
        self._rec_asterisk = record_dir_asterisk.rstrip("/")
        self._rec_local = record_dir_local
        self._session_id = session_id or uuid.uuid4().hex
        self._max_question_s = max_question_s
        self._silence_s = silence_s
        self._turn = 0
        self._recording = False
        self.handed_off: RouteDecision | None = None
        self.hung_up = False
        self.recordings: list[Path] = []

    @property
    def caller(self) -> Caller:
        return self._caller

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def awaiting_input(self) -> bool:
        """The question has been played and RECORD FILE is taking the caller's answer:
        test callers read it to take their turn (AGI has no barge-in)."""
        return self._recording

    async def _command(self, call: Awaitable[AgiResponse]) -> AgiResponse:
        try:
            resp = await call
        except AgiHangup as exc:
            self.hung_up = True
            raise CallerHungUp(self._session_id) from exc
        if self._session.hung_up or resp.result == "-1":
            self.hung_up = True
            raise CallerHungUp(self._session_id)
        return resp

    async def _sound(self, prompt: Prompt) -> str:
        return (await self._prompts.resolve(prompt)).removeprefix("sound:")

    async def _play(self, prompt: Prompt, keys: str) -> str | None:
        """Play a prompt; returns the key that stopped it, if any."""
        resp = await self._command(self._session.stream_file(await self._sound(prompt), keys))
        return _key(resp, keys)

    async def say(self, prompt: Prompt) -> None:
        await self._play(prompt, "")

    async def listen(self, prompt: Prompt | None, *, timeout_s: float,
                     phrases: Sequence[str] = (),
                     detect_language: bool = False) -> Utterance | None:
        # A recorded turn is transcribed in the prompt's language (no detection here).
        for part in prompt.parts if prompt is not None else ():
            # The offer after the question: a key during either stops both.
            key = await self._play(part, KEYS)
            if key is not None:
                return Utterance(text="", dtmf=key)
        self._turn += 1
        name = f"agi-{self._session_id}-{self._turn}"
        # RECORD FILE counts silence from the start, so a silent caller ends the
        # turn after ``silence_s``; the flow's no-input timeout caps the wait.
        self._recording = True
        try:
            resp = await self._command(self._session.record_file(
                f"{self._rec_asterisk}/{name}", "wav", escape_digits=KEYS,
                max_s=max(self._max_question_s, timeout_s), silence_s=self._silence_s))
        finally:
            self._recording = False
        key = _key(resp, KEYS)
        if key is not None:
            return Utterance(text="", dtmf=key)
        recording = self._rec_local / f"{name}.wav"
        if not recording.is_file():
            log.warning("agi: no recording at %s", recording)
            return None
        self.recordings.append(recording)
        return await self._transcribe(recording, prompt.language if prompt else "en",
                                      phrases)

    async def collect_digits(self, prompt: Prompt, *, max_digits: int,
                             timeout_s: float) -> str | None:
        resp = await self._command(self._session.get_data(
            await self._sound(prompt), timeout_ms=int(timeout_s * 1000), max_digits=max_digits))
        return resp.result or None

    async def hand_off(self, decision: RouteDecision) -> None:
        for name, value in handoff_variables(decision, self._session_id).items():
            await self._command(self._session.set_variable(name, value))
        self.handed_off = decision  # the dialplan continues into ivr-handoff

    async def hang_up(self) -> None:
        self.hung_up = True
        await self._session.hangup()


def _key(resp: AgiResponse, keys: str) -> str | None:
    """The key that ended a playback or recording (result is its ASCII code), if any."""
    code = resp.result_int or 0
    return chr(code) if 0 < code < 128 and chr(code) in keys else None
