"""Audio helpers against sox (the reference implementation of G.711 and WAV)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from ivr.speech import audio as A


def sox(*args: str) -> bytes:
    return subprocess.run(["sox", *args], check=True, capture_output=True).stdout


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.wav"
    sox(
        "-n",
        "-r",
        "8000",
        "-b",
        "16",
        "-e",
        "signed",
        str(path),
        "synth",
        "1",
        "sine",
        "100-3800",
        "vol",
        "0.8",
    )
    return path


@pytest.mark.parametrize("enc,decode", [("mu-law", A.ulaw_decode), ("a-law", A.alaw_decode)])
def test_g711_decode_matches_sox_for_every_code(tmp_path: Path, enc: str, decode: object) -> None:
    """All 256 G.711 codes decode to exactly the values sox produces."""
    codes = tmp_path / "codes.raw"
    codes.write_bytes(bytes(range(256)))
    ref = sox(
        "-t",
        "raw",
        "-r",
        "8000",
        "-e",
        enc,
        "-b",
        "8",
        "-c",
        "1",
        str(codes),
        "-t",
        "raw",
        "-e",
        "signed",
        "-b",
        "16",
        "-",
    )
    assert decode(bytes(range(256))) == ref  # type: ignore[operator]


@pytest.mark.parametrize(
    "enc,encode,decode",
    [("mu-law", A.ulaw_encode, A.ulaw_decode), ("a-law", A.alaw_encode, A.alaw_decode)],
)
def test_g711_encode_agrees_with_sox(sweep: Path, enc: str, encode: object, decode: object) -> None:
    """Encoding matches sox (undithered) to within one code step, and round-trips closely."""
    pcm = A.read_wav(sweep).pcm16
    ref = np.frombuffer(sox("-D", str(sweep), "-t", "raw", "-e", enc, "-"), np.uint8)
    mine = np.frombuffer(encode(pcm), np.uint8)  # type: ignore[operator]
    ref_pcm = np.frombuffer(decode(ref.tobytes()), "<i2").astype(int)  # type: ignore[operator]
    mine_pcm = np.frombuffer(decode(mine.tobytes()), "<i2").astype(int)  # type: ignore[operator]
    assert np.mean(ref == mine) > 0.97
    x = np.frombuffer(pcm, "<i2").astype(int)
    # G.711 keeps ~38 dB SNR; allow the rounding difference to sox.
    snr = 10 * np.log10(np.sum(x**2) / np.sum((x - mine_pcm) ** 2))
    assert snr > 30
    assert np.max(np.abs(ref_pcm - mine_pcm)) <= np.max(np.abs(x)) * 0.07


def test_byteswap_turns_rtp_l16_into_little_endian() -> None:
    """Big-endian RTP samples come out as the same little-endian values; odd bytes are dropped."""
    values = np.array([1, -2, 300, -32768], dtype=">i2")
    assert np.array_equal(np.frombuffer(A.byteswap16(values.tobytes()), "<i2"), values)
    assert A.byteswap16(values.tobytes() + b"\x01") == A.byteswap16(values.tobytes())


def test_resample_preserves_a_tone_both_ways() -> None:
    """A 440 Hz tone survives 8k -> 16k -> 8k with tiny error and exact lengths."""
    t8 = np.arange(8000) / 8000
    x = (0.5 * np.sin(2 * np.pi * 440 * t8)).astype(np.float32)
    up = A.resample(x, 8000, 16000)
    assert up.size == 16000
    ref16 = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.max(np.abs(up[200:-200] - ref16[200:-200])) < 1e-3
    down = A.resample(up, 16000, 8000)
    assert down.size == 8000
    assert np.max(np.abs(down[200:-200] - x[200:-200])) < 1e-3


def test_downsampling_removes_aliasing() -> None:
    """A 6 kHz tone at 16 kHz is filtered out, not folded to 2 kHz, when going to 8 kHz."""
    x = (0.5 * np.sin(2 * np.pi * 6000 * np.arange(16000) / 16000)).astype(np.float32)
    down = A.resample(x, 16000, 8000)
    assert np.sqrt(np.mean(down[200:-200] ** 2)) < 0.01


def test_stream_resampler_equals_whole_signal_resampling() -> None:
    """Chunked 20 ms packets give the same output as resampling the whole signal."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 8000).astype(np.float32)
    r = A.StreamResampler(8000, 16000)
    chunked = np.concatenate([r.process(x[i : i + 160]) for i in range(0, 8000, 160)] + [r.flush()])
    assert np.allclose(chunked, A.resample(x, 8000, 16000), atol=1e-6)
    with pytest.raises(A.AudioError):
        A.StreamResampler(8000, 11025)


