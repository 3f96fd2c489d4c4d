"""IVR_WHISPER_MODEL: any CTranslate2 Whisper directory; its vocabulary says which languages
it serves (the bundled tiny.en: English only; a multilingual one: English and Dutch)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ivr.app import build_recognizer
from ivr.config import load_settings
from ivr.domain.ports import RecognitionResult
from ivr.speech.base import SpeechError
from ivr.speech.whisper_engine import bundled_tiny_en_path, whisper_languages

from .conftest import detecting_turn


def test_the_bundled_tiny_en_is_english_only() -> None:
    """The installed model (51,864 tokens) serves English only."""
    assert whisper_languages(bundled_tiny_en_path()) == ("en",)


def test_a_multilingual_vocabulary_serves_dutch_too(tmp_path: Path) -> None:
    """51,865 tokens (a multilingual model, as vocabulary.txt or .json): English and Dutch."""
    (tmp_path / "model.bin").write_bytes(b"")
    (tmp_path / "vocabulary.json").write_text(json.dumps([f"t{i}" for i in range(51865)]))
    assert whisper_languages(tmp_path) == ("en", "nl")
    with pytest.raises(SpeechError, match="not a CTranslate2 Whisper model"):
        whisper_languages(tmp_path / "missing")


def test_setting_selects_the_model_and_it_loads(tmp_path: Path) -> None:
    """IVR_WHISPER_MODEL points at a copy of tiny.en: the node's recogniser serves English
    from that directory, not Dutch."""
    model = tmp_path / "whisper-copy"
    shutil.copytree(bundled_tiny_en_path(), model)
    settings = load_settings(env_file=None, environ={"IVR_WHISPER_MODEL": str(model)})
    assert settings.whisper_model == model
    rec = build_recognizer(replace(settings, vosk_model_en=None, vosk_model_nl=None))
    whisper = rec.engine_for("en")  # type: ignore[attr-defined]
    assert whisper.supports("en") and not whisper.supports("nl")
    assert whisper._model_dir == model  # type: ignore[attr-defined]
    whisper.model()  # loads from the copy


def test_node_speech_languages_follow_the_model(tmp_path: Path) -> None:
    """The flow's keypad-only rule reads the languages from the settings alone: tiny.en hears
    English (Dutch only through the bundled Whisper base, when installed); a multilingual
    Whisper directory English and Dutch; a Vosk Dutch model Dutch."""
    from ivr.app import speech_languages
    from ivr.speech import whisper_base

    base = replace(load_settings(env_file=None, environ={}), vosk_model_en=None,
                   vosk_model_nl=None)
    assert speech_languages(base) == ("en", "nl")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(whisper_base, "PARTS", ("no_such_whisper_part_a", "no_such_whisper_part_b"))
        assert speech_languages(base) == ("en",)
    multi = tmp_path / "multi"
    multi.mkdir()
    (multi / "model.bin").write_bytes(b"")
    (multi / "vocabulary.json").write_text(json.dumps([f"t{i}" for i in range(51866)]))
    assert speech_languages(replace(base, whisper_model=multi)) == ("en", "nl")
    assert speech_languages(replace(base, vosk_model_nl=tmp_path)) == ("en", "nl")




async def test_detection_is_ignored_by_the_english_only_model() -> None:
    """tiny.en cannot tell languages apart: a detecting stream decodes English and names no
    language (the flow then keeps the caller's language)."""
    from ivr.speech.recognizers import recognize_pcm
    from ivr.speech.whisper_engine import WhisperRecognizer, detect_language

    rec = WhisperRecognizer(languages=("en",))
    pcm, result = await detecting_turn(rec, "what are your opening hours")
    assert "opening hours" in result.text.lower() and result.language is None
    assert (await recognize_pcm(rec, pcm, 8000, "en")).text == result.text
    import numpy as np

    assert detect_language(rec.model(), np.zeros(16000, dtype=np.float32), ("en", "nl")) is None


class _RecordingBatcher:
    """Stands in for the DecodeBatcher: records the language each turn is decoded in."""

    def __init__(self) -> None:
        self.languages: list[str] = []

    async def decode(self, audio: object, language: str, phrases: object, beam_size: int,
                     speech_s: float | None, hidden: bool = False) -> RecognitionResult:
        self.languages.append(language)
        return RecognitionResult(text="hoe laat zijn jullie open", confidence=0.9)


async def test_a_detected_language_is_decoded_in_on_the_batched_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With batching on (the default), a detecting turn is decoded in the detected
    language and names it. Detection is stood in for (it answers "nl"): the bundled
    multilingual base hears espeak-ng's Dutch, the only Dutch voice here, as English; the
    stream, its endpointer and the hand-off are real."""
    from ivr.speech import whisper_engine

    monkeypatch.setattr(whisper_engine, "detect_language", lambda model, audio, cands: "nl")
    rec = whisper_engine.WhisperRecognizer(languages=("en", "nl"))
    batcher = _RecordingBatcher()
    rec.batcher = batcher  # type: ignore[assignment]
    _, result = await detecting_turn(rec, "what are your opening hours")
    assert batcher.languages and set(batcher.languages) == {"nl"}, batcher.languages
    assert result.language == "nl"
