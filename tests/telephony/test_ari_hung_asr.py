"""A recogniser that hangs or raises costs the caller one turn, never the call."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from test_ari_client import fake, one_call, p  # the ARI tests' fixtures

from ivr.telephony.ari.channel import AriCallChannel, AriChannelSettings
from ivr.testing.fake_ari import FakeAri
from ivr.testing.recognizers import FaultyRecognizer, ScriptedRecognizer

__all__ = ["fake"]  # a fixture, used by name


async def talk(ch: AriCallChannel, frames: int = 30) -> None:
    """Send slin16 RTP frames to the channel's media socket (what Asterisk would)."""
    for _ in range(100):
        if ch._rtp is not None:
            break
        await asyncio.sleep(0.02)
    assert ch._rtp is not None
    host, port = ch._rtp.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for seq in range(frames):
            header = struct.pack("!BBHII", 0x80, 118, seq, seq * 320, 1)
            s.sendto(header + b"\x10\x00" * 320, (host, port))
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(("mode", "where"), [
    ("hang", "open"), ("hang", "finish"), ("hang", "feed"), ("raise", "finish")])
async def test_listen_ends_when_the_recogniser_hangs_or_raises(
        fake: FakeAri, mode: str, where: str) -> None:
    """Hung (or raising) at open, feed or finish: listen() gives up on speech within the
    ASR timeout and returns (no input, or an empty utterance) instead of holding the
    caller in silence, and a keypad answer still works on the next turn."""
    asr = FaultyRecognizer(ScriptedRecognizer(["where is my order"] * 3), mode=mode,
                           where=(where,))
    async with one_call(fake, recognizer=asr,
                        settings=AriChannelSettings(asr_timeout_s=0.5, lease_s=0)) as ch:
        talker = asyncio.create_task(talk(ch))
        async with asyncio.timeout(6):
            utt = await ch.listen(p("question"), timeout_s=1.0)
        talker.cancel()
        assert utt is None or not utt.text, utt
        assert asr.tripped >= 1

        async def press() -> None:
            await asyncio.sleep(0.3)
            await fake.emit({"type": "ChannelDtmfReceived", "channel": fake.channels["c1"],
                             "digit": "3"})
        presser = asyncio.create_task(press())
        tripped = asr.tripped
        t0 = asyncio.get_running_loop().time()
        async with asyncio.timeout(6):
            keyed = await ch.listen(p("question"), timeout_s=2.0)
        waited = asyncio.get_running_loop().time() - t0
        await presser
        assert keyed is not None and keyed.dtmf == "3"
        if mode == "hang" and where in ("open", "finish"):
            # a hung engine is not asked again on this call: no silent wait first
            assert asr.tripped == tripped and waited < 0.45, (asr.tripped, waited)
