"""Test-caller helpers: real TTS (flite, espeak-ng, sox) and the RTP pcap SIPp replays."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ivr.testing.sipcaller import (
    SipCallerError,
    build_rtp_pcap,
    parse_trace,
    read_ulaw_wav,
    synthesize_utterance,
)


def read_pcap(data: bytes) -> list[tuple[float, bytes]]:
    """(timestamp, RTP packet) pairs from a classic little-endian Ethernet pcap."""
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and linktype == 1
    pos, out = 24, []
    while pos < len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        assert frame[12:14] == b"\x08\x00"  # IPv4
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl:]
        assert struct.unpack("!H", udp[4:6])[0] == len(udp)
        out.append((sec + usec / 1e6, udp[8:]))
        pos += 16 + incl
    return out


@pytest.mark.parametrize(("lang", "voice"), [("en", None), ("en", "espeak"), ("nl", None)])
def test_synthesize_utterance_gives_8k_ulaw(tmp_path: Path, lang: str, voice: str | None) -> None:
    """flite/espeak-ng speech comes out as 8 kHz mono mu-law WAV with real content."""
    path = synthesize_utterance("waar is mijn pakket" if lang == "nl" else "where is my order",
                                lang, voice, out_dir=tmp_path)
    ulaw = read_ulaw_wav(path)
    assert 0.5 < len(ulaw) / 8000 < 5
    assert len(set(ulaw)) > 50  # not silence
    again = synthesize_utterance("waar is mijn pakket" if lang == "nl" else "where is my order",
                                 lang, voice, out_dir=tmp_path)
    assert again == path  # cached by content


def test_synthesize_rejects_bad_requests(tmp_path: Path) -> None:
    """Empty text, flite for Dutch and unknown engines are clear errors."""
    with pytest.raises(SipCallerError):
        synthesize_utterance("  ", "en", out_dir=tmp_path)
    with pytest.raises(SipCallerError, match="English only"):
        synthesize_utterance("hallo", "nl", "flite", out_dir=tmp_path)
    with pytest.raises(SipCallerError, match="unknown TTS"):
        synthesize_utterance("hello", "en", "festival", out_dir=tmp_path)


def test_pcap_carries_speech_then_rfc4733_digits() -> None:
    """One continuous RTP stream: silence until the speech, PCMU every 20 ms, then DTMF
    events with 3 end packets each (SIPp replays from the first packet, so delays must be
    filled with silent frames to exist at all)."""
    ulaw = bytes(range(256)) * 5  # 1280 bytes = 8 frames
    pcap, plan = build_rtp_pcap(ulaw, dtmf="1#", audio_delay_s=0.5, trailing_silence_s=0.1)
    packets = read_pcap(pcap)
    headers = [struct.unpack("!BBHII", p[:12]) for _, p in packets]
    seqs = [h[2] for h in headers]
    assert seqs == list(range(len(packets)))  # continuous sequence
    assert len({h[4] for h in headers}) == 1  # one SSRC
    audio = [(t, p) for (t, p), h in zip(packets, headers, strict=True) if h[1] & 0x7F == 0]
    dtmf = [(t, p) for (t, p), h in zip(packets, headers, strict=True) if h[1] & 0x7F == 101]
    silent = bytes([0xFF]) * 160
    speech = [(t, p) for t, p in audio if p[12:] != silent]
    assert audio[0][0] == pytest.approx(0.0)  # the stream starts at the answer
    assert all(p[12:] == silent for t, p in audio if t < 0.5 - 1e-6)
    assert len([1 for t, _ in audio if t < 0.5 - 1e-6]) == 25  # 0.5 s of silent frames
    assert len(speech) == 8
    assert speech[0][0] == pytest.approx(0.5) and plan.audio_start_s == pytest.approx(0.5)
    assert speech[1][0] - speech[0][0] == pytest.approx(0.02)
    assert b"".join(p[12:] for _, p in speech) == ulaw
    assert len([1 for t, _ in audio if t >= plan.audio_end_s - 1e-6]) >= 5  # silence after
    events = [struct.unpack("!BBH", p[12:16]) for _, p in dtmf]
    assert {e[0] for e in events} == {1, 11}
    ends = [e for e in events if e[1] & 0x80]
    assert len(ends) == 6  # three end packets per digit
    assert plan.dtmf_start_s is not None and plan.dtmf_start_s >= plan.audio_end_s
    assert plan.end_s == pytest.approx(packets[-1][0] + 0.02, abs=0.03)


def test_pcap_rejects_non_dtmf() -> None:
    """Letters other than A-D are not DTMF."""
    with pytest.raises(SipCallerError):
        build_rtp_pcap(b"", dtmf="12x")


def test_trace_parsing() -> None:
    """SIPp's -trace_msg blocks split into timestamped sent/received messages."""
    trace = (
        "----------------------------------------------- 2026-11-26T04:34:01.982790Z\n"
        "UDP message sent [10] bytes:\n\nINVITE sip:100@127.0.0.1 SIP/2.0\nCSeq: 1 INVITE\n\n"
        "----------------------------------------------- 2026-11-26T04:34:02.482790Z\n"
        "UDP message received [10] bytes:\n\nSIP/2.0 200 OK\nCSeq: 1 INVITE\n\n"
    )
    (t1, d1, m1), (t2, d2, m2) = parse_trace(trace)
    assert (d1, d2) == ("sent", "received")
    assert m1.startswith("INVITE") and m2.startswith("SIP/2.0 200")
    assert t2 - t1 == pytest.approx(0.5)


def test_pcap_can_key_digits_before_speaking() -> None:
    """dtmf_delay_s before audio_delay_s: the caller keys (a customer number) first."""
    ulaw = bytes(range(256)) * 5
    pcap, plan = build_rtp_pcap(ulaw, dtmf="12#", dtmf_delay_s=0.2, audio_delay_s=2.0)
    packets = read_pcap(pcap)
    kinds = [struct.unpack("!BBHII", p[:12])[1] & 0x7F for _, p in packets]
    first_dtmf = kinds.index(101)
    last_dtmf = len(kinds) - 1 - kinds[::-1].index(101)
    assert plan.dtmf_start_s == pytest.approx(0.2)
    assert packets[last_dtmf][0] < plan.audio_start_s == pytest.approx(2.0)
    assert packets[first_dtmf][0] == pytest.approx(0.2)
