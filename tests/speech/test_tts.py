"""Prompt synthesis with Debian's espeak-ng and flite; the committed sounds/ set."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli.speech_cmd import DEFAULT_SOUNDS, sounds, transcribe
from ivr.domain import prompts as catalogue
from ivr.speech.audio import levels, read_wav
from ivr.speech.tts import (
    EspeakTts,
    FliteTts,
    PromptSynthesizer,
    TtsError,
    build_prompt_sounds,
    default_tts,
)


@pytest.mark.parametrize("tts,lang", [(FliteTts(), "en"), (EspeakTts(), "en"), (EspeakTts(), "nl")])
def test_engines_make_8khz_speech(tts: object, lang: str) -> None:
    """Each engine returns audible 8 kHz PCM of plausible length."""
    pcm = tts.synthesize_pcm("Your order will arrive on Monday.", lang)  # type: ignore[attr-defined]
    lv = levels(pcm, 8000)
    assert 1.0 < lv.duration_s < 6.0
    assert lv.rms_dbfs > -35 and not lv.is_clipped


def test_bad_text_and_language_raise_tts_error() -> None:
    """Empty text, flite asked for Dutch, and an unknown language are TtsError."""
    with pytest.raises(TtsError):
        FliteTts().synthesize_pcm("   ", "en")
    with pytest.raises(TtsError):
        FliteTts().synthesize_pcm("hallo", "nl")
    with pytest.raises(TtsError):
        default_tts().synthesize_pcm("bonjour", "fr")


def test_leading_dash_text_is_spoken_not_parsed_as_flag() -> None:
    """Text such as '-v help' reaches the engine as text."""
    assert levels(EspeakTts().synthesize_pcm("-v help", "nl"), 8000).duration_s > 0.3
    assert levels(FliteTts().synthesize_pcm("-voice kal", "en"), 8000).duration_s > 0.3


def test_prompt_synthesizer_caches_by_text_language_voice(tmp_path: Path) -> None:
    """Same text+lang returns the same file without re-synthesis; others get new files."""
    synth = PromptSynthesizer(default_tts(), tmp_path)
    a = asyncio.run(synth.synthesize("Your parcel arrives tomorrow.", "en"))
    mtime = a.stat().st_mtime_ns

    async def three() -> list[Path]:
        return await asyncio.gather(
            synth.synthesize("Your parcel arrives tomorrow.", "en"),
            synth.synthesize("Your parcel arrives today.", "en"),
            synth.synthesize("Uw pakket komt morgen.", "nl"),
        )

    again, other, dutch = asyncio.run(three())
    assert again == a and a.stat().st_mtime_ns == mtime
    assert len({a, other, dutch}) == 3
    wav = read_wav(dutch)
    assert wav.sample_rate == 8000 and wav.duration_s > 1.0
    other_voice = PromptSynthesizer(EspeakTts(), tmp_path)
    assert other_voice.path_for("Your parcel arrives tomorrow.", "en") != a
    assert not list(tmp_path.rglob("*.tmp"))


def test_build_skips_parameterised_prompts(tmp_path: Path) -> None:
    """Prompts with {params} are not pre-rendered; static ones are, per language."""
    prompts = {
        "hello": {"en": "Hello.", "nl": "Hallo."},
        "eta": {"en": "On {day}.", "nl": "Op {day}."},
    }
    written = build_prompt_sounds(prompts, prompts, tmp_path, default_tts())
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "en/hello.wav",
        "nl/hello.wav",
    ]


def test_committed_sounds_cover_the_static_catalogue() -> None:
    """sounds/{en,nl} has an 8 kHz mono WAV for every static prompt key (run `ivr sounds build`)."""
    for key in catalogue.static_keys():
        for lang in ("en", "nl"):
            path = DEFAULT_SOUNDS / lang / f"{key}.wav"
            assert path.exists(), f"missing {path}: run `ivr sounds build`"
            wav = read_wav(path)
            assert wav.sample_rate == 8000 and wav.duration_s > 0.3


def test_sounds_build_cli(tmp_path: Path) -> None:
    """`ivr sounds build --out DIR --lang nl` writes the Dutch set only."""
    res = CliRunner().invoke(sounds, ["build", "--out", str(tmp_path), "--lang", "nl"])
    assert res.exit_code == 0, res.output
    assert {p.parent.name for p in tmp_path.rglob("*.wav")} == {"nl"}
    assert len(list(tmp_path.rglob("*.wav"))) == len(catalogue.static_keys())


@pytest.mark.slow
def test_transcribe_cli_prints_text_confidence_rtf(tmp_path: Path) -> None:
    """`ivr transcribe FILE.wav` on a flite recording prints the words and the real-time factor."""
    from ivr.speech.audio import write_wav

    wav = tmp_path / "q.wav"
    write_wav(wav, FliteTts().synthesize_pcm("I want to pay my invoice", "en"), 8000)
    res = CliRunner().invoke(transcribe, [str(wav), "--engine", "whisper"])
    assert res.exit_code == 0, res.output
    assert "invoice" in res.output.lower()
    assert "real-time factor" in res.output and "confidence" in res.output
    bad = tmp_path / "bad.wav"
    bad.write_bytes(os.urandom(100))
    res = CliRunner().invoke(transcribe, [str(bad)])
    assert res.exit_code == 1 and "cannot read" in res.output


def _lead_ms(pcm: bytes, rate: int = 8000) -> float:
    """Milliseconds before the first 10 ms frame at -45 dBFS or louder."""
    import numpy as np

    x = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.float32))
    frame = rate // 100
    level = x[: x.size // frame * frame].reshape(-1, frame).mean(axis=1)
    return float(np.flatnonzero(level >= 32768 * 10 ** (-45 / 20))[0]) * 10.0


@pytest.mark.parametrize("tts,lang", [(FliteTts(), "en"), (EspeakTts(), "nl")])
def test_prompts_start_with_the_voice_not_with_silence(tts: object, lang: str) -> None:
    """flite opens every utterance with 200-340 ms of silence that the caller heard as
    dead air before each answer: a prompt starts within 40 ms of its first sound, and
    the sound itself is kept whole (the same samples from there on)."""
    from ivr.speech.audio import resample_pcm16, trim_leading_silence

    text = "Your order will arrive on Monday."
    pcm = tts.synthesize_pcm(text, lang)  # type: ignore[attr-defined]
    assert _lead_ms(pcm) <= 40
    if isinstance(tts, FliteTts):  # the engine's own output, before trimming
        import subprocess
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "raw.wav"
            subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(out)], check=True)
            raw = read_wav(out)
        untrimmed = resample_pcm16(raw.pcm16, raw.sample_rate, 8000)
        assert _lead_ms(untrimmed) >= 150
        assert untrimmed.endswith(pcm) and len(untrimmed) - len(pcm) >= 2 * 8000 * 0.1
    quiet = b"\x00\x00" * 800
    assert trim_leading_silence(quiet, 8000) == quiet  # nothing loud: unchanged


def test_committed_sounds_start_with_the_voice() -> None:
    """The committed static prompts were built with the leading silence cut (rebuild
    them with `ivr sounds build` after changing the TTS)."""
    late = {p.name: _lead_ms(read_wav(p).pcm16) for p in DEFAULT_SOUNDS.glob("*/*.wav")}
    assert late and all(ms <= 40 for ms in late.values()), {
        k: v for k, v in late.items() if v > 40}
