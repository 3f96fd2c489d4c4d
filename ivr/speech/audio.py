"""Audio helpers for telephone speech: G.711, resampling, byte order, levels, WAV I/O.

Pure numpy (``audioop`` is deprecated since Python 3.11 and gone in 3.13).
PCM is 16-bit signed mono throughout; "slin" means little-endian unless said.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float32]


class AudioError(ValueError):
    """Audio that cannot be decoded (bad WAV header, unsupported encoding...)."""


# ---------------------------------------------------------------- G.711 --

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def _build_ulaw_table() -> Int16Array:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_alaw_table() -> Int16Array:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    # G.711 A-law: the sign bit set means positive.
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


_ULAW_TABLE = _build_ulaw_table()
_ALAW_TABLE = _build_alaw_table()


def ulaw_decode(data: bytes) -> bytes:
    """G.711 mu-law bytes -> 16-bit little-endian PCM."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _ULAW_TABLE[codes].astype("<i2").tobytes()


def alaw_decode(data: bytes) -> bytes:
    """G.711 A-law bytes -> 16-bit little-endian PCM."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _ALAW_TABLE[codes].astype("<i2").tobytes()


def _segment(magnitude: npt.NDArray[np.int32], base_shift: int) -> npt.NDArray[np.int32]:
    # Position of the highest set bit above ``base_shift``, clamped to the 8 segments.
    seg = np.zeros_like(magnitude)
    for s in range(1, 8):
        seg = np.where(magnitude >= (1 << (s + base_shift)), s, seg)
    return seg


def ulaw_encode(pcm16: bytes) -> bytes:
    """16-bit little-endian PCM -> G.711 mu-law bytes."""
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    exponent = _segment(mag, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    codes: npt.NDArray[np.uint8] = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    return codes.tobytes()


def alaw_encode(pcm16: bytes) -> bytes:
    """16-bit little-endian PCM -> G.711 A-law bytes."""
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.int32)
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.minimum(np.where(x < 0, -x - 1, x), 32767) >> 3  # 13-bit magnitude
    exponent = _segment(mag, 4)
    mantissa = np.where(exponent == 0, mag >> 1, mag >> exponent) & 0x0F
    codes: npt.NDArray[np.uint8] = ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)
    return codes.tobytes()


def byteswap16(data: bytes) -> bytes:
    """Swap the byte order of 16-bit samples (RTP L16/slin16 is big-endian on the wire)."""
    if len(data) % 2:
        data = data[:-1]  # a torn sample is noise; never fail a call on it
    return np.frombuffer(data, dtype="<i2").byteswap().tobytes()


# ----------------------------------------------------------- resampling --


def _lowpass(cutoff: float, taps: int = 63) -> FloatArray:
    """Windowed-sinc low-pass FIR; ``cutoff`` in cycles/sample (0..0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    # ndarray.sum() is typed Any in numpy's stubs: pin the result type here.
    fir: FloatArray = (h / h.sum()).astype(np.float32)
    return fir


def to_float(pcm16: bytes) -> FloatArray:
    """16-bit little-endian PCM -> float32 in [-1, 1)."""
    return (np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)


def to_pcm16(samples: npt.NDArray[np.floating]) -> bytes:
    """float samples in [-1, 1] -> 16-bit little-endian PCM (clipped, not wrapped)."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


def resample(samples: FloatArray, src_rate: int, dst_rate: int) -> FloatArray:
    """Resample a whole float signal (anti-aliased); exact 2x paths for 8k <-> 16k."""
    if src_rate <= 0 or dst_rate <= 0:
        raise AudioError(f"bad sample rate {src_rate} -> {dst_rate}")
    if src_rate == dst_rate or samples.size == 0:
        return samples.astype(np.float32)
    if dst_rate == 2 * src_rate or src_rate == 2 * dst_rate:
        r = StreamResampler(src_rate, dst_rate)
        return np.concatenate([r.process(samples), r.flush()]).astype(np.float32)
    # Any other ratio (22.05 kHz TTS output, 44.1 kHz files): low-pass below the
    # lower Nyquist, then linear interpolation; good enough for speech features.
    x = samples.astype(np.float32)
    if dst_rate < src_rate:
        x = np.convolve(x, _lowpass(0.45 * dst_rate / src_rate, 101), mode="same")
    n_out = round(x.size * dst_rate / src_rate)
    t = np.arange(n_out) * (src_rate / dst_rate)
    out: FloatArray = np.interp(t, np.arange(x.size), x).astype(np.float32)
    return out


class StreamResampler:
    """Chunk-by-chunk 2x up/down resampler that keeps filter state between chunks.

    Call audio arrives in 20 ms packets; filtering each packet on its own would
    click at every boundary, so the FIR history is carried over.
    """

    def __init__(self, src_rate: int, dst_rate: int, taps: int = 63) -> None:
        if not (src_rate == dst_rate or dst_rate == 2 * src_rate or src_rate == 2 * dst_rate):
            raise AudioError(
                f"stream resampling supports only 2x ratios, not {src_rate}->{dst_rate}"
            )
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._h = _lowpass(0.25, taps)
        self._delay = (taps - 1) // 2
        self._history = np.zeros(taps - 1, dtype=np.float32)
        self._phase = 0  # parity of the next filtered sample when decimating
        self._skip = self._delay  # drop the filter's start-up delay once

    def _filter(self, x: FloatArray) -> FloatArray:
        buf = np.concatenate([self._history, x])
        self._history = buf[-(self._h.size - 1) :]
        return np.convolve(buf, self._h, mode="valid").astype(np.float32)

    def _trim(self, y: FloatArray) -> FloatArray:
        if self._skip:
            cut = min(self._skip, y.size)
            self._skip -= cut
            y = y[cut:]
        return y

    def process(self, x: FloatArray) -> FloatArray:
        """Resample one chunk; output length follows the ratio over the whole stream."""
        if self.src_rate == self.dst_rate:
            return x.astype(np.float32)
        if self.dst_rate > self.src_rate:
            stuffed = np.zeros(x.size * 2, dtype=np.float32)
            stuffed[::2] = x
            return self._trim(self._filter(stuffed) * 2.0)
        y = self._trim(self._filter(x.astype(np.float32)))
        out = y[self._phase :: 2]
        self._phase = (self._phase + y.size) % 2
        return out

    def flush(self) -> FloatArray:
        """Push out the samples still held back by the filter delay."""
        if self.src_rate == self.dst_rate:
            return np.zeros(0, dtype=np.float32)
        pad_len = self._delay // 2 + 1 if self.dst_rate > self.src_rate else self._delay
        out = self.process(np.zeros(pad_len, dtype=np.float32))
        want = self._delay if self.dst_rate > self.src_rate else self._delay // 2
        return out[:want]


def resample_pcm16(pcm16: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample 16-bit little-endian PCM bytes (whole signal)."""
    return to_pcm16(resample(to_float(pcm16), src_rate, dst_rate))


# --------------------------------------------------------------- levels --


@dataclass(frozen=True, slots=True)
class AudioLevels:
    """Signal checks used to flag bad input (silence, clipping, DC offset)."""

    duration_s: float
    rms_dbfs: float
    peak: float  # 0..1
    clipped_ratio: float  # share of samples at full scale
    dc_offset: float  # mean, as a fraction of full scale

    @property
    def is_silent(self) -> bool:
        return self.rms_dbfs < -60.0

    @property
    def is_clipped(self) -> bool:
        return self.clipped_ratio > 0.01

    @property
    def has_dc_offset(self) -> bool:
        return abs(self.dc_offset) > 0.05


def levels(pcm16: bytes, sample_rate: int) -> AudioLevels:
    """Measure duration, RMS, peak, clipping and DC offset of 16-bit PCM."""
    x = to_float(pcm16[: len(pcm16) - len(pcm16) % 2])
    if x.size == 0:
        return AudioLevels(0.0, -120.0, 0.0, 0.0, 0.0)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return AudioLevels(
        duration_s=x.size / sample_rate,
        rms_dbfs=20 * np.log10(max(rms, 1e-6)),
        peak=float(np.max(np.abs(x))),
        clipped_ratio=float(np.mean(np.abs(x) >= 32767 / 32768)),
        dc_offset=float(np.mean(x)),
    )


class DcBlocker:
    """One-pole high-pass (a few Hz) that removes DC offset, exact across chunk boundaries.

    Some gateways deliver audio with a constant offset, which the VAD reads as
    energy. (Kaldi removes DC per frame itself.)
    """

    def __init__(self, pole: float = 0.995) -> None:
        self._pole = pole
        self._x1 = 0.0
        self._y1 = 0.0

    def process(self, x: FloatArray) -> FloatArray:
        """Filter one chunk: y[n] = x[n] - x[n-1] + pole * y[n-1]."""
        out = np.empty(x.size, dtype=np.float32)
        x1, y1, p = self._x1, self._y1, self._pole
        # A plain loop costs ~2 ms per second of 8 kHz audio: cheap next to the
        # VAD, and exact (a per-chunk mean would put steps at every packet edge).
        for i, v in enumerate(x.tolist()):
            y1 = v - x1 + p * y1
            x1 = v
            out[i] = y1
        self._x1, self._y1 = x1, y1
        return out


# ------------------------------------------------------------------ WAV --

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_ALAW = 6
_WAVE_FORMAT_ULAW = 7
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True, slots=True)
class Wav:
    """Decoded WAV: mono 16-bit little-endian PCM plus its sample rate."""

    pcm16: bytes
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm16) / 2 / self.sample_rate if self.sample_rate else 0.0


