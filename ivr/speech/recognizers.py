"""Engine selection: Vosk where the operator configured a model, Whisper tiny.en for
English otherwise, and the bundled multilingual Whisper base for Dutch when neither a
Vosk Dutch model nor a multilingual IVR_WHISPER_MODEL serves it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.domain.model import Language
from ivr.domain.ports import RecognitionResult, Recognizer, RecognizerStream
from ivr.speech import whisper_base
from ivr.speech.base import SpeechError

if TYPE_CHECKING:
    from ivr.speech.whisper_engine import TurnJudge


class FallbackRecognizer:
    """Recognizer port that routes each language to the first engine supporting it."""

    name = "auto"

    def __init__(self, engines: Sequence[Recognizer]) -> None:
        self._engines = tuple(engines)

    def engine_for(self, language: str) -> Recognizer | None:
        """The engine that would serve ``language`` (None if none does)."""
        for engine in self._engines:
            if engine.supports(language):  # type: ignore[arg-type]
                return engine
        return None

    def supports(self, language: str) -> bool:
        return self.engine_for(language) is not None

    async def open_stream(
        self, language: str, *, sample_rate: int, phrases: Sequence[str] = (),
        detect_language: bool = False,
    ) -> RecognizerStream:
        engine = self.engine_for(language)
        if engine is None:
            raise SpeechError(f"no speech engine for language {language!r}")
        return await engine.open_stream(
            language,  # type: ignore[arg-type]
            sample_rate=sample_rate,
            phrases=phrases,
            detect_language=detect_language,
        )


def build_recognizer(
    vosk_models: Mapping[str, Path],
    *,
    whisper_model_dir: Path | None = None,
    whisper_window: str = "auto",
    executor: Executor | None = None,
    adaptive_end: bool = True,
    whisper_batch: int = 8,
    judge: TurnJudge | None = None,
) -> FallbackRecognizer:
    """Vosk for every configured language first, then Whisper (``whisper_model_dir``, else
    the bundled tiny.en) and, when Dutch is still unserved, the bundled Whisper base for
    Dutch (``whisper_base``; its weights are joined on the first Dutch turn).
    ``judge``: see ``WhisperRecognizer`` (adaptive end of turn on understood requests)."""
    from ivr.speech.vad import SileroVad
    from ivr.speech.vosk_engine import VoskRecognizer
    from ivr.speech.whisper_engine import WhisperRecognizer

    vad = SileroVad()
    engines: list[Recognizer] = []
    if vosk_models:
        engines.append(VoskRecognizer(vosk_models, executor=executor, vad=vad))
    from ivr.speech.whisper_engine import whisper_languages

    languages = whisper_languages(whisper_model_dir) if whisper_model_dir else ("en",)
    engines.append(WhisperRecognizer(whisper_model_dir, languages=languages, executor=executor,
                                     vad=vad, window=whisper_window, adaptive_end=adaptive_end,
                                     batch_max=whisper_batch, judge=judge))
    if "nl" not in set(vosk_models) | set(languages) and whisper_base.installed():
        engines.append(WhisperRecognizer(whisper_base.model_dir, languages=("nl",),
                                         executor=executor, vad=vad, window=whisper_window,
                                         adaptive_end=adaptive_end, batch_max=whisper_batch,
                                         judge=judge))
    return FallbackRecognizer(engines)


def speech_languages(vosk_models: Mapping[str, Path], whisper_model_dir: Path | None
                     ) -> tuple[str, ...]:
    """The languages ``build_recognizer`` would hear, read from the configuration alone
    (no model is loaded): Vosk's configured languages plus Whisper's, plus Dutch when
    the bundled Whisper base is installed."""
    from ivr.speech.whisper_engine import whisper_languages

    whisper = whisper_languages(whisper_model_dir) if whisper_model_dir else ("en",)
    bundled = ("nl",) if whisper_base.installed() else ()
    return tuple(sorted(set(vosk_models) | set(whisper) | set(bundled)))


async def recognize_pcm(
    recognizer: Recognizer, pcm16: bytes, rate: int, language: Language,
    phrases: Sequence[str] = (),
) -> RecognitionResult:
    """Recognise a whole recording as a call would: 20 ms frames, then a second of
    trailing silence so endpointing can fire, then the final result."""
    stream = await recognizer.open_stream(language, sample_rate=rate, phrases=phrases)
    try:
        step = rate // 50 * 2  # 20 ms packets, as RTP delivers them
        padded = pcm16 + bytes(rate * 2)
        for i in range(0, len(padded), step):
            if (await stream.feed(padded[i : i + step])).endpoint:
                break
        return await stream.finish()
    finally:
        await stream.close()