def test_levels_flag_silence_clipping_and_dc() -> None:
    """Level checks tell silent, clipped and DC-offset audio apart from normal speech levels."""
    t = np.arange(8000) / 8000
    tone = 0.3 * np.sin(2 * np.pi * 300 * t)
    ok = A.levels(A.to_pcm16(tone), 8000)
    assert not (ok.is_silent or ok.is_clipped or ok.has_dc_offset)
    assert abs(ok.duration_s - 1.0) < 1e-9
    assert A.levels(bytes(16000), 8000).is_silent
    assert A.levels(A.to_pcm16(np.clip(5 * tone, -1, 1)), 8000).is_clipped
    assert A.levels(A.to_pcm16(tone + 0.2), 8000).has_dc_offset
    assert A.levels(b"", 8000).duration_s == 0.0


def test_dc_blocker_removes_offset() -> None:
    """A constant offset disappears after a few chunks while the signal stays."""
    t = np.arange(8000) / 8000
    x = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.25).astype(np.float32)
    dc = A.DcBlocker()
    out = np.concatenate([dc.process(x[i : i + 160]) for i in range(0, 8000, 160)])
    assert abs(float(np.mean(out[4000:]))) < 0.01
    assert float(np.std(out[4000:])) > 0.2


def test_parse_wav_reads_ulaw_alaw_8bit_and_stereo(sweep: Path, tmp_path: Path) -> None:
    """G.711, 8-bit and stereo WAVs written by sox decode to mono slin at their own rate."""
    base = np.frombuffer(A.read_wav(sweep).pcm16, "<i2").astype(int)
    for args in (
        ["-e", "mu-law"],
        ["-e", "a-law"],
        ["-b", "8", "-e", "unsigned"],
        ["-c", "2"],
        ["-r", "16000"],
    ):
        out = tmp_path / f"v{len(args)}{args[-1]}.wav"
        sox(str(sweep), *args, str(out))
        wav = A.read_wav(out, sample_rate=8000)
        assert wav.sample_rate == 8000
        got = np.frombuffer(wav.pcm16, "<i2").astype(int)
        assert abs(got.size - base.size) <= 2
        n = min(got.size, base.size)
        assert np.corrcoef(got[100 : n - 100], base[100 : n - 100])[0, 1] > 0.95


def test_parse_wav_rejects_garbage() -> None:
    """Non-WAV bytes and unsupported encodings raise AudioError, not something obscure."""
    with pytest.raises(A.AudioError):
        A.parse_wav(b"hello world, not audio")
    with pytest.raises(A.AudioError):
        A.parse_wav(b"RIFF\x00\x00\x00\x00WAVE")


def test_write_then_read_roundtrip(tmp_path: Path) -> None:
    """write_wav output is a valid WAV sox agrees with."""
    pcm = A.to_pcm16(0.1 * np.sin(np.arange(800) / 3))
    path = tmp_path / "x.wav"
    A.write_wav(path, pcm, 8000)
    assert A.read_wav(path).pcm16 == pcm
    assert b"8000" in subprocess.run(["soxi", "-r", str(path)], capture_output=True).stdout
