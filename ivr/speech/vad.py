"""Voice activity detection and end-of-speech detection for streaming audio.

``SileroVad`` runs the Silero VAD v6 ONNX model that ships inside faster-whisper
(``faster_whisper/assets``), one 32 ms window at a time with the recurrent state
kept per stream. ``Endpointer`` turns speech probabilities into "speech started"
and "speech ended" on the audio clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ivr.speech.audio import DcBlocker, FloatArray, StreamResampler, to_float

VAD_RATE = 16000
_WINDOW = 512  # samples at 16 kHz: the window Silero v6 is trained on
_CONTEXT = 64  # samples of the previous window the model expects in front


def bundled_silero_path() -> Path:
    """Path of the Silero VAD model bundled with faster-whisper."""
    from faster_whisper.utils import get_assets_path

    return Path(get_assets_path()) / "silero_vad_v6.onnx"


class SileroVad:
    """Silero VAD model, loaded once and shared by every stream (onnxruntime is thread-safe)."""

    def __init__(self, model_path: Path | None = None) -> None:
        self._path = model_path or bundled_silero_path()
        self._session: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime

                opts = onnxruntime.SessionOptions()
                # One thread per call: many calls run VAD at once, and each window is tiny.
                opts.inter_op_num_threads = 1
                opts.intra_op_num_threads = 1
                opts.log_severity_level = 4
                self._session = onnxruntime.InferenceSession(
                    str(self._path), providers=["CPUExecutionProvider"], sess_options=opts
                )
            return self._session

    def state(self) -> SileroState:
        """Fresh per-stream recurrent state."""
        return SileroState(self._load())


class SileroState:
    """Per-stream Silero state: buffers 16 kHz audio into windows and carries h/c/context."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self.levels: list[float] = []  # RMS of each window of the last call

    def probabilities(self, samples16k: FloatArray) -> list[float]:
        """Speech probability for each complete 32 ms window in the buffered audio
        (each window's RMS level is left in ``levels``)."""
        buf = np.concatenate([self._pending, samples16k.astype(np.float32)])
        n = buf.size // _WINDOW
        self._pending = buf[n * _WINDOW :]
        out: list[float] = []
        self.levels = []
        for i in range(n):
            win = buf[i * _WINDOW : (i + 1) * _WINDOW]
            self.levels.append(float(np.sqrt(np.mean(win * win))))
            x = np.concatenate([self._context, win])[None, :]
            prob, self._h, self._c = self._session.run(
                None, {"input": x, "h": self._h, "c": self._c}
            )
            self._context = win[-_CONTEXT:]
            out.append(float(np.asarray(prob).reshape(-1)[0]))
        return out


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """End-of-speech rules, in milliseconds of audio."""

    threshold: float = 0.5  # probability above which a window is speech
    neg_threshold: float = 0.35  # below this, speech is over (hysteresis)
    min_speech_ms: int = 96  # speech this long counts as "caller started talking"
    end_silence_ms: int = 700  # trailing silence that ends the utterance
    max_speech_s: float = 30.0  # a monologue is cut here (bounded memory and latency)
    # Short answers (a digit, "yes", "no"): a window also counts as speech when it is
    # loud, i.e. at least ``energy_min_dbfs`` and ``energy_over_floor_db`` above the
    # line's noise floor. Silero alone reads 0.1-0.4 on many real 150-200 ms digits
    # (FSDD): they never started and the answer vanished. Only for closed vocabularies,
    # where the decoder can answer nothing but a grammar word (see whisper_engine).
    energy_assist: bool = False
    energy_min_dbfs: float = -50.0
    energy_over_floor_db: float = 15.0
    # ...and Silero must not call it plain noise: white or line noise at any level reads
    # under 0.05 here, the shortest real digits 0.1-0.4.
    energy_min_prob: float = 0.05


@dataclass(frozen=True, slots=True)
class EndpointUpdate:
    """What changed with the last chunk."""

    speech_started: bool = False  # became true with this chunk
    endpoint: bool = False  # became true with this chunk
    in_speech: bool = False


