"""Silero VAD (the model bundled with faster-whisper) and the endpointer on real audio."""

from __future__ import annotations

import pytest

from ivr.speech.tts import FliteTts
from ivr.speech.vad import EndpointConfig, Endpointer, SileroVad, VadStream

from .conftest import RATE, noise, silence


def run(vad: SileroVad, pcm: bytes, config: EndpointConfig | None = None) -> VadStream:
    s = VadStream(vad, RATE, config or EndpointConfig())
    for i in range(0, len(pcm), 320):
        s.feed(pcm[i : i + 320])
    return s


@pytest.fixture(scope="module")
def sentence(say_en: FliteTts) -> bytes:
    return say_en.synthesize_pcm("I would like to know the status of my order please", "en")


def test_speech_start_and_end_are_found(silero: SileroVad, sentence: bytes) -> None:
    """Speech after a second of silence starts near 1 s and ends near the end of the speech."""
    s = run(silero, silence(1.0) + sentence + silence(1.5))
    ep = s.endpointer
    speech_s = len(sentence) / 2 / RATE
    assert ep.started and ep.ended
    assert ep.start_ms is not None and ep.end_ms is not None
    assert 0.9 <= ep.start_ms / 1000 <= 1.6
    assert abs(ep.end_ms / 1000 - (1.0 + speech_s)) < 0.5


@pytest.mark.parametrize("audio", [silence(3.0), noise(3.0, 0.02)], ids=["silence", "noise"])
def test_no_speech_in_silence_or_steady_noise(silero: SileroVad, audio: bytes) -> None:
    """Digital silence and steady white noise never count as speech."""
    assert not run(silero, audio).endpointer.started


def test_endless_speech_is_cut_at_max_length(silero: SileroVad, sentence: bytes) -> None:
    """A monologue without pauses ends at max_speech_s instead of running forever."""
    cfg = EndpointConfig(end_silence_ms=5000, max_speech_s=4.0)
    s = run(silero, sentence * 4, cfg)
    assert s.endpointer.ended
    assert s.endpointer.speech_ms <= 4000 + 64


def test_endpointer_hysteresis_on_probabilities() -> None:
    """Short blips do not start speech; a long enough pause ends it, once."""
    ep = Endpointer(EndpointConfig(min_speech_ms=96, end_silence_ms=320), window_ms=32)
    assert not ep.update([0.9, 0.1, 0.9, 0.1]).speech_started
    up = ep.update([0.9] * 5)
    assert up.speech_started and up.in_speech
    assert not ep.update([0.4] * 5).endpoint  # between thresholds: still speech
    assert ep.update([0.1] * 10).endpoint
    assert not ep.update([0.9] * 10).speech_started  # one utterance per endpointer
