"""externalMedia RTP receiver: caller audio as an async iterator of PCM frames.

Asterisk's externalMedia channel (``format=slin16``) sends RTP with payload type
118, 640-byte payloads per 20 ms, samples big-endian (network order). Recognisers
want little-endian, so every payload is byteswapped here.

A silent leg sends no packets at all: consumers must run their timers on the
clock (see :meth:`RtpReceiver.read`), not count frames.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ivr.queues import get_within, put_latest
from ivr.speech.audio import byteswap16

log = logging.getLogger(__name__)

RTP_VERSION = 2
PT_SLIN16 = 118


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """A parsed RTP packet (header fields we care about + payload)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


class RtpParseError(ValueError):
    """Datagram is not a usable RTP packet."""


def parse_rtp(datagram: bytes) -> RtpPacket:
    """Parse one RTP datagram, skipping CSRCs, header extension and padding."""
    if len(datagram) < 12:
        raise RtpParseError(f"short datagram ({len(datagram)} bytes)")
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", datagram[:12])
    if b0 >> 6 != RTP_VERSION:
        raise RtpParseError(f"RTP version {b0 >> 6}")
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in 32-bit words
        if len(datagram) < offset + 4:
            raise RtpParseError("truncated header extension")
        (ext_words,) = struct.unpack("!H", datagram[offset + 2 : offset + 4])
        offset += 4 + 4 * ext_words
    end = len(datagram)
    if b0 & 0x20:  # padding: last octet counts padding bytes (itself included)
        pad = datagram[-1]
        if pad == 0 or pad > end - offset:
            raise RtpParseError("bad padding")
        end -= pad
    if offset > end:
        raise RtpParseError("header longer than datagram")
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        marker=bool(b1 & 0x80),
        payload=datagram[offset:end],
    )


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: RtpReceiver) -> None:
        self._receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._receiver._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("rtp socket error: %s", exc)


class RtpReceiver:
    """UDP socket receiving one externalMedia stream; yields little-endian PCM.

    The queue is bounded: when the consumer lags, the oldest frame is dropped
    (``dropped`` counts them) so latency cannot build up behind a slow recogniser.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        payload_types: tuple[int, ...] = (PT_SLIN16,),
        big_endian: bool = True,
        max_frames: int = 250,  # 5 s of 20 ms frames
    ) -> None:
        self._host = host
        self._port = port
        self._payload_types = payload_types
        self._swap = big_endian and sys.byteorder == "little"
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=max_frames)
        self._transport: asyncio.DatagramTransport | None = None
        self.packets = 0
        self.dropped = 0
        self.rejected = 0
        self.last_packet_at: float | None = None

    async def start(self) -> RtpReceiver:
        """Bind the socket (before asking Asterisk to send to it)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self._host, self._port)
        )
        self._transport = transport
        return self

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound; for externalMedia's ``external_host``."""
        if self._transport is None:
            raise RuntimeError("RtpReceiver not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def _on_datagram(self, data: bytes) -> None:
        try:
            pkt = parse_rtp(data)
        except RtpParseError:
            self.rejected += 1
            return
        if pkt.payload_type not in self._payload_types or not pkt.payload:
            self.rejected += 1
            return
        self.packets += 1
        self.last_packet_at = asyncio.get_running_loop().time()
        frame = byteswap16(pkt.payload) if self._swap else pkt.payload
        if put_latest(self._queue, frame):
            self.dropped += 1

    async def read(self, within_s: float | None = None) -> bytes | None:
        """Next frame, or None if none arrives within ``within_s`` or when closed."""
        return await get_within(self._queue, within_s)

    def take_queued(self, max_frames: int) -> bytes:
        """Up to ``max_frames`` frames already queued, joined (b"" when none wait); never
        waits and leaves the close marker in place."""
        parts: list[bytes] = []
        while len(parts) < max_frames and not self._queue.empty():
            frame = self._queue.get_nowait()
            if frame is None:
                self._queue.put_nowait(None)
                break
            parts.append(frame)
        return b"".join(parts)

    def drain(self) -> int:
        """Discard queued frames (audio from before a turn started); returns how many."""
        n = 0
        while not self._queue.empty():
            if self._queue.get_nowait() is None:
                self._queue.put_nowait(None)  # keep the close marker
                break
            n += 1
        return n

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        put_latest(self._queue, None)

    async def __aenter__(self) -> RtpReceiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()
