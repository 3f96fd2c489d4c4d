"""Real test callers and agents: SIPp run inside the Asterisk rig.

* :func:`synthesize_utterance` turns text into an 8 kHz mu-law WAV (flite for
  English, espeak-ng for English/Dutch, sox for the conversion).
* :func:`build_rtp_pcap` packs that audio plus RFC 4733 DTMF into one RTP
  stream in a pcap: SIPp's ``rtp_stream`` and ``play_pcap_audio`` send from
  different source ports and Asterisk's strict RTP keeps only the first
  source, so a single pcap is the only way to send speech and digits reliably.
* :func:`place_call` runs the caller scenario (``sipp/caller_uac.xml``) and
  returns a :class:`CallResult`; :class:`SippAgent` runs the agent UAS.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hashlib
import importlib.resources
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ivr.testing.rig import Rig

ULAW_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = ULAW_RATE * FRAME_MS // 1000  # 160 mu-law bytes per 20 ms
ULAW_SILENCE = 0xFF
DTMF_PT = 101
PCMU_PT = 0
_DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13,
                "C": 14, "D": 15}
_CALLER_ID = re.compile(r"^[A-Za-z0-9+*#._-]{1,32}$")
CALLS_DIR_IN_ROOT = "/tmp/kanaal-sipp"


class SipCallerError(ValueError):
    """A test call could not be set up (bad input, missing tool, no rig)."""


# ------------------------------------------------------------------ speech


def synthesize_utterance(
    text: str,
    lang: str = "en",
    voice: str | None = None,
    *,
    out_dir: Path | None = None,
) -> Path:
    """Speak ``text`` into an 8 kHz mono mu-law WAV and return its path.

    ``voice``: ``flite`` / ``flite:slt`` (English only), ``espeak`` /
    ``espeak:nl`` (any espeak-ng voice); default flite for ``en``, espeak-ng
    for other languages. Results are cached by content. Blocking (runs TTS
    subprocesses): call through ``asyncio.to_thread`` from a loop.
    """
    if not text.strip():
        raise SipCallerError("nothing to say: empty text")
    engine, _, name = (voice or ("flite" if lang == "en" else "espeak")).partition(":")
    if engine == "flite" and lang != "en":
        raise SipCallerError(f"flite speaks English only, not {lang!r}")
    out_dir = out_dir or Path(tempfile.gettempdir()) / "kanaal-tts"
    out_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{engine}|{name}|{lang}|{text}".encode()).hexdigest()[:16]
    out = out_dir / f"{engine}-{lang}-{key}.wav"
    if out.is_file():
        return out
    sox = _tool("sox")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "tts.wav"
        if engine == "flite":
            cmd = [_tool("flite"), "-voice", name or "slt", "-t", text, "-o", str(raw)]
        elif engine == "espeak":
            cmd = [_tool("espeak-ng"), "-v", name or lang, "-s", "150", "-w", str(raw), text]
        else:
            raise SipCallerError(f"unknown TTS engine {engine!r} (flite or espeak)")
        _run(cmd)
        staged = Path(tmp) / "ulaw.wav"
        # telephone band: 8 kHz mono mu-law, what a PSTN caller delivers
        _run([sox, str(raw), "-r", str(ULAW_RATE), "-c", "1", "-e", "mu-law", str(staged)])
        shutil.move(str(staged), out)  # atomic enough: same content for same key
    return out


def read_ulaw_wav(path: Path) -> bytes:
    """Return the mu-law samples of an 8 kHz mono mu-law WAV (or a raw ``.ul``/``.ulaw`` file)."""
    data = path.read_bytes()
    if path.suffix in (".ul", ".ulaw", ".raw"):
        return data
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SipCallerError(f"{path} is not a WAV file")
    pos, fmt_ok, samples = 12, False, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            fmt_ok = tag == 7 and channels == 1 and rate == ULAW_RATE
        elif cid == b"data":
            samples = body
        pos += 8 + size + (size & 1)
    if not fmt_ok or samples is None:
        raise SipCallerError(f"{path}: need 8 kHz mono mu-law (sox ... -r 8000 -c 1 -e mu-law)")
    return samples


# -------------------------------------------------------------------- RTP


@dataclass(frozen=True, slots=True)
class RtpPlan:
    """When things happen in the caller's RTP stream (seconds from the answer)."""

    audio_start_s: float
    audio_end_s: float
    dtmf_start_s: float | None
    end_s: float


