"""Vosk (Kaldi) recogniser: streaming, grammar mode, n-best, Kaldi endpointing.

One ``vosk.Model`` per language is loaded once and shared by every call (Kaldi
models are read-only after load and Vosk's recognisers are independent); each
stream owns one ``KaldiRecognizer``. All decoding runs in worker threads: Vosk's
cffi calls release the GIL, so calls decode in parallel.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ivr.domain.ports import RecognitionEvent, RecognitionResult
from ivr.speech.audio import StreamResampler, to_float, to_pcm16
from ivr.speech.base import (
    EMPTY_RESULT,
    SUPPORTED_RATES,
    SpeechError,
    StreamLimits,
    run_blocking,
    unique_phrases,
    without_marker,
)
from ivr.speech.vad import EndpointConfig, SileroVad, VadStream

log = logging.getLogger(__name__)

UNK = "[unk]"


@dataclass(frozen=True, slots=True)
class VoskEndpointRules:
    """Kaldi endpoint rules (seconds), written into a copy of the model's conf/model.conf.

    Vosk has no endpointer API: the rules are read from model.conf at load time.
    rule1: silence only (no speech at all); rule2/3/4: trailing silence after
    speech, depending on how final the decoder thinks the utterance is;
    rule5: maximum utterance length.
    """

    rule1_silence_s: float = 8.0
    rule2_trailing_s: float = 0.5
    rule3_trailing_s: float = 0.8
    rule4_trailing_s: float = 1.5
    rule5_max_utterance_s: float = 20.0

    def options(self) -> dict[str, str]:
        return {
            "--endpoint.rule1.min-trailing-silence": f"{self.rule1_silence_s}",
            "--endpoint.rule2.min-trailing-silence": f"{self.rule2_trailing_s}",
            "--endpoint.rule3.min-trailing-silence": f"{self.rule3_trailing_s}",
            "--endpoint.rule4.min-trailing-silence": f"{self.rule4_trailing_s}",
            "--endpoint.rule5.min-utterance-length": f"{self.rule5_max_utterance_s}",
        }


def overlay_model_dir(src: Path, dst: Path, rules: VoskEndpointRules) -> Path:
    """Build ``dst`` as a symlink overlay of model ``src`` with rewritten conf/model.conf.

    The operator's model directory is never edited; only the small conf file is
    copied, everything else (hundreds of MB) is linked.
    """
    if not (src / "am").is_dir() and not (src / "final.mdl").exists():
        raise SpeechError(f"{src} does not look like a Vosk model (no am/ directory)")
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name != "conf":
            (dst / entry.name).symlink_to(entry.resolve())
    conf_dst = dst / "conf"
    conf_dst.mkdir()
    conf_src = src / "conf"
    lines: list[str] = []
    if conf_src.is_dir():
        for entry in conf_src.iterdir():
            if entry.name != "model.conf":
                (conf_dst / entry.name).symlink_to(entry.resolve())
        if (conf_src / "model.conf").exists():
            lines = (conf_src / "model.conf").read_text().splitlines()
    overrides = rules.options()
    kept = [ln for ln in lines if ln.split("=", 1)[0].strip() not in overrides]
    kept += [f"{k}={v}" for k, v in overrides.items()]
    (conf_dst / "model.conf").write_text("\n".join(kept) + "\n")
    return dst


def model_sample_rate(model_dir: Path) -> int:
    """The rate a Vosk model was trained on (conf/mfcc.conf ``--sample-frequency``)."""
    mfcc = model_dir / "conf" / "mfcc.conf"
    if mfcc.exists():
        for line in mfcc.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "--sample-frequency":
                try:
                    return int(float(value))
                except ValueError:
                    break
    return 16000


class VoskModels:
    """Loads one vosk.Model per language on first use; thread-safe, shared by all streams."""

    def __init__(self, paths: Mapping[str, Path], rules: VoskEndpointRules, work_dir: Path | None):
        self._paths = {k: Path(v) for k, v in paths.items()}
        self._rules = rules
        self._work_dir = work_dir
        self._tmp: Path | None = None
        self._models: dict[str, tuple[Any, int]] = {}
        self._locks = {lang: threading.Lock() for lang in self._paths}

    def languages(self) -> set[str]:
        return set(self._paths)

    def get(self, language: str) -> tuple[Any, int]:
        """(model, its sample rate) for ``language`` (blocking on first load: use a thread)."""
        if language not in self._paths:
            raise SpeechError(f"no Vosk model configured for {language!r}")
        with self._locks[language]:
            loaded = self._models.get(language)
            if loaded is None:
                import vosk

                vosk.SetLogLevel(-1)  # Kaldi logs to stderr otherwise, one line per stream
                if self._tmp is None:
                    self._tmp = Path(tempfile.mkdtemp(prefix="ivr-vosk-", dir=self._work_dir))
                overlay = overlay_model_dir(
                    self._paths[language], self._tmp / language, self._rules
                )
                try:
                    model = vosk.Model(str(overlay))
                except Exception as exc:  # vosk raises a bare Exception on load failure
                    raise SpeechError(
                        f"cannot load Vosk model {self._paths[language]}: {exc}"
                    ) from exc
                loaded = (model, model_sample_rate(overlay))
                self._models[language] = loaded
            return loaded

    def close(self) -> None:
        """Drop the models and remove the overlay directories."""
        self._models.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class VoskRecognizer:
    """Recognizer port on Vosk. ``model_paths`` maps language -> operator's model dir."""

    name = "vosk"

    def __init__(
        self,
        model_paths: Mapping[str, Path],
        *,
        rules: VoskEndpointRules | None = None,
        limits: StreamLimits | None = None,
        max_alternatives: int = 3,
        grammar_mode: bool = True,
        executor: Executor | None = None,
        work_dir: Path | None = None,
        vad: SileroVad | None = None,
        endpoint: EndpointConfig | None = None,
    ) -> None:
        self._models = VoskModels(model_paths, rules or VoskEndpointRules(), work_dir)
        # Kaldi's endpointer is the primary end-of-speech signal; Silero VAD runs
        # beside it because Kaldi misses the end when the leg goes digitally silent
        # on upsampled 8 kHz audio (seen with the small models).
        self._vad = vad if vad is not None else SileroVad()
        self._endpoint = endpoint or EndpointConfig()
        self._limits = limits or StreamLimits()
        self._max_alternatives = max_alternatives
        self._grammar_mode = grammar_mode
        self._executor = executor

    def supports(self, language: str) -> bool:
        return language in self._models.languages()

    async def load(self, language: str) -> None:
        """Load a language's model ahead of the first call (optional)."""
        await run_blocking(self._executor, self._models.get, language)

    async def open_stream(
        self, language: str, *, sample_rate: int, phrases: Sequence[str] = (),
        detect_language: bool = False,
    ) -> VoskStream:
        """Open a stream; with phrases (and grammar mode) recognition is constrained to them.
        A Vosk model is one language: ``detect_language`` changes nothing."""
        if sample_rate not in SUPPORTED_RATES:
            raise SpeechError(f"unsupported sample rate {sample_rate}")
        model, model_rate = await run_blocking(self._executor, self._models.get, language)
        grammar = self._grammar(model, phrases) if self._grammar_mode and phrases else None
        # Feeding 8 kHz call audio to a 16 kHz model and letting Kaldi resample
        # decodes, but its endpointer never fires (seen with the small models):
        # upsample here instead, with filter state kept across packets.
        resampler = (
            StreamResampler(sample_rate, model_rate)
            if model_rate != sample_rate and model_rate in (sample_rate * 2, sample_rate // 2)
            else None
        )
        rate = model_rate if resampler else sample_rate
        rec = await run_blocking(self._executor, self._make_recognizer, model, rate, grammar)
        vad = VadStream(self._vad, sample_rate, self._endpoint)
        return VoskStream(rec, sample_rate, self._limits, self._executor, resampler, vad)

    @staticmethod
    def _grammar(model: Any, phrases: Sequence[str]) -> list[str] | None:
        # Kaldi drops out-of-vocabulary grammar words with a warning, which would
        # silently turn "order status" into "status": keep only phrases whose
        # every word the model knows.
        kept = [
            p
            for p in unique_phrases(without_marker(phrases))
            if all(model.vosk_model_find_word(w) >= 0 for w in p.split())
        ]
        if not kept:
            return None
        if model.vosk_model_find_word(UNK) >= 0:
            kept.append(UNK)  # lets anything else come out as [unk] instead of a forced match
        return kept

    def _make_recognizer(self, model: Any, sample_rate: int, grammar: list[str] | None) -> Any:
        import vosk

        if grammar:
            rec = vosk.KaldiRecognizer(
                model, float(sample_rate), json.dumps(grammar, ensure_ascii=False)
            )
        else:
            rec = vosk.KaldiRecognizer(model, float(sample_rate))
        rec.SetMaxAlternatives(self._max_alternatives)
        rec.SetWords(True)
        return rec

    async def aclose(self) -> None:
        """Release models and temporary files."""
        self._models.close()


class VoskStream:
    """One utterance on a KaldiRecognizer. Errors end the turn with an empty result."""

    def __init__(
        self,
        rec: Any,
        sample_rate: int,
        limits: StreamLimits,
        executor: Executor | None,
        resampler: StreamResampler | None = None,
        vad: VadStream | None = None,
    ) -> None:
        self._rec = rec
        self._vad = vad
        self._resampler = resampler
        self._rng = np.random.default_rng(0)
        self._rate = sample_rate
        self._limits = limits
        self._executor = executor
        self._fed_bytes = 0
        self._started = False
        self._endpoint_json: str | None = None
        self._ended = False
        self._failed = False
        self._end_time: float | None = None

    async def feed(self, pcm16: bytes) -> RecognitionEvent:
        if self._ended or self._failed:
            return RecognitionEvent(endpoint=True)
        try:
            return await run_blocking(self._executor, self._feed_sync, pcm16)
        except Exception:
            log.exception("vosk feed failed; ending the turn")
            self._failed = self._ended = True
            return RecognitionEvent(endpoint=True)

    def _feed_sync(self, pcm16: bytes) -> RecognitionEvent:
        pcm16 = pcm16[: len(pcm16) - len(pcm16) % 2]
        budget = int(self._limits.max_stream_s * self._rate) * 2 - self._fed_bytes
        partial = ""
        step = self._limits.max_chunk_bytes
        for i in range(0, min(len(pcm16), max(budget, 0)), step):
            chunk = pcm16[i : min(i + step, budget)]
            self._fed_bytes += len(chunk)
            chunk = self._condition(chunk)
            if self._rec.AcceptWaveform(chunk):
                # Kaldi's endpointer fired: keep this result; the turn is over.
                self._endpoint_json = self._rec.Result()
                self._mark_end()
                return RecognitionEvent(endpoint=True)
        vad_started = False
        if self._vad is not None and len(pcm16):
            update = self._vad.feed(pcm16[: max(budget, 0)])
            vad_started = update.speech_started
            if update.endpoint:
                self._mark_end()
                return RecognitionEvent(speech_started=self._start_now(vad_started), endpoint=True)
        if self._fed_bytes >= int(self._limits.max_stream_s * self._rate) * 2:
            self._mark_end()  # stream cap: stop listening, decode what we have
            return RecognitionEvent(endpoint=True)
        partial = json.loads(self._rec.PartialResult()).get("partial", "")
        partial = " ".join(w for w in partial.split() if w != UNK)
        # With a VAD, "speech started" (barge-in) follows it: grammar-mode partials
        # appear on noise too when the model has no [unk] word to absorb it.
        speech = vad_started if self._vad is not None else bool(partial)
        return RecognitionEvent(partial=partial, speech_started=self._start_now(speech))

    def _condition(self, chunk: bytes) -> bytes:
        # No DC removal here: Kaldi's feature extraction removes DC per frame.
        x = to_float(chunk)
        if self._resampler is not None:
            x = self._resampler.process(x)
        # Digital silence (all-zero samples, as a muted or padded leg delivers)
        # leaves Kaldi's log-energy features degenerate and its endpointer never
        # sees "silence": add +-1 LSB of dither, as Kaldi's own feature tools do.
        x = x + self._rng.uniform(-1.0, 1.0, x.size).astype(np.float32) / 32768.0
        return to_pcm16(x)

    def _start_now(self, speech: bool) -> bool:
        if speech and not self._started:
            self._started = True
            return True
        return False

    def _mark_end(self) -> None:
        self._ended = True
        self._end_time = time.perf_counter()

    async def finish(self) -> RecognitionResult:
        if self._failed:
            return EMPTY_RESULT
        t0 = time.perf_counter()
        try:
            raw = self._endpoint_json
            if raw is None:
                raw = str(await run_blocking(self._executor, self._rec.FinalResult))
        except Exception:
            log.exception("vosk final result failed")
            self._failed = True
            return EMPTY_RESULT
        self._ended = True
        # Kaldi already decoded up to the endpoint while audio streamed in; what is
        # left after end of speech is the final lattice pass measured here.
        elapsed = (time.perf_counter() - t0) * 1000
        if self._vad is not None and not self._vad.endpointer.started:
            # The VAD heard no speech at all (silence, noise, music): whatever Kaldi
            # forced through the grammar is not something the caller said.
            return RecognitionResult(text="", confidence=0.0, processing_ms=elapsed)
        return parse_vosk_result(raw, processing_ms=elapsed)

    async def close(self) -> None:
        self._ended = True
        self._rec = None


def parse_vosk_result(raw: str, *, processing_ms: float = 0.0) -> RecognitionResult:
    """Turn Vosk's JSON (n-best or single) into a RecognitionResult with a 0..1 confidence."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return EMPTY_RESULT
    alts_raw = data.get("alternatives")
    if alts_raw:
        # n-best "confidence" values are total lattice scores (log domain): a softmax
        # over the list gives each hypothesis' share; a lone hypothesis gets 1.0.
        scores = [float(a.get("confidence", 0.0)) for a in alts_raw]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        hyps: dict[str, float] = {}
        words: tuple[tuple[str, float, float], ...] = ()
        for i, (a, e) in enumerate(zip(alts_raw, exps, strict=True)):
            text = _clean(a.get("text", ""))
            hyps[text] = hyps.get(text, 0.0) + e / total
            if i == 0:
                words = _words(a.get("result", []))
        ranked = sorted(hyps.items(), key=lambda kv: -kv[1])
        best_text, best_conf = ranked[0]
        if not best_text:
            best_conf = 0.0
        return RecognitionResult(
            text=best_text,
            confidence=round(best_conf, 4),
            alternatives=tuple((t, round(c, 4)) for t, c in ranked if t),
            words=words,
            processing_ms=processing_ms,
        )
    text = _clean(data.get("text", ""))
    items = data.get("result", [])
    confs = [float(w.get("conf", 0.0)) for w in items if w.get("word") != UNK]
    conf = sum(confs) / len(confs) if confs and text else 0.0
    return RecognitionResult(
        text=text,
        confidence=round(conf, 4),
        alternatives=((text, round(conf, 4)),) if text else (),
        words=_words(items),
        processing_ms=processing_ms,
    )


def _clean(text: str) -> str:
    return " ".join(w for w in text.split() if w != UNK)


def _words(items: list[dict[str, Any]]) -> tuple[tuple[str, float, float], ...]:
    return tuple(
        (str(w["word"]), float(w.get("start", 0.0)), float(w.get("end", 0.0)))
        for w in items
        if w.get("word") and w.get("word") != UNK
    )