def _pcm24(payload: bytes) -> FloatArray:
    b = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    out: FloatArray = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float32) / float(1 << 23)
    return out


# Sample decoders by (format tag, bits per sample), each to float32 in [-1, 1).
_WAV_DECODERS: dict[tuple[int, int], Callable[[bytes], FloatArray]] = {
    (_WAVE_FORMAT_PCM, 16): lambda p: np.frombuffer(p, dtype="<i2").astype(np.float32) / 32768.0,
    (_WAVE_FORMAT_PCM, 8): lambda p: (
        (np.frombuffer(p, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    ),
    (_WAVE_FORMAT_PCM, 24): _pcm24,
    (_WAVE_FORMAT_PCM, 32): lambda p: (
        np.frombuffer(p, dtype="<i4").astype(np.float32) / float(1 << 31)
    ),
    (_WAVE_FORMAT_FLOAT, 32): lambda p: np.frombuffer(p, dtype="<f4").astype(np.float32),
    (_WAVE_FORMAT_ULAW, 8): lambda p: (
        _ULAW_TABLE[np.frombuffer(p, dtype=np.uint8)].astype(np.float32) / 32768.0
    ),
    (_WAVE_FORMAT_ALAW, 8): lambda p: (
        _ALAW_TABLE[np.frombuffer(p, dtype=np.uint8)].astype(np.float32) / 32768.0
    ),
}


def _wav_chunks(data: bytes) -> tuple[bytes, bytes]:
    """The ``fmt `` and ``data`` chunk bodies of a RIFF/WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file")
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            payload = body
            break
        pos += 8 + size + (size & 1)  # RIFF pads odd-sized chunks to an even length
    if fmt is None or payload is None or len(fmt) < 16:
        raise AudioError("WAV without fmt/data chunk")
    return fmt, payload


def parse_wav(data: bytes) -> Wav:
    """Decode a RIFF/WAVE file (PCM 8/16/24/32, float, mu-law, A-law) to mono slin.

    The stdlib ``wave`` module reads only integer PCM; telephone recordings are
    often G.711 WAVs, hence this small parser.
    """
    fmt, payload = _wav_chunks(data)
    tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]
    if channels < 1 or rate < 1000 or rate > 192000 or block < 1:
        raise AudioError(f"implausible WAV header: {channels} ch, {rate} Hz")
    decode = _WAV_DECODERS.get((tag, bits))
    if decode is None:
        raise AudioError(f"unsupported WAV encoding: format {tag}, {bits} bits")
    x = decode(payload[: len(payload) - len(payload) % block])
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return Wav(to_pcm16(x), rate)

def read_wav(path: Path | str, *, sample_rate: int | None = None) -> Wav:
    """Read a WAV file as mono slin, resampled to ``sample_rate`` when given."""
    wav = parse_wav(Path(path).read_bytes())
    if sample_rate is not None and sample_rate != wav.sample_rate:
        return Wav(resample_pcm16(wav.pcm16, wav.sample_rate, sample_rate), sample_rate)
    return wav


def wav_bytes(pcm16: bytes, sample_rate: int) -> bytes:
    """Wrap 16-bit mono little-endian PCM in a WAV container."""
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm16)
    return buf.getvalue()


def write_wav(path: Path | str, pcm16: bytes, sample_rate: int) -> None:
    """Write 16-bit mono PCM as a WAV file."""
    Path(path).write_bytes(wav_bytes(pcm16, sample_rate))


def trim_leading_silence(pcm16: bytes, sample_rate: int, *, keep_ms: float = 30.0,
                         floor_dbfs: float = -45.0) -> bytes:
    """Cut the quiet before the first sound down to ``keep_ms`` (16-bit mono PCM).

    Why: flite starts every utterance with 200-340 ms of silence (its pause phone), and
    that silence sat between the caller's last word and the first sound they heard of
    every answer; at the wire it was a third of the turn gap. The first 10 ms frame
    whose mean level reaches ``floor_dbfs`` is the onset; a little is kept before it
    so the attack of the first consonant is never clipped. Audio with no frame that
    loud is returned unchanged.
    """
    x = np.frombuffer(pcm16, dtype="<i2")
    frame = max(1, sample_rate // 100)
    n = x.size // frame
    if n == 0:
        return pcm16
    level = np.abs(x[: n * frame].astype(np.float32)).reshape(n, frame).mean(axis=1)
    loud = np.flatnonzero(level >= 32768.0 * 10.0 ** (floor_dbfs / 20.0))
    if loud.size == 0:
        return pcm16
    start = max(0, int(loud[0]) * frame - int(sample_rate * keep_ms / 1000.0))
    return pcm16[start * 2:]