class _RtpStream:
    """One PCMU/RFC 4733 RTP stream laid out on the pcap clock (``t``, seconds)."""

    _SILENCE = bytes([ULAW_SILENCE]) * FRAME_BYTES

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.packets: list[tuple[float, bytes]] = []
        self.seq = 0
        self.t = 0.0

    def send(self, pt: int, ts: int, payload: bytes, marker: bool = False) -> None:
        """One packet at the current time (the clock does not move)."""
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq & 0xFFFF, ts & 0xFFFFFFFF,
            self.ssrc,
        )
        self.packets.append((self.t, header + payload))
        self.seq += 1

    def audio_frame(self, frame: bytes, marker: bool = False) -> None:
        """One 20 ms PCMU frame; the clock moves one frame on."""
        self.send(PCMU_PT, int(self.t * ULAW_RATE), frame, marker)
        self.t += FRAME_MS / 1000

    def silence_until(self, target: float) -> None:
        # A phone sends frames continuously; SIPp replays a pcap from its first
        # packet, so a delay only exists if it is filled with silent frames.
        while self.t + FRAME_MS / 1000 <= target + 1e-9:
            self.audio_frame(self._SILENCE)

    def silent_frames(self, n: int) -> None:
        for _ in range(n):
            self.audio_frame(self._SILENCE)

    def speech(self, ulaw: bytes) -> None:
        frames = [ulaw[i:i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
        for i, frame in enumerate(frames):
            self.audio_frame(frame.ljust(FRAME_BYTES, bytes([ULAW_SILENCE])), marker=(i == 0))

    def digits(self, keys: str, digit_ms: int, gap_ms: int) -> None:
        step = FRAME_MS * ULAW_RATE // 1000
        for digit in keys.upper():
            event, start_ts = _DTMF_EVENTS[digit], int(self.t * ULAW_RATE)
            n = max(1, digit_ms // FRAME_MS)
            for k in range(n):
                self.send(DTMF_PT, start_ts, struct.pack("!BBH", event, 10, (k + 1) * step),
                          marker=(k == 0))
                self.t += FRAME_MS / 1000
            # RFC 4733 2.5.1.4: the end packet is sent three times
            for _ in range(3):
                self.send(DTMF_PT, start_ts, struct.pack("!BBH", event, 0x80 | 10, n * step))
            self.silence_until(self.t + gap_ms / 1000)


def build_rtp_pcap(
    ulaw: bytes,
    *,
    dtmf: str | None = None,
    audio_delay_s: float = 0.5,
    dtmf_delay_s: float | None = None,
    digit_ms: int = 160,
    gap_ms: int = 120,
    trailing_silence_s: float = 0.0,
    ssrc: int = 0x4B41_4E41,
) -> tuple[bytes, RtpPlan]:
    """Pcap (Ethernet/IPv4/UDP/RTP) of ``ulaw`` as PCMU, then ``dtmf`` as RFC 4733 events.

    ``dtmf_delay_s`` None puts the digits 0.5 s after the audio.
    ``trailing_silence_s`` keeps sending silent frames afterwards, as a real
    phone does (Asterisk's silence detection needs frames to count). SIPp rewrites
    addresses and ports when it replays the file and paces it by the pcap
    timestamps; RTP timestamps here follow the same clock.
    """
    if dtmf is not None:
        bad = [c for c in dtmf if c.upper() not in _DTMF_EVENTS]
        if bad:
            raise SipCallerError(f"not DTMF digits: {''.join(bad)!r}")
    stream = _RtpStream(ssrc)
    dtmf_first = bool(dtmf) and dtmf_delay_s is not None and dtmf_delay_s < audio_delay_s
    dtmf_start = None
    if dtmf_first and dtmf:
        stream.silence_until(dtmf_delay_s or 0.0)
        dtmf_start = stream.t
        stream.digits(dtmf, digit_ms, gap_ms)
    stream.silence_until(audio_delay_s)
    audio_start = stream.t
    stream.speech(ulaw)
    audio_end = stream.t
    if dtmf and not dtmf_first:
        stream.silence_until(max(dtmf_delay_s if dtmf_delay_s is not None else audio_end + 0.5,
                                 audio_end))
        dtmf_start = stream.t
        stream.digits(dtmf, digit_ms, gap_ms)
    stream.silent_frames(int(trailing_silence_s * 1000 / FRAME_MS))
    return _pcap(stream.packets), RtpPlan(audio_start, audio_end, dtmf_start, stream.t)

def _pcap(packets: list[tuple[float, bytes]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # LINKTYPE_ETHERNET
    src, dst = socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1")
    for at_s, rtp in packets:
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        sec, usec = int(at_s), round((at_s - int(at_s)) * 1e6)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return b"".join(out)


def _ip_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))  # unpack is typed Any
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# ------------------------------------------------------------------ calls


@dataclass(frozen=True, slots=True)
class CallResult:
    """Outcome of one SIPp test call."""

    exit_code: int  # SIPp's: 0 all calls succeeded, 1 a call failed, others fatal
    answered: bool
    hung_up_by: str | None  # "caller" | "remote" | None (never answered)
    setup_s: float | None  # INVITE sent -> 200 OK received
    duration_s: float  # whole SIPp run
    final_status: int | None  # last SIP status received for the INVITE
    plan: RtpPlan | None
    messages: str = field(repr=False)  # SIPp's message trace
    errors: str = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _scenario(name: str) -> str:
    return importlib.resources.files("ivr.testing.sipp").joinpath(name).read_text()


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    leftover = re.search(r"@[A-Z_]+@", template)
    if leftover:
        raise SipCallerError(f"scenario placeholder {leftover.group(0)} not filled")
    return template


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_port_pair() -> int:
    # SIPp wants an even media port; RTCP would be +1 (echo uses +2 for video)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1]) & ~1
        if 20000 <= port < 65000 and all(_udp_free(port + i) for i in range(4)):
            return port
    raise SipCallerError("no free UDP port pair for RTP")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _from_header(from_number: str | None) -> tuple[str, str]:
    if from_number is None or from_number.lower() in ("", "anonymous"):
        # RFC 3323 anonymous identity, what a CLIR call looks like
        return '"Anonymous" <sip:anonymous@anonymous.invalid>', "anonymous"
    if not _CALLER_ID.match(from_number):
        raise SipCallerError(f"caller number {from_number!r} has characters SIP cannot carry")
    return f'"{from_number}" <sip:{from_number}@[local_ip]:[local_port]>', from_number


async def place_call(
    rig: Rig,
    audio: Path | None,
    from_number: str | None,
    dialed: str = "100",
    dtmf: str | None = None,
    hangup_after_s: float = 10.0,
    *,
    audio_delay_s: float = 0.5,
    dtmf_delay_s: float | None = None,
    answer_timeout_s: float = 30.0,
    trailing_silence_s: float = 0.0,
) -> CallResult:
    """Call ``dialed`` on the rig from ``from_number`` (None = anonymous).

    Once answered, the caller plays ``audio`` (8 kHz mu-law WAV) after
    ``audio_delay_s``, then ``dtmf``, and hangs up ``hangup_after_s`` after the
    answer unless the far end hangs up first. ``trailing_silence_s`` keeps
    the RTP stream going with silence after the speech/digits. Runs SIPp chrooted in the rig as
    an asyncio subprocess, so the loop keeps serving the app meanwhile.
    """
    if not re.fullmatch(r"[A-Za-z0-9+*#_-]{1,32}", dialed):
        raise SipCallerError(f"cannot dial {dialed!r}")
    from_hdr, contact_user = _from_header(from_number)
    ulaw = read_ulaw_wav(audio) if audio is not None else b""
    call_id = uuid.uuid4().hex[:12]
    work_in_root = f"{CALLS_DIR_IN_ROOT}/{call_id}"
    work = rig.host_path(work_in_root)
    work.mkdir(parents=True)
    plan = None
    media = ""
    if ulaw or dtmf or trailing_silence_s > 0:
        pcap, plan = build_rtp_pcap(
            ulaw, dtmf=dtmf, audio_delay_s=audio_delay_s, dtmf_delay_s=dtmf_delay_s,
            trailing_silence_s=trailing_silence_s,
        )
        (work / "caller.pcap").write_bytes(pcap)
        media = (
            '  <nop><action><exec play_pcap_audio="'
            f'{work_in_root}/caller.pcap"/></action></nop>'
        )
    scenario = _fill(
        _scenario("caller_uac.xml"),
        {
            "FROM": from_hdr,
            "CONTACT_USER": contact_user,
            "ANSWER_TIMEOUT_MS": str(int(answer_timeout_s * 1000)),
            "HANGUP_MS": str(max(1, int(hangup_after_s * 1000))),
            "MEDIA": media,
        },
    )
    (work / "caller.xml").write_text(scenario)
    cmd = _caller_command(rig, work_in_root, dialed,
                          timeout_s=int(answer_timeout_s + hangup_after_s + 30))
    t0 = time.monotonic()
    code, stderr = await _run_sipp(cmd)
    duration = time.monotonic() - t0
    messages = _read(work / "messages.log")
    errors = _read(work / "errors.log") + stderr
    return _result(code, duration, messages, errors, plan)


def _caller_command(rig: Rig, work_in_root: str, dialed: str, *, timeout_s: int) -> list[str]:
    """SIPp command line of one caller run, chrooted into the rig."""
    return [
        "chroot", str(rig.root), "sipp", f"127.0.0.1:{rig.ports.sip}",
        "-sf", f"{work_in_root}/caller.xml",
        "-s", dialed,
        # SIPp's default local port is 5060, not a free one: concurrent callers clash
        "-i", "127.0.0.1", "-p", str(_free_udp_port()),
        "-mi", "127.0.0.1", "-mp", str(_free_udp_port_pair()),
        "-m", "1", "-l", "1",
        "-nostdin", "-nd",
        "-trace_msg", "-message_file", f"{work_in_root}/messages.log",
        "-trace_err", "-error_file", f"{work_in_root}/errors.log",
        # a hard stop for SIPp itself, well past the scenario's own timers
        "-timeout", f"{timeout_s}s", "-timeout_error",
    ]


async def _run_sipp(cmd: list[str]) -> tuple[int, str]:
    """Run SIPp to the end (killed if the caller is cancelled): exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, stderr = await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, stderr.decode(errors="replace")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# SIPp 3.8 heads each traced message with "----- 2026-11-26T04:34:01.982790Z"
_TRACE_HEAD = re.compile(
    r"^-{10,} (\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?Z?\s*$", re.MULTILINE
)


def parse_trace(messages: str) -> list[tuple[float, str, str]]:
    """Split SIPp's ``-trace_msg`` log into (unix time, 'sent'|'received', message)."""
    out: list[tuple[float, str, str]] = []
    heads = list(_TRACE_HEAD.finditer(messages))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(messages)
        block = messages[m.end():end].strip("\n")
        first, _, body = block.partition("\n")
        direction = "sent" if "message sent" in first else "received"
        ts = calendar.timegm(time.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S"))
        out.append((ts + float(m.group(3) or 0), direction, body.strip()))
    return out


def _result(
    code: int, duration: float, messages: str, errors: str, plan: RtpPlan | None
) -> CallResult:
    trace = parse_trace(messages)
    invite_at = next((t for t, d, m in trace if d == "sent" and m.startswith("INVITE")), None)
    final_status, answered_at = None, None
    for t, d, m in trace:
        if d == "received" and m.startswith("SIP/2.0") and "INVITE" in _header(m, "CSeq"):
            status = int(m.split()[1])
            if status >= 200 and final_status is None:
                final_status = status
                if status == 200:
                    answered_at = t
    got_bye = any(d == "received" and m.startswith("BYE") for _, d, m in trace)
    sent_bye = any(d == "sent" and m.startswith("BYE") for _, d, m in trace)
    answered = answered_at is not None
    return CallResult(
        exit_code=code,
        answered=answered,
        hung_up_by="remote" if got_bye else ("caller" if sent_bye else None),
        setup_s=(answered_at - invite_at) if answered_at and invite_at else None,
        duration_s=duration,
        final_status=final_status,
        plan=plan,
        messages=messages,
        errors=errors,
    )


def _header(message: str, name: str) -> str:
    for line in message.splitlines()[1:]:
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


def sip_headers(message: str) -> dict[str, str]:
    """Headers of one SIP message (first occurrence of each, names lower-cased)."""
    headers: dict[str, str] = {}
    for line in message.splitlines()[1:]:
        if not line.strip():
            break
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), value.strip())
    return headers


# ----------------------------------------------------------------- agents


class SippAgent:
    """A SIPp UAS standing in for agent ``n``'s phone at its static contact.

    Async context manager: starts SIPp on ``rig.ports.agent(n)``, answers
    every call after ``ring_s``, echoes audio, and keeps running until the
    block exits. :meth:`invites` returns the INVITEs it received.
    """

    def __init__(self, rig: Rig, n: int, *, ring_s: float = 0.2,
                 talk_timeout_s: float = 600.0, hang_up_after_s: float | None = None) -> None:
        """``hang_up_after_s``: the agent hangs up this long after answering (instead of
        waiting for the caller's side to end the call)."""
        self.rig, self.n = rig, n
        self.ring_s, self.talk_timeout_s = ring_s, talk_timeout_s
        self.hang_up_after_s = hang_up_after_s
        self._work_in_root = f"{CALLS_DIR_IN_ROOT}/agent{n}-{uuid.uuid4().hex[:8]}"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def port(self) -> int:
        return self.rig.ports.agent(self.n)

    async def start(self) -> None:
        """Start the UAS and wait until its SIP port is bound."""
        work = self.rig.host_path(self._work_in_root)
        work.mkdir(parents=True)
        (work / "agent.xml").write_text(_fill(_scenario("agent_uas.xml"), {
            "RING_MS": str(int(self.ring_s * 1000)),
            "TALK_TIMEOUT_MS": str(int((self.hang_up_after_s or self.talk_timeout_s) * 1000)),
            "ONTIMEOUT": 'ontimeout="agent_bye"' if self.hang_up_after_s else "",
        }))
        if not _udp_free(self.port):
            raise SipCallerError(f"agent{self.n} port {self.port} is already in use")
        self._proc = await asyncio.create_subprocess_exec(
            "chroot", str(self.rig.root), "sipp",
            "-sf", f"{self._work_in_root}/agent.xml",
            "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(_free_udp_port_pair()), "-rtp_echo",
            "-nostdin", "-nd",
            "-trace_msg", "-message_file", f"{self._work_in_root}/messages.log",
            "-trace_err", "-error_file", f"{self._work_in_root}/errors.log",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while _udp_free(self.port):
            if self._proc.returncode is not None or time.monotonic() > deadline:
                raise SipCallerError(
                    f"agent{self.n} SIPp did not start: {_read(work / 'errors.log')[-500:]}"
                )
            await asyncio.sleep(0.05)

    def invites(self) -> list[dict[str, str]]:
        """Headers of every INVITE received so far (initial INVITEs only)."""
        trace = parse_trace(_read(self.rig.host_path(self._work_in_root) / "messages.log"))
        return [
            {"request-uri": m.splitlines()[0].split()[1], **sip_headers(m)}
            for _, d, m in trace
            if d == "received" and m.startswith("INVITE") and ";tag=" not in _header(m, "To")
        ]

    async def wait_for_invite(self, timeout_s: float = 30.0) -> dict[str, str]:
        """The first INVITE, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.invites()
            if found:
                return found[0]
            await asyncio.sleep(0.1)
        raise TimeoutError(f"agent{self.n} received no INVITE within {timeout_s}s")

    async def stop(self) -> None:
        """Stop SIPp (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def __aenter__(self) -> SippAgent:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def answered(agents: Iterable[SippAgent], number: str, delay_s: float = 0.0
             ) -> Callable[[], bool]:
    """True ``delay_s`` after an agent's phone got the caller's INVITE (SIPp agents
    answer at once): a test caller's ``leave_when`` once they have reached a person.
    Not AMI's AgentConnect: a caller sent straight to a preferred agent (region,
    repeat caller) is Dial()ed, never queued."""
    first: list[float] = []

    def done() -> bool:
        if not first and any(number in i.get("from", "") for a in agents for i in a.invites()):
            first.append(time.monotonic())
        return bool(first) and time.monotonic() - first[0] >= delay_s
    return done


# ----------------------------------------------------------------- helpers


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SipCallerError(f"{name} is not installed (apt-get install {name})")
    return path


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise SipCallerError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
