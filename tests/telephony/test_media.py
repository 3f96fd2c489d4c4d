"""RTP parsing and the externalMedia receiver over a real UDP socket."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from ivr.speech.audio import byteswap16
from ivr.telephony.media import RtpParseError, RtpReceiver, parse_rtp


def rtp(payload: bytes, *, pt: int = 118, seq: int = 1, csrc: int = 0, ext: bytes = b"",
        pad: int = 0) -> bytes:
    b0 = 0x80 | csrc | (0x10 if ext else 0) | (0x20 if pad else 0)
    head = struct.pack("!BBHII", b0, pt, seq, seq * 320, 0x1234)
    head += b"\x00\x00\x00\x01" * csrc
    if ext:
        head += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    tail = (b"\x00" * (pad - 1) + bytes([pad])) if pad else b""
    return head + payload + tail


def test_parse_skips_csrc_extension_and_padding() -> None:
    """Payload starts after CSRCs and the header extension; padding is cut off."""
    pkt = parse_rtp(rtp(b"\x01\x02\x03\x04", csrc=2, ext=b"\xaa" * 8, pad=4))
    assert pkt.payload == b"\x01\x02\x03\x04"
    assert (pkt.payload_type, pkt.sequence, pkt.ssrc) == (118, 1, 0x1234)


@pytest.mark.parametrize("data", [b"", b"\x80" * 5, b"\x40" + b"\x00" * 20,
                                  bytes([0x8F]) + b"\x00" * 20])
def test_parse_rejects_garbage(data: bytes) -> None:
    """Short, wrong-version or truncated datagrams raise RtpParseError."""
    with pytest.raises(RtpParseError):
        parse_rtp(data)


def test_swap16_turns_big_endian_into_little_endian() -> None:
    """Each 16-bit sample's bytes are swapped (slin16 on the wire is big-endian)."""
    be = struct.pack(">3h", 1000, -2, 32767)
    assert struct.unpack("<3h", byteswap16(be)) == (1000, -2, 32767)


async def test_receiver_yields_little_endian_frames_and_rejects_others() -> None:
    """Real UDP: PT 118 frames arrive byteswapped; other payload types are dropped."""
    async with RtpReceiver() as rx:
        host, port = rx.address
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        samples = list(range(-160, 160))
        tx.sendto(rtp(b"junk", pt=0), (host, port))
        tx.sendto(b"\x00" * 3, (host, port))
        tx.sendto(rtp(struct.pack(">320h", *samples)), (host, port))
        frame = await rx.read(2)
        tx.close()
        assert frame is not None and len(frame) == 640
        assert list(struct.unpack("<320h", frame)) == samples
        assert rx.rejected == 2 and rx.packets == 1
        assert await rx.read(0.05) is None  # a silent leg: nothing, on the clock


async def test_receiver_drops_oldest_when_consumer_lags() -> None:
    """With a full queue the oldest frames go; the newest are kept."""
    async with RtpReceiver(max_frames=5) as rx:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(20):
            tx.sendto(rtp(struct.pack(">h", i), seq=i), rx.address)
        tx.close()
        for _ in range(100):
            if rx.packets == 20:
                break
            await asyncio.sleep(0.01)
        assert rx.dropped == 15
        got = [struct.unpack("<h", await rx.read(1) or b"\0\0")[0] for _ in range(5)]
        assert got == [15, 16, 17, 18, 19]


async def test_iteration_ends_on_close() -> None:
    """async for over the receiver ends when it is closed."""
    rx = await RtpReceiver().start()
    asyncio.get_running_loop().call_later(0.05, rx.close)
    frames = [f async for f in rx]
    assert frames == []


async def test_read_honours_a_cancel_that_lands_with_a_frame() -> None:
    """A listen turn cancels its audio task; a frame arriving at that instant must not
    swallow the cancel (3.11's wait_for did, and the call hung until the caller left)."""
    rtp_in = RtpReceiver()
    for _ in range(50):
        async def reader() -> None:
            while True:
                await rtp_in.read(1.0)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)  # the reader now waits in read()
        rtp_in._queue.put_nowait(b"\x00" * 640)  # a frame lands...
        task.cancel()  # ...as the turn ends
        done, _ = await asyncio.wait({task}, timeout=0.5)
        assert done and task.cancelled()


async def test_subscription_get_honours_a_cancel_that_lands_with_an_event() -> None:
    """Same race on the per-call ARI event queue."""
    from ivr.telephony.ari.client import AriClient
    from ivr.telephony.ari.events import parse_event

    client = AriClient("http://127.0.0.1:9", username="u", password="p", app="ivr")
    sub = client.subscribe("chan-1")
    event = parse_event({"type": "ChannelDtmfReceived", "digit": "1",
                         "channel": {"id": "chan-1", "name": "PJSIP/x", "state": "Up"}})
    for _ in range(50):
        async def waiter() -> None:
            while True:
                await sub.get(1.0)

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        sub.put(event)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.5)
        assert done and task.cancelled()
    await client.aclose()
