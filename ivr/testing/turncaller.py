"""A test caller that waits its turn: a small SIP UA with live RTP, in Python.

SIPp replays a pcap laid out in advance, so a script only works if its author
knows how long every prompt before it lasts. :class:`TurnCaller` listens
instead: it decodes the IVR's audio as it arrives, and speaks (or keys) each
turn once the IVR has stopped talking, the way a polite person does; or barges
in on purpose a set time after a prompt starts. It also measures the turn gap
at the wire: from the last frame of the caller's speech to the first audible
frame of the IVR's reply.

The UA does just what the rig needs: INVITE without authentication (the rig's
callers are anonymous), ACK, BYE both ways, PCMU and RFC 4733 digits from one
RTP source port (Asterisk's strict RTP keeps only the first source). It sends a
frame every 20 ms for the whole call, as a phone does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import struct
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ivr.testing.sipcaller import FRAME_BYTES, ULAW_SILENCE, SipCallerError

FRAME_S = 0.02
PCMU_PT, DTMF_PT = 0, 101
_DTMF = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
# Mean absolute level (16-bit linear) above which a received frame counts as the
# IVR talking. Asterisk's idle frames decode to 0..8; TTS speech is in the thousands.
LOUD_LEVEL = 300.0


def _ulaw_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


_ULAW = _ulaw_table()


@dataclass(frozen=True, slots=True)
class Turn:
    """One caller turn: speech (8 kHz mu-law bytes), keys, or deliberate silence.

    ``barge_in_after_s``: speak this long after the IVR's prompt *starts*
    instead of waiting for it to end.
    """

    speech: bytes = b""
    dtmf: str = ""
    barge_in_after_s: float | None = None
    label: str = ""

    @property
    def silent(self) -> bool:
        return not self.speech and not self.dtmf


@dataclass(slots=True)
class TurnTiming:
    """When one turn happened (seconds since the answer) and the gap the caller heard."""

    label: str
    prompt_start_s: float | None
    prompt_end_s: float | None
    sent_at_s: float | None
    sent_end_s: float | None
    reply_start_s: float | None = None
    # Barge-in turns: the first loud frame of the caller's speech, and the last audible
    # frame of the IVR's prompt while the caller spoke (when the prompt stopped).
    speech_onset_s: float | None = None
    prompt_heard_until_s: float | None = None
    # Quiet at the end of the turn's speech after its last loud frame (synthesised
    # speech ends with ~0.25 s of its own silence): the caller's last word came that
    # long before its last frame.
    speech_tail_s: float = 0.0

    @property
    def barge_in_stop_ms(self) -> float | None:
        """At the wire: the caller's speech onset -> the prompt's last audible frame."""
        if self.speech_onset_s is None or self.prompt_heard_until_s is None:
            return None
        return (self.prompt_heard_until_s - self.speech_onset_s) * 1000

    @property
    def gap_ms(self) -> float | None:
        """Caller's last frame -> first audible frame of the IVR's reply."""
        if self.sent_end_s is None or self.reply_start_s is None:
            return None
        return (self.reply_start_s - self.sent_end_s) * 1000

    @property
    def last_word_gap_ms(self) -> float | None:
        """Caller's last loud frame (the end of its last word) -> first audible frame of
        the IVR's reply: ``gap_ms`` plus the speech's own trailing quiet."""
        gap = self.gap_ms
        return None if gap is None else gap + self.speech_tail_s * 1000


@dataclass(slots=True)
class TurnCallResult:
    answered: bool
    final_status: int | None
    hung_up_by: str | None  # "caller" | "remote" | None
    duration_s: float
    turns: list[TurnTiming] = field(default_factory=list)
    error: str | None = None
    started_at: float = 0.0  # time.monotonic() at the INVITE; turn times count from it

    @property
    def ok(self) -> bool:
        return self.answered and self.error is None


class _Sip(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.inbox.put_nowait(data.decode(errors="replace"))


class _Rtp(asyncio.DatagramProtocol):
    """Receives the IVR's audio and keeps when it was last loud."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.loud: list[float] = []  # arrival times (s since t0) of loud frames
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if len(data) < 12 or data[1] & 0x7F != PCMU_PT:
            return
        head = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= head + 4:  # header extension
            head += 4 + 4 * struct.unpack("!H", data[head + 2:head + 4])[0]
        payload = np.frombuffer(data[head:], dtype=np.uint8)
        if payload.size and float(np.abs(_ULAW[payload]).mean()) > LOUD_LEVEL:
            self.loud.append(time.monotonic() - self.t0)
            self.changed.set()

    def loud_after(self, t: float) -> float | None:
        return next((x for x in self.loud if x > t), None)

    def loud_before(self, t: float) -> float | None:
        return next((x for x in reversed(self.loud) if x < t), None)


