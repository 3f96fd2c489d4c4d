"""Short answers never vanish: the shortest real FSDD digits (150-200 ms, that Silero
scores 0.1-0.4) start a grammar turn through the energy assist and come back as a digit;
silence and line noise still give nothing.

FSDD: $KANAAL_FSDD (default /work/shared/data/speech/fsdd); missing data fails."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ivr.nlu.classifier import one_blas_thread
from ivr.speech.audio import read_wav
from ivr.speech.recognizers import recognize_pcm
from ivr.speech.vad import EndpointConfig, SileroVad, VadStream
from ivr.speech.whisper_engine import WhisperRecognizer

pytestmark = pytest.mark.slow

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
RATE = 8000
GRAMMAR_TURN = EndpointConfig(energy_assist=True, min_speech_ms=64)  # as whisper_engine sets


# Shared clips of 0.14-0.2 s on which Silero alone (threshold 0.5, 96 ms) never starts
# when the clip begins the stream, as `ivr transcribe FILE` streams it.
MISSED_BY_SILERO = ("2_nicolas_5", "2_nicolas_21", "6_yweweler_26", "2_nicolas_37",
                    "2_nicolas_32", "4_theo_17", "3_yweweler_31", "4_theo_6", "6_yweweler_21",
                    "2_nicolas_33", "4_theo_5")


@pytest.fixture(scope="module")
def shortest() -> list[Path]:
    """Those clips from the shared FSDD folder."""
    path = Path(os.environ.get("KANAAL_FSDD", "/work/shared/data/speech/fsdd"))
    files = [path / f"{name}.wav" for name in MISSED_BY_SILERO]
    if not all(f.is_file() for f in files):
        pytest.fail(f"FSDD recordings not found in {path} (set KANAAL_FSDD)")
    return files


def starts(vad: SileroVad, pcm: bytes, config: EndpointConfig) -> bool:
    stream = VadStream(vad, RATE, config)
    padded = pcm + bytes(RATE * 2)
    for i in range(0, len(padded), 320):
        stream.feed(padded[i:i + 320])
    return stream.endpointer.started


def test_energy_assist_starts_the_turns_silero_misses(silero: SileroVad,
                                                      shortest: list[Path]) -> None:
    """Silero alone starts on none of them; with the energy assist every one starts."""
    pcms = [read_wav(f, sample_rate=RATE).pcm16 for f in shortest]
    plain = sum(starts(silero, p, EndpointConfig()) for p in pcms)
    assisted = sum(starts(silero, p, GRAMMAR_TURN) for p in pcms)
    assert plain == 0 and assisted == len(pcms), (plain, assisted)


def test_energy_assist_ignores_silence_and_steady_line_noise(silero: SileroVad) -> None:
    """Digital silence and steady -45 dBFS noise never start a turn (the floor follows it)."""
    rng = np.random.default_rng(14)
    noise = (rng.normal(0, 10 ** (-45 / 20), RATE * 3) * 32768).astype("<i2").tobytes()
    config = GRAMMAR_TURN
    assert not starts(silero, bytes(RATE * 6), config)
    assert not starts(silero, noise, config)


async def test_shortest_digits_come_back_as_digits(silero: SileroVad,
                                                   shortest: list[Path]) -> None:
    """Through the digit grammar (what `ivr transcribe --grammar` runs) none is empty (the
    point of this test: a short answer never vanishes) and at most two are a wrong digit.

    These 11 are the hardest shared clips, tuned on, decoded as in a node: with BLAS on
    one thread, which the intent matcher sets for the whole process
    (``classifier.one_blas_thread``). 2_nicolas_5 is always heard as "one"; 2_nicolas_21
    is a near-tie of "two" and "one" that the BLAS thread count decides (the mel features
    are a BLAS product): "two" with two threads (this test alone), "one" with one (a node,
    or after the matcher's tests in the same process, which is what failed the full run).
    The digit-error target (<= 3 %, on clips nobody tuned on) is test_heldout_digits'."""
    one_blas_thread()  # as a node decodes, whatever ran before in this process
    rec = WhisperRecognizer(vad=silero)
    phrases = [*DIGITS, "oh"]
    wrong, empty = [], []
    for f in shortest:
        result = await recognize_pcm(rec, read_wav(f, sample_rate=RATE).pcm16, RATE, "en",
                                     phrases)
        ref = DIGITS[int(f.name[0])]
        if not result.text:
            empty.append(f.name)
        elif result.text.replace("oh", "zero") != ref:
            wrong.append((f.name, result.text))
    assert not empty and len(wrong) <= 2, (empty, wrong)


async def test_grammar_turn_on_silence_gives_nothing(silero: SileroVad) -> None:
    """No speech, no digit: the grammar never invents an answer from silence."""
    rec = WhisperRecognizer(vad=silero)
    result = await recognize_pcm(rec, bytes(RATE * 2), RATE, "en", [*DIGITS, "oh"])
    assert result.text == ""
