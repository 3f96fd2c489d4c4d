"""Batched Whisper decoding across calls whose turns end together.

A CTranslate2 Whisper model with one worker decodes one request at a time: when
twenty callers stop talking in the same second, the twentieth waits for nineteen
whole decodes. :class:`DecodeBatcher` owns one decoding thread; open-vocabulary
requests that arrive while it is busy (or within ``wait_ms`` of the first) are
encoded and decoded as one batch: the encoder runs on a ``(batch, 80, frames)``
feature tensor padded to the longest turn's short window, and ``generate`` decodes
all of them together, sharing each decoder step. Greedy batching: a turn that
arrives when the decoder is idle is decoded at once (``wait_ms`` 0), so a lone
caller pays nothing.

Bounded and with a clear fallback: at most ``max_pending`` requests wait; a request
beyond that, a grammar (digit) decode, or a batch that fails is decoded on its own
exactly as without the batcher (a failed batch is retried item by item, so one bad
input never loses the others' results).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ivr.domain.ports import RecognitionResult

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Request:
    audio: np.ndarray
    language: str
    phrases: tuple[str, ...]
    beam_size: int
    speech_s: float | None
    hidden: bool  # the caller is not waiting yet (a batch of one may use the full window)
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[RecognitionResult]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class BatchStats:
    """What the batcher did (bench figures, tests)."""

    batches: int = 0
    decoded: int = 0
    largest: int = 0
    overflow: int = 0  # requests decoded alone because the queue was full
    failed_batches: int = 0
    sizes: list[int] = field(default_factory=list)


# (audio, language, phrases, beam size, speech seconds, hidden) -> result: one decode.
SingleDecode = Callable[[np.ndarray, str, Sequence[str], int, float | None, bool],
                        RecognitionResult]


class DecodeBatcher:
    """One decoding thread; open-vocabulary turns queued together decode as one batch."""

    def __init__(self, model: Callable[[], Any], single: SingleDecode, *, max_batch: int = 8,
                 max_pending: int = 32, wait_ms: float = 0.0,
                 track: Callable[[], contextlib.AbstractContextManager[object]] | None = None
                 ) -> None:
        """``model``: the loaded WhisperModel (called in the thread); ``single``: the
        one-request decode used for fallbacks and batches of one; ``track``: counts a
        batch as decoder load (``DecodeLoad.track``)."""
        self._model = model
        self._track = track or contextlib.nullcontext
        self._single = single
        self.max_batch = max(1, max_batch)
        self._wait_s = max(0.0, wait_ms) / 1000
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max(1, max_pending))
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stats = BatchStats()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="whisper-batch",
                                                daemon=True)
                self._thread.start()

    async def decode(self, audio: np.ndarray, language: str, phrases: Sequence[str],
                     beam_size: int, speech_s: float | None,
                     hidden: bool = False) -> RecognitionResult | None:
        """The decode of one turn, batched with others; None when the queue is full (the
        caller then decodes it alone, as without the batcher)."""
        loop = asyncio.get_running_loop()
        req = _Request(audio, language, tuple(phrases), beam_size, speech_s, hidden, loop,
                       loop.create_future())
        self._ensure_thread()
        try:
            self._queue.put_nowait(req)
        except queue.Full:
            self.stats.overflow += 1
            return None
        return await req.future

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    # ------------------------------------------------------------- thread
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.perf_counter() + self._wait_s
            while len(batch) < self.max_batch:
                try:
                    left = deadline - time.perf_counter()
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        # One prompt per batch: requests with another language or vocabulary go
        # in a batch of their own, right after.
        groups: dict[tuple[str, tuple[str, ...], int], list[_Request]] = {}
        for r in batch:
            if r.future.cancelled():
                # Given up while queued (a speculative decode the caller's next words
                # made useless, or a closed call): not worth the decoder's time. Read
                # across threads: a stale "not cancelled" only costs one decode.
                continue
            groups.setdefault((r.language, r.phrases, r.beam_size), []).append(r)
        for group in groups.values():
            self._serve_group(group)

    def _serve_group(self, group: list[_Request]) -> None:
        s = self.stats
        s.batches += 1
        s.decoded += len(group)
        s.largest = max(s.largest, len(group))
        s.sizes = [*s.sizes[-999:], len(group)]
        results: list[RecognitionResult | BaseException]
        try:
            if len(group) == 1:
                r = group[0]
                results = [self._single(r.audio, r.language, r.phrases, r.beam_size,
                                        r.speech_s, r.hidden)]
            else:
                with self._track():
                    results = list(decode_batch(self._model(), group))
        except Exception as exc:  # the fallback: each on its own
            log.warning("batched decode of %d turns failed (%s); decoding them one by one",
                        len(group), exc)
            s.failed_batches += 1
            results = []
            for r in group:
                try:
                    results.append(self._single(r.audio, r.language, r.phrases, r.beam_size,
                                                r.speech_s, False))
                except Exception as one:
                    results.append(one)
        for r, res in zip(group, results, strict=True):
            # A loop closed meanwhile (its node or test is gone) has nobody waiting; the
            # rest of the group still get theirs, and the thread must live on for them.
            with contextlib.suppress(RuntimeError):
                r.loop.call_soon_threadsafe(_settle, r.future, res)


def _settle(fut: asyncio.Future[RecognitionResult],
            res: RecognitionResult | BaseException) -> None:
    if fut.done():
        return  # the caller hung up and closed its stream
    if isinstance(res, BaseException):
        fut.set_exception(res)
    else:
        fut.set_result(res)


def decode_batch(model: Any, group: Sequence[_Request]) -> list[RecognitionResult]:
    """Encode and greedily decode several turns at once (same language and vocabulary).

    The same steps as ``whisper_engine._decode`` for one turn: short encoder window
    (the batch's longest, in 2 s steps), one pass, no timestamps, a token cap from each
    turn's speech length, ``cut_repetition``, the no-speech rule and confidence.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    from ivr.speech.whisper_engine import (
        _LEADING_MARKS,
        NO_SPEECH_LOGPROB,
        NO_SPEECH_PROB,
        TOKENS_PER_S,
        _hotwords,
        _suppressed,
        cut_repetition,
        encoder_frames,
    )

    t0 = time.perf_counter()
    feats = [model.feature_extractor(r.audio.astype(np.float32)) for r in group]
    frames = max(encoder_frames(f.shape[-1]) for f in feats)
    batch = np.stack([pad_or_trim(f, frames) for f in feats]).astype(np.float32)
    encoded = model.encode(batch)
    first = group[0]
    multilingual = model.model.is_multilingual
    tok = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe",
                    language=first.language if multilingual else None)
    prompt = model.get_prompt(tok, [], without_timestamps=True,
                              hotwords=_hotwords(first.phrases))
    caps = [int(8 + TOKENS_PER_S * (r.audio.size / 16000 if r.speech_s is None
                                    else r.speech_s)) for r in group]
    res = model.model.generate(
        encoded, [prompt] * len(group), beam_size=first.beam_size, return_scores=True,
        return_no_speech_prob=True, suppress_blank=True, suppress_tokens=_suppressed(tok),
        max_length=len(prompt) + max(caps))
    elapsed = (time.perf_counter() - t0) * 1000
    out: list[RecognitionResult] = []
    for r, item, cap in zip(group, res, caps, strict=True):
        ids = [i for i in item.sequences_ids[0] if i < tok.eot][:cap]
        text = _LEADING_MARKS.sub("", cut_repetition(model.hf_tokenizer.decode(ids).strip()))
        avg = float(item.scores[0]) * len(ids) / (len(ids) + 1) if ids else -math.inf
        no_speech = float(item.no_speech_prob)
        took = elapsed + (t0 - r.queued_at) * 1000
        if not text or (no_speech > NO_SPEECH_PROB and avg < NO_SPEECH_LOGPROB):
            out.append(RecognitionResult(text="", confidence=0.0, processing_ms=took))
            continue
        conf = round(max(0.0, min(1.0, math.exp(avg) * (1.0 - no_speech))), 4)
        out.append(RecognitionResult(text=text, confidence=conf, alternatives=((text, conf),),
                                     processing_ms=took))
    return out