class TurnCaller:
    """One call to the rig's SIP port; :meth:`run` plays a script of turns."""

    def __init__(self, sip_port: int, *, from_number: str | None, dialed: str = "100",
                 quiet_s: float = 0.7, host: str = "127.0.0.1",
                 ready: Callable[[], bool] | None = None,
                 asking: Callable[[], bool] | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z0-9+*#_.-]{1,64}", dialed):
            raise SipCallerError(f"cannot dial {dialed!r}")
        if from_number is not None and not re.fullmatch(r"[A-Za-z0-9+*#._-]{1,32}",
                                                        from_number):
            raise SipCallerError(f"caller number {from_number!r} has characters SIP cannot carry")
        self.host, self.sip_port, self.dialed = host, sip_port, dialed
        self.user = from_number or "anonymous"
        self.from_hdr = (f'"{from_number}" <sip:{from_number}@{host}>' if from_number
                         else '"Anonymous" <sip:anonymous@anonymous.invalid>')
        # How long the IVR must stay quiet before its turn counts as over: longer
        # than the gap between two prompts of one turn, short enough to answer promptly.
        self.quiet_s = quiet_s
        # Optional word from the far end that it takes input now (a node in this
        # process): silence on the line alone cannot tell the end of the question from
        # a pause before it (a busy node may take seconds between two prompts).
        self._ready = ready
        # Optional word that the IVR is playing the prompt of an input turn right now:
        # a barge-in turn talks over *that* prompt. Without it, the first prompt heard
        # (the greeting, played without listening) was talked over: no barge-in at all.
        self._asking = asking
        self.call_id = uuid.uuid4().hex
        self.tag = uuid.uuid4().hex[:10]
        self._to = ""
        self._cseq = 1
        self._remote: tuple[str, int] | None = None
        self._out: list[tuple[int, bytes, bool]] = []  # queued (pt, payload, marker)
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 31)
        self._ssrc = random.randrange(1 << 32)
        self._hung_up = asyncio.Event()
        self.t0 = 0.0

    # ------------------------------------------------------------- public
    async def run(self, turns: Sequence[Turn], *, answer_timeout_s: float = 15.0,
                  reply_wait_s: float = 45.0, tail_s: float = 4.0,
                  stay_s: float | None = None, max_call_s: float = 120.0,
                  leave: Callable[[], bool] | None = None) -> TurnCallResult:
        """Call, take ``turns`` in order, hear the IVR's last reply, hang up.

        ``stay_s``: instead of hanging up after the reply, stay on the line until
        this long after the start (a caller waiting in a queue or talking to an agent).
        ``leave``: while staying, hang up as soon as it returns True (a test that
        knows the caller has done their part, e.g. reached an agent, frees the line
        instead of holding it for the worst case).
        """
        loop = asyncio.get_running_loop()
        self.t0 = time.monotonic()
        sip_t, self._sip = await loop.create_datagram_endpoint(_Sip, local_addr=(self.host, 0))
        rtp_t, self._rtp = await loop.create_datagram_endpoint(
            lambda: _Rtp(self.t0), local_addr=(self.host, 0))
        self._sip_t, self._rtp_t = sip_t, rtp_t
        self._sip_local = sip_t.get_extra_info("sockname")[1]
        self._rtp_local = rtp_t.get_extra_info("sockname")[1]
        result = TurnCallResult(False, None, None, 0.0, started_at=self.t0)
        sender: asyncio.Task[None] | None = None
        sip_reader: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(max_call_s):
                status = await self._invite(answer_timeout_s)
                result.final_status = status
                if status != 200:
                    result.error = f"call not answered (SIP {status})"
                    return result
                result.answered = True
                sender = asyncio.create_task(self._send_frames())
                sip_reader = asyncio.create_task(self._serve_sip())
                await self._script(turns, result, reply_wait_s, tail_s)
                if stay_s is not None:
                    await self._stay(stay_s, leave)
        except TimeoutError:
            result.error = result.error or "call took too long"
        finally:
            if sender is not None:
                sender.cancel()
            if result.answered and not self._hung_up.is_set():
                if sip_reader is not None:
                    sip_reader.cancel()
                await self._bye()
                result.hung_up_by = "caller"
            elif self._hung_up.is_set():
                result.hung_up_by = "remote"
            if sip_reader is not None:
                sip_reader.cancel()
            for task in (sender, sip_reader):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            sip_t.close()
            rtp_t.close()
            result.duration_s = time.monotonic() - self.t0
        return result

    async def _stay(self, stay_s: float, leave: Callable[[], bool] | None) -> None:
        """On the line until ``stay_s`` after the start, the far end hangs up, or
        ``leave()`` says the caller is done."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, stay_s - self._now())):
                while not (leave is not None and leave()):
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await self._hung_up.wait()
                    if self._hung_up.is_set():
                        return

    # ------------------------------------------------------------ dialogue
    async def _script(self, turns: Sequence[Turn], result: TurnCallResult,
                      reply_wait_s: float, tail_s: float) -> None:
        mark = 0.0  # the IVR's next prompt must start after this
        for turn in turns:
            start = await self._wait_loud_after(mark, reply_wait_s)
            if start is None:
                result.error = f"the IVR said nothing before turn {turn.label!r}"
                return
            if result.turns and result.turns[-1].reply_start_s is None:
                result.turns[-1].reply_start_s = start
            if turn.barge_in_after_s is not None:
                end = None
                start = await self._asked_from(start, reply_wait_s)
                if start is None:
                    result.error = f"the IVR never asked for turn {turn.label!r}"
                    return
                await self._sleep_until(start + turn.barge_in_after_s)
            else:
                end = await self._wait_turn()
                if end is None:
                    return
            timing = TurnTiming(turn.label, start, end, None, None)
            result.turns.append(timing)
            if turn.silent:
                mark = self._now()
                continue
            timing.sent_at_s = self._now()
            timing.speech_tail_s = _tail_s(turn.speech)
            timing.sent_end_s = await self._send_turn(turn)
            if turn.barge_in_after_s is not None:
                timing.speech_onset_s = timing.sent_at_s + _onset_s(turn.speech)
                timing.prompt_heard_until_s = self._rtp.loud_before(timing.sent_end_s)
            mark = timing.sent_end_s
        # Hear the reply to the last turn (its first frame is the turn gap), then
        # the rest of the IVR's turn, so the flow records what it did.
        start = await self._wait_loud_after(mark, reply_wait_s)
        if result.turns and result.turns[-1].reply_start_s is None:
            result.turns[-1].reply_start_s = start
        if start is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tail_s):
                    await self._wait_quiet(self.quiet_s)

    def _now(self) -> float:
        return time.monotonic() - self.t0

    async def _asked_from(self, start: float, timeout_s: float) -> float | None:
        """Start of the prompt of the IVR's input turn (``start`` if it cannot say)."""
        if self._asking is None:
            return start
        try:
            async with asyncio.timeout(timeout_s):
                while not self._asking():
                    if self._hung_up.is_set():
                        return None
                    await asyncio.sleep(FRAME_S)
        except TimeoutError:
            return None
        # The prompt's first audible frame (it may arrive a little after the node says
        # it is asking): barge-in times count from what the caller hears.
        asked_at = self._now()
        await self._wait_loud_after(asked_at - 0.2, 2.0)
        heard = self._rtp.loud_after(asked_at - 0.2)
        return heard if heard is not None else asked_at

    async def _sleep_until(self, t: float) -> None:
        await asyncio.sleep(max(0.0, t - self._now()))

    async def _wait_loud_after(self, t: float, timeout_s: float) -> float | None:
        """First audible frame from the IVR after ``t`` (None: silence, or hung up)."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    found = self._rtp.loud_after(t)
                    if found is not None:
                        return found
                    if self._hung_up.is_set():
                        return None
                    await self._changed()
        except TimeoutError:
            return None

    async def _wait_quiet(self, quiet_s: float) -> float | None:
        """Wait until the IVR has been quiet for ``quiet_s``; returns when it stopped."""
        while not self._hung_up.is_set():
            last = self._rtp.loud[-1] if self._rtp.loud else 0.0
            if self._now() - last >= quiet_s:
                return last
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(last + quiet_s - self._now() + 0.005):
                    await self._changed()
        return None

    async def _wait_turn(self) -> float | None:
        """The IVR stopped talking (and, when we can ask, waits for input)."""
        while True:
            end = await self._wait_quiet(self.quiet_s)
            if end is None or self._ready is None or self._ready():
                return end
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FRAME_S):
                    await self._changed()

    async def _changed(self) -> None:
        ev = self._rtp.changed
        ev.clear()
        hung = asyncio.ensure_future(self._hung_up.wait())
        got = asyncio.ensure_future(ev.wait())
        try:
            await asyncio.wait({hung, got}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hung.cancel()
            got.cancel()

    async def _send_turn(self, turn: Turn) -> float:
        """Queue the turn's frames; returns when its last frame went out."""
        done = asyncio.get_running_loop().create_future()
        frames: list[tuple[int, bytes, bool]] = []
        if turn.speech:
            for i in range(0, len(turn.speech), FRAME_BYTES):
                chunk = turn.speech[i:i + FRAME_BYTES].ljust(FRAME_BYTES, bytes([ULAW_SILENCE]))
                frames.append((PCMU_PT, chunk, i == 0))
        for digit in turn.dtmf.upper():
            if digit not in _DTMF:
                raise SipCallerError(f"not a DTMF digit: {digit!r}")
            for k in range(8):  # 160 ms key press
                frames.append((DTMF_PT, struct.pack("!BBH", _DTMF[digit], 10, (k + 1) * 160),
                               k == 0))
            frames.append((DTMF_PT, struct.pack("!BBH", _DTMF[digit], 0x80 | 10, 8 * 160),
                           False))
            frames += [(PCMU_PT, bytes([ULAW_SILENCE]) * FRAME_BYTES, False)] * 6
        self._out.extend(frames)
        self._out.append((-1, b"", False))  # sentinel: resolve ``done`` here
        self._done = done
        result: float = await done
        return result

    async def _send_frames(self) -> None:
        """One packet every 20 ms on the clock (speech, key events or silence)."""
        assert self._remote is not None
        silence = bytes([ULAW_SILENCE]) * FRAME_BYTES
        tick = time.monotonic()
        event_ts: int | None = None
        while True:
            pt, payload, marker = self._out.pop(0) if self._out else (PCMU_PT, silence, False)
            if pt == -1:
                if not self._done.done():
                    self._done.set_result(self._now())
                continue
            if pt == DTMF_PT:
                event_ts = self._ts if marker or event_ts is None else event_ts
                ts = event_ts
                if payload[1] & 0x80:  # end of event: RFC 4733 sends it three times
                    for _ in range(2):
                        self._packet(pt, ts, payload, False)
            else:
                event_ts, ts = None, self._ts
            self._packet(pt, ts, payload, marker)
            self._ts = (self._ts + 160) & 0xFFFFFFFF
            tick += FRAME_S
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    def _packet(self, pt: int, ts: int, payload: bytes, marker: bool) -> None:
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self._seq, ts,
                             self._ssrc)
        self._seq = (self._seq + 1) & 0xFFFF
        self._rtp_t.sendto(header + payload, self._remote)

    # ----------------------------------------------------------------- SIP
    def _send_sip(self, msg: str) -> None:
        self._sip_t.sendto(msg.encode(), (self.host, self.sip_port))

    def _request(self, method: str, cseq: int, body: str = "", branch: str | None = None) -> str:
        uri = f"sip:{self.dialed}@{self.host}:{self.sip_port}"
        to = self._to or f"<{uri}>"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self._sip_local};rport;branch="
            f"{branch or 'z9hG4bK' + uuid.uuid4().hex[:16]}",
            f"From: {self.from_hdr};tag={self.tag}", f"To: {to}",
            f"Call-ID: {self.call_id}", f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.user}@{self.host}:{self._sip_local}>",
            "Max-Forwards: 70", "User-Agent: Kanaal-turn-caller",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def _sdp(self) -> str:
        return "\r\n".join([
            "v=0", f"o=kanaal {self._ssrc} 1 IN IP4 {self.host}",
            "s=Kanaal turn caller", f"c=IN IP4 {self.host}", "t=0 0",
            f"m=audio {self._rtp_local} RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20",
            "a=sendrecv", ""])

    async def _invite(self, answer_timeout_s: float) -> int | None:
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        invite = self._request("INVITE", 1, self._sdp(), branch)
        status: int | None = None
        retransmit, next_send = 0.5, 0.0
        try:
            async with asyncio.timeout(answer_timeout_s):
                while True:
                    if status is None and self._now() >= next_send:  # until provisional
                        self._send_sip(invite)
                        next_send = self._now() + retransmit
                        retransmit = min(retransmit * 2, 4.0)
                    try:
                        async with asyncio.timeout(0.1):
                            msg = await self._sip.inbox.get()
                    except TimeoutError:
                        continue
                    code = _status(msg)
                    if code is None or "INVITE" not in _header(msg, "cseq"):
                        continue
                    status = code
                    if code >= 200:
                        self._to = _header(msg, "to")
                        if code == 200:
                            self._remote = _sdp_addr(msg)
                            self._send_sip(self._request("ACK", 1))
                        else:
                            self._send_sip(self._request("ACK", 1, branch=branch))
                        return code
        except TimeoutError:
            return status if status and status >= 200 else None

    async def _serve_sip(self) -> None:
        """Answer the far end's requests (BYE ends the call) and re-ACK retransmitted 200s."""
        while True:
            msg = await self._sip.inbox.get()
            code = _status(msg)
            if code == 200 and "INVITE" in _header(msg, "cseq"):
                self._send_sip(self._request("ACK", 1))
                continue
            if code is not None:
                continue
            method = msg.split(" ", 1)[0]
            self._send_sip(_response(msg, 200 if method in ("BYE", "OPTIONS", "INFO") else 501))
            if method == "BYE":
                self._hung_up.set()
                return

    async def _bye(self) -> None:
        self._cseq += 1
        bye = self._request("BYE", self._cseq)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                for _ in range(4):
                    self._send_sip(bye)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            while True:
                                msg = await self._sip.inbox.get()
                                if _status(msg) is not None and "BYE" in _header(msg, "cseq"):
                                    return