class Endpointer:
    """Hysteresis state machine over per-window speech probabilities."""

    def __init__(self, config: EndpointConfig, window_ms: float = _WINDOW * 1000 / VAD_RATE):
        self.config = config
        self._win_ms = window_ms
        self._speech_run_ms = 0.0
        self._silence_run_ms = 0.0
        self._in_speech = False
        self.started = False
        self.ended = False
        self.speech_ms = 0.0
        self.position_ms = 0.0
        self.start_ms: float | None = None
        self.end_ms: float | None = None

    @property
    def trailing_silence_ms(self) -> float:
        """Silence since the caller's last speech (0 before speech starts or after the end)."""
        return self._silence_run_ms if self.started and not self.ended else 0.0

    def update(self, probs: list[float], loud: list[bool] | None = None) -> EndpointUpdate:
        """Consume window probabilities (and, with energy assist, which windows are loud);
        report start/end transitions."""
        started_now = ended_now = False
        cfg = self.config
        for k, p in enumerate(probs):
            self.position_ms += self._win_ms
            if self.ended:
                continue
            # Silero's own rule: a run starts at ``threshold`` and continues down to
            # ``neg_threshold`` (also before it is long enough to count as speech: soft
            # short words such as "four" hover around 0.5 and were missed entirely).
            speechy = p >= cfg.threshold or (
                (self._in_speech or self._speech_run_ms > 0) and p >= cfg.neg_threshold
            ) or (loud is not None and loud[k])
            if speechy:
                self._speech_run_ms += self._win_ms
                self._silence_run_ms = 0.0
                if not self._in_speech and self._speech_run_ms >= cfg.min_speech_ms:
                    self._in_speech = True
                    if not self.started:
                        self.started = started_now = True
                        self.start_ms = self.position_ms - self._speech_run_ms
            else:
                self._speech_run_ms = 0.0
                self._silence_run_ms += self._win_ms
                if self._in_speech and self._silence_run_ms >= cfg.end_silence_ms:
                    self._in_speech = False
            if self.started:
                self.speech_ms = self.position_ms - (self.start_ms or 0.0)
                if (not self._in_speech and self._silence_run_ms >= cfg.end_silence_ms) or (
                    self.speech_ms >= cfg.max_speech_s * 1000
                ):
                    self.ended = ended_now = True
                    self.end_ms = self.position_ms - (
                        0.0 if self._in_speech else self._silence_run_ms
                    )
        return EndpointUpdate(started_now, ended_now, self._in_speech)


class VadStream:
    """Streaming VAD for one utterance: slin at any 8k/16k rate in, start/end events out."""

    def __init__(self, vad: SileroVad, sample_rate: int, config: EndpointConfig) -> None:
        self._resampler = StreamResampler(sample_rate, VAD_RATE)
        self._dc = DcBlocker()
        self._state = vad.state()
        self.endpointer = Endpointer(config)
        self._config = config
        # Noise floor (RMS) for energy assist: starts low, so speech in the very first
        # window still reads as loud; follows quieter windows at once, louder ones slowly.
        self._floor = _db_to_rms(-65.0)

    def feed(self, pcm16: bytes) -> EndpointUpdate:
        """Blocking (runs the ONNX model): call from a worker thread."""
        x = self._dc.process(to_float(pcm16))
        probs = self._state.probabilities(self._resampler.process(x))
        if not self._config.energy_assist:
            return self.endpointer.update(probs)
        floor_p = self._config.energy_min_prob
        return self.endpointer.update(probs, [self._loud(r) and p >= floor_p
                                              for r, p in zip(self._state.levels, probs,
                                                              strict=True)])

    def _loud(self, rms: float) -> bool:
        cfg = self._config
        loud = rms >= max(_db_to_rms(cfg.energy_min_dbfs),
                          self._floor * _db_to_rms(cfg.energy_over_floor_db))
        # +0.3 dB a window at most (~9 dB a second): a word does not lift the floor.
        self._floor = min(rms, self._floor * 1.035) if rms > 0 else self._floor
        return loud


def _db_to_rms(db: float) -> float:
    return float(10.0 ** (db / 20.0))
