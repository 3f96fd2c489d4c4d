"""Recognizer port implementations for tests: a scripted one and a recording wrapper.

* :class:`ScriptedRecognizer` "hears" a scripted text per turn (one stream per
  turn), so a voice channel's listen loop runs without a speech model.
* :class:`TapRecognizer` wraps a real recogniser and keeps a copy of every PCM
  frame it is fed, with its arrival time (byte order, energy and latency checks).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from ivr.domain.model import Language
from ivr.domain.ports import (
    RecognitionEvent,
    RecognitionResult,
    Recognizer,
    RecognizerStream,
)
from ivr.testing.fakes import Faults


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What a flow asked the recogniser for when it opened a stream."""

    language: Language
    sample_rate: int
    phrases: tuple[str, ...]


class ScriptedStream:
    """One scripted turn: speech starts after a few frames, ends after a few more.

    An empty text is silence: no speech is ever reported, so the turn times out.
    """

    def __init__(self, text: str, *, confidence: float, speech_after_frames: int,
                 endpoint_after_frames: int) -> None:
        self.text = text
        self.confidence = confidence
        self._speech_after = speech_after_frames
        self._endpoint_after = max(endpoint_after_frames, speech_after_frames)
        self.frames = 0
        self.closed = False

    async def feed(self, pcm16: bytes) -> RecognitionEvent:
        """Count the frame; report speech start and endpoint by frame count."""
        self.frames += 1
        if not self.text or self.frames < self._speech_after:
            return RecognitionEvent()
        return RecognitionEvent(partial=self.text, speech_started=True,
                                endpoint=self.frames >= self._endpoint_after)

    async def finish(self) -> RecognitionResult:
        """The scripted text (confidence 0 for silence)."""
        return RecognitionResult(text=self.text,
                                 confidence=self.confidence if self.text else 0.0)

    async def close(self) -> None:
        """Mark the stream closed (tests can check every turn closed its stream)."""
        self.closed = True


class ScriptedRecognizer:
    """Recognizer that returns scripted texts, one per turn, in order.

    Each :meth:`open_stream` takes the next text; once the script is used up every
    turn is silence. ``faults.fail("recognizer")`` makes ``open_stream`` raise
    PortError, like an ASR server that is down.
    """

    name = "scripted"

    def __init__(self, turns: Iterable[str], *, confidence: float = 0.9,
                 speech_after_frames: int = 1, endpoint_after_frames: int = 10,
                 languages: Collection[Language] = ("en", "nl"),
                 faults: Faults | None = None) -> None:
        self.turns: deque[str] = deque(turns)
        self.confidence = confidence
        self.speech_after_frames = speech_after_frames
        self.endpoint_after_frames = endpoint_after_frames
        self.languages = frozenset(languages)
        self.faults = faults if faults is not None else Faults()
        self.requests: list[StreamRequest] = []
        self.streams: list[ScriptedStream] = []

    def supports(self, language: Language) -> bool:
        """Whether ``language`` is one this recogniser was given."""
        return language in self.languages

    async def open_stream(self, language: Language, *, sample_rate: int,
                          phrases: Sequence[str] = (),
                          detect_language: bool = False) -> ScriptedStream:
        """A stream for the next scripted turn (silence once the script is used up)."""
        self.faults.check("recognizer")
        self.requests.append(StreamRequest(language, sample_rate, tuple(phrases)))
        stream = ScriptedStream(
            self.turns.popleft() if self.turns else "",
            confidence=self.confidence,
            speech_after_frames=self.speech_after_frames,
            endpoint_after_frames=self.endpoint_after_frames,
        )
        self.streams.append(stream)
        return stream


class TapStream:
    """Recogniser stream wrapper that keeps a copy of the PCM it is fed (with arrival time)."""

    def __init__(self, inner: RecognizerStream, sink: list[tuple[float, bytes]]) -> None:
        self._inner, self._sink = inner, sink

    async def feed(self, pcm16: bytes) -> RecognitionEvent:
        """Record ``(loop time, frame)``, then feed the wrapped stream."""
        self._sink.append((asyncio.get_running_loop().time(), pcm16))
        return await self._inner.feed(pcm16)

    async def finish(self) -> RecognitionResult:
        """The wrapped stream's result."""
        return await self._inner.finish()

    async def close(self) -> None:
        """Close the wrapped stream."""
        await self._inner.close()


class TapRecognizer:
    """A recogniser wrapper that records the audio fed to it in ``frames``.

    ``frames`` holds ``(loop time, pcm16 frame)`` of every turn, in order; use it
    to check byte order, energy onset or how fast audio arrives after a prompt.
    """

    name = "tap"

    def __init__(self, inner: Recognizer) -> None:
        self._inner = inner
        self.frames: list[tuple[float, bytes]] = []

    def supports(self, language: Language) -> bool:
        """Whatever the wrapped recogniser supports."""
        return self._inner.supports(language)

    async def open_stream(self, language: Language, *, sample_rate: int,
                          phrases: Sequence[str] = (),
                          detect_language: bool = False) -> RecognizerStream:
        """Open a stream on the wrapped recogniser and tap it."""
        inner = await self._inner.open_stream(language, sample_rate=sample_rate, phrases=phrases,
                                              detect_language=detect_language)
        return TapStream(inner, self.frames)


class _FaultyStream:
    def __init__(self, inner: RecognizerStream, owner: FaultyRecognizer) -> None:
        self._inner, self._owner = inner, owner

    async def feed(self, pcm16: bytes) -> RecognitionEvent:
        await self._owner.trip("feed")
        return await self._inner.feed(pcm16)

    async def finish(self) -> RecognitionResult:
        await self._owner.trip("finish")
        return await self._inner.finish()

    async def close(self) -> None:
        await self._inner.close()


class FaultyRecognizer:
    """Wraps a recogniser; ``mode`` "raise" or "hang" breaks it at ``where`` (``open``,
    ``feed`` or ``finish``) from then on, "ok" passes through (the fault matrix flips it
    on a live node)."""

    def __init__(self, inner: Recognizer, *, mode: str = "ok",
                 where: Collection[str] = ("open", "finish")) -> None:
        self._inner = inner
        self.name = f"faulty-{inner.name}"
        self.mode = mode
        self.where = frozenset(where)
        self.tripped = 0

    def supports(self, language: Language) -> bool:
        return self._inner.supports(language)

    async def trip(self, point: str) -> None:
        if self.mode == "ok" or point not in self.where:
            return
        self.tripped += 1
        if self.mode == "hang":
            await asyncio.Event().wait()  # never set: an engine that stopped answering
        raise RuntimeError(f"recogniser broken at {point} (fault injected)")

    async def open_stream(self, language: Language, *, sample_rate: int,
                          phrases: Sequence[str] = (),
                          detect_language: bool = False) -> RecognizerStream:
        await self.trip("open")
        stream = await self._inner.open_stream(language, sample_rate=sample_rate,
                                               phrases=phrases,
                                               detect_language=detect_language)
        return _FaultyStream(stream, self)