def _onset_s(speech: bytes) -> float:
    """Seconds into a mu-law utterance of its first loud frame (synthesised speech and
    padded turns start with silence)."""
    for i in range(0, len(speech), FRAME_BYTES):
        frame = np.frombuffer(speech[i:i + FRAME_BYTES], dtype=np.uint8)
        if frame.size and float(np.abs(_ULAW[frame]).mean()) > LOUD_LEVEL:
            return i / 8000
    return 0.0


def _tail_s(speech: bytes) -> float:
    """Seconds of quiet after the last loud frame of a mu-law utterance (0: none)."""
    for i in range((len(speech) - 1) // FRAME_BYTES * FRAME_BYTES, -1, -FRAME_BYTES):
        frame = np.frombuffer(speech[i:i + FRAME_BYTES], dtype=np.uint8)
        if frame.size and float(np.abs(_ULAW[frame]).mean()) > LOUD_LEVEL:
            return max(0.0, (len(speech) - (i + FRAME_BYTES)) / 8000)
    return 0.0


def _status(msg: str) -> int | None:
    m = re.match(r"SIP/2\.0 (\d{3})", msg)
    return int(m.group(1)) if m else None


def _header(msg: str, name: str) -> str:
    for line in msg.split("\r\n\r\n", 1)[0].splitlines()[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def _response(request: str, code: int) -> str:
    heads = request.split("\r\n\r\n", 1)[0].splitlines()[1:]
    keep = [h for h in heads if h.split(":", 1)[0].strip().lower()
            in ("via", "from", "to", "call-id", "cseq")]
    reason = "OK" if code == 200 else "Not Implemented"
    return "\r\n".join([f"SIP/2.0 {code} {reason}", *keep, "Content-Length: 0"]) + "\r\n\r\n"


def _sdp_addr(msg: str) -> tuple[str, int]:
    body = msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""
    host = re.search(r"^c=IN IP4 (\S+)", body, re.MULTILINE)
    port = re.search(r"^m=audio (\d+)", body, re.MULTILINE)
    if host is None or port is None:
        raise SipCallerError("the 200 OK carried no usable SDP")
    return host.group(1), int(port.group(1))

