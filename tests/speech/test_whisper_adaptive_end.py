"""Adaptive end of turn: a finished, confident sentence ends the turn after ~300 ms of quiet;
an unfinished one (or the setting off) waits out the full 700 ms silence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ivr.domain.ports import RecognitionResult, RecognizerStream
from ivr.nlu.catalogue import load_catalogue
from ivr.speech.audio import ulaw_decode, ulaw_encode
from ivr.speech.base import StreamLimits
from ivr.speech.tts import FliteTts
from ivr.speech.vad import SileroVad
from ivr.speech.whisper_engine import WhisperRecognizer, incomplete_reason, reads_complete

from .conftest import RATE, silence

pytestmark = pytest.mark.slow

STEP = RATE // 50 * 2  # one 20 ms packet of slin


async def quiet_until_endpoint(rec: WhisperRecognizer, speech: bytes,
                               phrases: Sequence[str] = ()) -> float:
    """Feed speech and 0.3 s of quiet, let the speculative decode finish (as it does in
    real time), then feed quiet packet by packet: the ms of quiet fed when the turn ended."""
    stream = await rec.open_stream("en", sample_rate=RATE, phrases=phrases)
    pcm = silence(0.3) + speech + silence(0.3)
    for i in range(0, len(pcm), STEP):
        await stream.feed(pcm[i:i + STEP])
    early = stream._early  # type: ignore[attr-defined]
    assert early is not None, "no speculative decode after 300 ms of quiet"
    await early
    fed_ms = 300.0
    while fed_ms < 2000:
        ev = await stream.feed(silence(0.02))
        fed_ms += 20
        if ev.endpoint:
            break
    await stream.finish()
    return fed_ms


def speak(tts: FliteTts, text: str) -> bytes:
    return ulaw_decode(ulaw_encode(tts.synthesize_pcm(text, "en")))


async def test_unfinished_or_switched_off_waits_for_the_endpointer(silero: SileroVad,
                                                             say_en: FliteTts) -> None:
    """'I want to' and the setting turned off wait for the endpointer. (Without a judge,
    'What are your opening hours?' ended after 320 ms of quiet alone and in this file, but
    after 460 ms late in a full CI run, order-dependent and not yet understood (#14): the
    early end is asserted with the judge a node always has, in the test below.)"""
    on = WhisperRecognizer(vad=silero, limits=StreamLimits(max_stream_s=20))
    off = WhisperRecognizer(vad=silero, limits=StreamLimits(max_stream_s=20),
                            adaptive_end=False)
    # flite ends a sentence with ~0.25 s of its own silence, counted by the VAD too.
    question = speak(say_en, "What are your opening hours?")
    assert await quiet_until_endpoint(off, question) >= 400
    assert await quiet_until_endpoint(on, speak(say_en, "I want to")) >= 400


class Judge:
    """A stand-in for the intent matcher's verdict: records what it was asked."""

    def __init__(self, verdict: bool) -> None:
        self.verdict = verdict
        self.asked: list[str] = []
        self.asr_confidence: list[float] = []

    async def __call__(self, text: str, language: str, asr_confidence: float) -> bool:
        self.asked.append(text)
        self.asr_confidence.append(asr_confidence)
        return self.verdict


async def test_an_understood_request_ends_early_without_punctuation(
        silero: SileroVad, say_en: FliteTts) -> None:
    """On a call the catalogue's words go to Whisper as hotwords, and tiny.en then writes
    no punctuation: the turn ends early when the judge (the intent matcher) understands
    the speculative transcript, not when it does not, and never on a dangling word."""
    phrases = load_catalogue(Path("grammars")).phrases("en")
    question = speak(say_en, "What are your opening hours?")
    sure, unsure = Judge(True), Judge(False)
    on = WhisperRecognizer(vad=silero, limits=StreamLimits(max_stream_s=20), judge=sure)
    assert await quiet_until_endpoint(on, question, phrases) <= 400
    assert sure.asked and "hours" in sure.asked[0].lower()
    assert 0 < sure.asr_confidence[0] <= 1  # Whisper's doubt goes to the judge with it
    doubt = WhisperRecognizer(vad=silero, limits=StreamLimits(max_stream_s=20), judge=unsure)
    assert await quiet_until_endpoint(doubt, question, phrases) >= 400
    dangling = Judge(True)
    cut = WhisperRecognizer(vad=silero, limits=StreamLimits(max_stream_s=20), judge=dangling)
    assert await quiet_until_endpoint(cut, speak(say_en, "I want to"), phrases) >= 400
    assert not dangling.asked  # "ends on 'to'": not even asked


@pytest.mark.parametrize(("text", "confidence", "why"), [
    ("what are your opening hours", 0.8, None),
    ("I have a question about", 0.9, "ends on 'about'"),
    ("my internet is-", 0.9, "trails off"),
    ("hello", 0.9, "one word"),
    ("", 0.0, "empty"),
])
def test_incomplete_reason_without_punctuation(text: str, confidence: float,
                                               why: str | None) -> None:
    """Without the punctuation rule (a judge decides instead) the word rules still hold,
    and each refusal says why."""
    result = RecognitionResult(text=text, confidence=confidence)
    assert incomplete_reason(result, punctuation=False) == why


@pytest.mark.parametrize(("text", "confidence", "complete"), [
    ("What are your opening hours?", 0.8, True),
    ("Where is my order.", 0.7, True),
    ("I want to.", 0.9, False),  # ends on a word that needs a follower
    ("I have a question about", 0.9, False),  # no closing punctuation
    ("My internet is...", 0.9, False),  # trailing off
    ("Hello.", 0.9, False),  # one word: more is probably coming
    ("Cancel my contract.", 0.3, False),  # not confident
])
def test_reads_complete(text: str, confidence: float, complete: bool) -> None:
    """Only a confident, punctuated sentence of two words or more that does not trail off."""
    assert reads_complete(RecognitionResult(text=text, confidence=confidence)) is complete


async def feed_packets(stream: RecognizerStream, pcm: bytes) -> bool:
    """Feed ``pcm`` in 20 ms packets; whether the stream ended the turn on any of them."""
    for i in range(0, len(pcm), STEP):
        if (await stream.feed(pcm[i:i + STEP])).endpoint:
            return True
    return False


@pytest.mark.parametrize(("first", "rest"), [
    ("I would like to", "cancel my contract"),
    ("I have a question about", "my last invoice"),
])
async def test_a_caller_who_pauses_mid_sentence_is_not_cut_off(
        silero: SileroVad, say_en: FliteTts, first: str, rest: str) -> None:
    """The caller stops mid-sentence for about half a second (past the adaptive end's
    300 ms, short of the endpointer's 700) and goes on: the turn is not ended in the
    pause, even with a judge that understands anything, and the transcript has the
    whole sentence. The pause is fed packet by packet after the speculative decode of
    the first half is back (as it would be in real time), so the early end had every
    chance to fire."""
    phrases = load_catalogue(Path("grammars")).phrases("en")
    judge = Judge(True)
    rec = WhisperRecognizer(vad=silero, limits=StreamLimits(max_stream_s=20), judge=judge)
    stream = await rec.open_stream("en", sample_rate=RATE, phrases=phrases)
    try:
        # flite ends the words with ~0.25 s of its own quiet: ~0.4 s of pause so far.
        assert not await feed_packets(stream, silence(0.3) + speak(say_en, first)
                                      + silence(0.14))
        early = stream._early  # type: ignore[attr-defined]
        assert early is not None, "no speculative decode of the first half"
        assert first.split()[-1] in (await early).text.lower()
        assert not await feed_packets(stream, silence(0.12)), "cut off in the pause"
        assert await feed_packets(stream, speak(say_en, rest) + silence(1.0))
        heard = (await stream.finish()).text.lower()
    finally:
        await stream.close()
    assert first.split()[1].lower() in heard and rest.split()[-1] in heard, heard
