"""Batched Whisper decoding: turns that end together are decoded as one batch with the same
words as alone; a full queue, a digit grammar or a failing batch fall back to lone decodes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from ivr.domain.ports import RecognitionResult
from ivr.speech.audio import resample, to_float, ulaw_decode
from ivr.speech.whisper_batch import DecodeBatcher
from ivr.speech.whisper_engine import WhisperRecognizer
from ivr.testing.sipcaller import read_ulaw_wav, synthesize_utterance

QUESTIONS = ("what are your opening hours", "where is my order",
             "I want to change my address", "my internet is not working")


def lone(audio: np.ndarray, language: str, phrases: Sequence[str], beam: int,
         speech_s: float | None, hidden: bool) -> RecognitionResult:
    return RecognitionResult(text=f"alone {audio.size}", confidence=1.0)


class BrokenModel:
    """A model whose batch decode fails (a bad input must not lose the other turns)."""

    def feature_extractor(self, audio: np.ndarray) -> np.ndarray:
        raise RuntimeError("bad batch")


async def test_failed_batch_is_decoded_one_by_one() -> None:
    """Every turn of a failing batch still gets its own (lone) result."""
    batcher = DecodeBatcher(BrokenModel, lone, max_batch=4, wait_ms=300)
    got = await asyncio.gather(*(batcher.decode(np.zeros(n), "en", (), 1, None)
                                 for n in (1600, 3200, 4800)))
    assert [r.text if r else None for r in got] == ["alone 1600", "alone 3200", "alone 4800"]
    assert batcher.stats.failed_batches == 1
    batcher.close()


async def test_a_decoder_crash_reaches_the_stream() -> None:
    """A lone decode that raises fails that turn's future (the stream then returns empty)."""
    def crash(*args: object) -> RecognitionResult:
        raise RuntimeError("decoder gone")

    batcher = DecodeBatcher(BrokenModel, crash)
    with pytest.raises(RuntimeError, match="decoder gone"):
        await batcher.decode(np.zeros(160), "en", (), 1, None)
    batcher.close()


async def test_full_queue_falls_back_to_a_lone_decode() -> None:
    """Beyond max_pending the batcher says no (None) at once: the stream decodes alone."""
    gate = threading.Event()

    def slow(*args: object) -> RecognitionResult:
        gate.wait(5)
        return RecognitionResult(text="late", confidence=1.0)

    batcher = DecodeBatcher(BrokenModel, slow, max_batch=1, max_pending=1)
    first = asyncio.ensure_future(batcher.decode(np.zeros(160), "en", (), 1, None))
    await asyncio.sleep(0.2)  # the thread holds the first; the queue has room for one
    second = asyncio.ensure_future(batcher.decode(np.zeros(160), "en", (), 1, None))
    await asyncio.sleep(0.05)
    assert await batcher.decode(np.zeros(160), "en", (), 1, None) is None
    assert batcher.stats.overflow == 1
    gate.set()
    assert [(await first).text, (await second).text] == ["late", "late"]  # type: ignore[union-attr]
    batcher.close()


def test_a_closed_event_loop_does_not_stop_the_decoding_thread() -> None:
    """A decode whose asker's event loop closed before it was back (a speculative decode
    still running when its node or test ended) is dropped; the thread serves on."""
    started, gate = threading.Event(), threading.Event()

    def slow(*args: object) -> RecognitionResult:
        started.set()
        gate.wait(5)
        return RecognitionResult(text="done", confidence=1.0)

    batcher = DecodeBatcher(BrokenModel, slow, max_batch=1)
    old = asyncio.new_event_loop()

    async def ask() -> asyncio.Future[RecognitionResult | None]:
        fut = asyncio.ensure_future(batcher.decode(np.zeros(160), "en", (), 1, None))
        await asyncio.sleep(0)  # queued
        return fut

    pending = old.run_until_complete(ask())
    assert started.wait(5)
    thread = batcher._thread  # type: ignore[attr-defined]
    pending.cancel()
    old.run_until_complete(asyncio.gather(pending, return_exceptions=True))
    old.close()
    gate.set()  # the decode comes back to a closed loop
    again = asyncio.run(batcher.decode(np.zeros(160), "en", (), 1, None))
    assert again is not None and again.text == "done"
    assert batcher._thread is thread and thread.is_alive()  # type: ignore[attr-defined]
    batcher.close()


@pytest.mark.slow
async def test_turns_ending_together_decode_as_one_batch() -> None:
    """Four questions queued together: one batch, each heard with its own words."""
    rec = WhisperRecognizer(batch_max=8)
    await rec.load()
    assert rec.batcher is not None
    rec.batcher._wait_s = 0.3  # all four join the first one's batch
    # The test caller's voice (flite as recorded, lead-in included), not the IVR's prompt
    # voice: prompts have their leading silence cut, and with digital zeros in its place
    # tiny.en hears "I want to change my breath" (flite's own quiet: "address").
    audio = [resample(to_float(ulaw_decode(read_ulaw_wav(synthesize_utterance(q)))),
                      8000, 16000) for q in QUESTIONS]
    got = await asyncio.gather(*(rec.batcher.decode(a, "en", (), 1, a.size / 16000)
                                 for a in audio))
    assert rec.batcher.stats.largest == 4
    for question, result in zip(QUESTIONS, got, strict=True):
        assert result is not None and result.confidence > 0.3, (question, result)
        key = question.split()[-1]
        assert key in result.text.lower(), (question, result.text)
    rec.batcher.close()
