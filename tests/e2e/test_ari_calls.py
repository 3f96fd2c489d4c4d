"""Real calls through the Asterisk rig into the Stasis app (SIPp caller -> ARI -> app).

Prompts are flite WAVs played by Asterisk; the caller's speech is a flite
utterance streamed by SIPp; recognition is the project's Whisper tiny.en
recogniser fed through snoop + externalMedia RTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.domain.model import RouteDecision, Scenario
from ivr.domain.ports import (
    CallChannel,
    CallerHungUp,
    Prompt,
)
from ivr.speech.tts import FliteTts, PromptSynthesizer
from ivr.speech.whisper_engine import WhisperRecognizer
from ivr.telephony.ari.app import StasisApp
from ivr.telephony.ari.channel import AriCallChannel, AriChannelSettings, CallState
from ivr.telephony.ari.client import AriClient
from ivr.testing.centre import only_members, rig_ami
from ivr.testing.recognizers import TapRecognizer
from ivr.testing.rig import Rig, rig_from_env
from ivr.testing.sipcaller import SippAgent, place_call, read_ulaw_wav, synthesize_utterance
from ivr.testing.turncaller import Turn, TurnCaller

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
log = logging.getLogger(__name__)

PROMPT_DIR_IN_ROOT = "/var/lib/kanaal-e2e/prompts"
LONG_PROMPT = ("Welcome to Kanaal customer service. Please tell me in a few words what you "
               "are calling about today. For example, I want to pay my bill, or, where is my "
               "order. You can also use your keypad at any time.")


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    r = rig_from_env()  # KANAAL_RIG_* picks a developer's own rig copy
    r.up()  # reuses a running rig (then does not own it)
    yield r
    if r.owned:
        r.down()


@pytest.fixture(scope="module")
def whisper() -> WhisperRecognizer:
    rec = WhisperRecognizer()
    rec.model()  # load once for the module, outside any call's timing
    return rec


class RigPrompts:
    """PromptResolver: flite WAVs written into the rig root, played as ``sound:`` paths."""

    def __init__(self, rig: Rig) -> None:
        self._rig = rig
        self._synth = PromptSynthesizer(FliteTts(), rig.host_path(PROMPT_DIR_IN_ROOT))

    async def resolve(self, prompt: Prompt) -> str:
        host = await self._synth.synthesize(prompt.text, prompt.language)
        in_root = "/" + str(host.relative_to(self._rig.root)).removesuffix(".wav")
        return f"sound:{in_root}"


Flow = Callable[[AriCallChannel], Awaitable[None]]


class Harness:
    """The Stasis app on the rig; a flow per caller number."""

    def __init__(self, rig: Rig, recognizer: TapRecognizer) -> None:
        self.rig = rig
        creds = rig.credentials
        self.client = AriClient(rig.ari_url, username=creds.ari_user,
                                password=creds.ari_password, app=creds.stasis_app)
        self.recognizer = recognizer
        self.flows: dict[str, Flow] = {}
        self.done: dict[str, asyncio.Future[AriCallChannel]] = {}
        self.app = StasisApp(self.client, flow_runner=self._run, prompts=RigPrompts(rig),
                             recognizer=recognizer,
                             settings=AriChannelSettings(inter_digit_s=2.0),
                             on_call_end=self._ended)

    def expect(self, number: str, flow: Flow) -> asyncio.Future[AriCallChannel]:
        self.flows[number] = flow
        fut: asyncio.Future[AriCallChannel] = asyncio.get_running_loop().create_future()
        self.done[number] = fut
        return fut

    async def _run(self, channel: CallChannel) -> None:
        assert isinstance(channel, AriCallChannel)
        flow = self.flows.get(channel.caller.number or "")
        if flow is None:
            return  # not one of ours: hang up
        await flow(channel)

    def _ended(self, channel: AriCallChannel) -> None:
        fut = self.done.get(channel.caller.number or "")
        if fut is not None and not fut.done():
            fut.set_result(channel)


@pytest.fixture
async def harness(rig: Rig, whisper: WhisperRecognizer) -> AsyncIterator[Harness]:
    h = Harness(rig, TapRecognizer(whisper))
    task = asyncio.create_task(h.app.run())
    await asyncio.wait_for(h.client.connected.wait(), 10)
    try:
        yield h
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await h.client.aclose()


def prompt(text: str) -> Prompt:
    return Prompt(key="e2e", text=text, language="en")


async def utterance(text: str, lead_silence_s: float = 0.0) -> Path:
    """flite utterance as 8 kHz mu-law, optionally after some digital silence.

    The silence is real audio in the stream: SIPp replays a pcap from its first
    packet, so a delay without packets would not delay anything.
    """
    path = await asyncio.to_thread(synthesize_utterance, text, "en")
    if lead_silence_s <= 0:
        return path
    return await silence(lead_silence_s, then=path)


async def silence(seconds: float, then: Path | None = None) -> Path:
    out = Path(tempfile.gettempdir()) / "kanaal-tts" / (
        f"silence-{seconds:.2f}-{then.stem if then else 'only'}.wav")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["sox", "-n", "-r", "8000", "-c", "1", "-e", "mu-law", str(out), "trim", "0",
           str(seconds)]
    if then is not None:
        cmd = ["sox", "-n", "-r", "8000", "-c", "1", "-e", "mu-law", "-p", "trim", "0",
               str(seconds)]
        pad = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, check=True)
        cat = ["sox", "-t", "sox", "-", str(then), "-e", "mu-law", str(out)]
        await asyncio.to_thread(subprocess.run, cat, input=pad.stdout, check=True)
        return out
    await asyncio.to_thread(subprocess.run, cmd, capture_output=True, check=True)
    return out


def energy_onset(frames: list[tuple[float, bytes]], threshold: float = 500.0) -> float | None:
    """Arrival time of the first fed frame with speech-like energy."""
    for at, pcm in frames:
        x = np.frombuffer(pcm, "<i2").astype(np.float64)
        if x.size and float(np.sqrt(np.mean(x**2))) > threshold:
            return at
    return None


async def leftovers(client: AriClient, call_id: str) -> list[str]:
    """Helper channels/bridges of one call still alive in Asterisk."""
    chans = [c.id for c in await client.channels() if c.id.startswith(call_id)]
    bridges = [b.id for b in await client.bridges() if b.id.startswith(call_id)]
    return chans + bridges


def smoothness(pcm: bytes, byteorder: str) -> float:
    """Mean |x[n]-x[n-1]| / mean |x|: small for real audio, ~1.4 for noise (wrong byte order)."""
    x = np.frombuffer(pcm, dtype="<i2" if byteorder == "little" else ">i2").astype(np.float64)
    return float(np.mean(np.abs(np.diff(x))) / max(np.mean(np.abs(x)), 1e-9))


async def test_speech_is_recognised_with_barge_in(harness: Harness) -> None:
    """A caller talking over the prompt stops it (barge-in) and is understood."""
    number = "+31205550101"
    results: dict[str, Any] = {}

    async def flow(ch: AriCallChannel) -> None:
        results["t0"] = asyncio.get_running_loop().time()
        results["ch"] = ch
        utt = await ch.listen(prompt(LONG_PROMPT), timeout_s=6)
        results["utt"] = utt
        await ch.hang_up()

    done = harness.expect(number, flow)
    audio = await utterance("I want to pay my bill")
    # Talks over the prompt 2 s after it starts, as heard: no timing laid out in advance.
    caller = TurnCaller(harness.rig.ports.sip, from_number=number,
                        asking=lambda: "ch" in results and results["ch"].asking)
    call = await caller.run([Turn(speech=read_ulaw_wav(audio), barge_in_after_s=2.0)],
                            max_call_s=30)
    ch = await asyncio.wait_for(done, 10)
    assert call.answered, call.error
    utt = results["utt"]
    assert utt is not None and utt.dtmf is None
    assert re.search(r"\b(pay|bill)\b", utt.text.lower()), utt.text
    assert ch.stats.barge_ins, "prompt was not stopped by speech"
    bi = ch.stats.barge_ins[0]
    assert bi.detect_to_finished_ms is not None and bi.detect_to_finished_ms < 500
    onset = energy_onset(harness.recognizer.frames)
    assert onset is not None and onset - results["t0"] > 1.5  # speech came during the prompt
    log.warning("barge-in: speech energy onset->detected %.0f ms, detected->prompt stopped "
                "%.0f ms (stop request %.0f ms)", (bi.detected_at - onset) * 1000,
                bi.detect_to_finished_ms, bi.detect_to_stop_request_ms)
    # the caller's audio arrived little-endian after the byteswap, with speech energy in it
    pcm = b"".join(f for _, f in harness.recognizer.frames)
    assert len(pcm) >= 16000 * 2  # at least a second of slin16
    rms = float(np.sqrt(np.mean(np.frombuffer(pcm, "<i2").astype(np.float64) ** 2)))
    assert rms > 200
    assert smoothness(pcm, "little") < 0.5 * smoothness(pcm, "big")
    assert await leftovers(harness.client, ch.channel_id) == []


async def test_dtmf_reaches_the_flow(harness: Harness) -> None:
    """RFC 4733 digits from the caller stop the prompt and are collected up to '#'."""
    number = "+31205550102"
    got: dict[str, Any] = {}

    async def flow(ch: AriCallChannel) -> None:
        got["digits"] = await ch.collect_digits(prompt(LONG_PROMPT), max_digits=6, timeout_s=5)
        await ch.hang_up()

    done = harness.expect(number, flow)
    call = await place_call(harness.rig, await silence(2.0), number, dtmf="42#",
                            hangup_after_s=12)
    ch = await asyncio.wait_for(done, 10)
    assert call.answered
    assert got["digits"] == "42"
    assert ch.stats.dtmf[:3] == ["4", "2", "#"]


async def test_caller_hangs_up_mid_prompt(harness: Harness) -> None:
    """Hang-up during a listen prompt: CallerHungUp in the flow, no helper channel/bridge left."""
    number = "+31205550103"
    seen: dict[str, Any] = {}

    async def flow(ch: AriCallChannel) -> None:
        try:
            await ch.listen(prompt(LONG_PROMPT), timeout_s=10)
        except CallerHungUp:
            seen["hung_up"] = True
            raise

    done = harness.expect(number, flow)
    call = await place_call(harness.rig, None, number, hangup_after_s=3)
    ch = await asyncio.wait_for(done, 10)
    assert call.answered and call.hung_up_by == "caller"
    assert seen.get("hung_up") and ch.state is CallState.GONE
    assert harness.app.failed == 0
    for _ in range(20):  # Asterisk destroys the legs asynchronously
        left = await leftovers(harness.client, ch.channel_id)
        if not left:
            break
        await asyncio.sleep(0.1)
    assert left == []


async def test_websocket_killed_mid_call(harness: Harness) -> None:
    """The ARI websocket dies mid-prompt; the client reconnects and the call reaches hand-off."""
    number = "+31205550104"
    seen: dict[str, Any] = {}

    async def kill_later() -> None:
        await asyncio.sleep(1.0)
        await harness.client.close_events()

    async def flow(ch: AriCallChannel) -> None:
        killer = asyncio.create_task(kill_later())
        await ch.say(prompt("Please hold on while I look that up for you."))
        await killer
        seen["digits"] = await ch.collect_digits(prompt("Enter your choice."), max_digits=1,
                                                 timeout_s=8)
        await ch.hand_off(RouteDecision(scenario=Scenario.AGENT, skill="general",
                                        queue="general", reason="e2e"))

    done = harness.expect(number, flow)
    # the digit comes 0.5 s after 6 s of silence: after the reconnect and the first prompt
    call = await place_call(harness.rig, await silence(6.0), number, dtmf="7",
                            hangup_after_s=20)
    ch = await asyncio.wait_for(done, 10)
    assert call.answered
    assert harness.client.connects >= 2
    assert seen.get("digits") == "7"
    assert ch.state is CallState.HANDED_OFF


async def test_hand_off_reaches_agent_with_session(harness: Harness) -> None:
    """hand_off sets IVR_SESSION etc.; the queue rings the agent, whose leg carries it."""
    number = "+31205550105"
    seen: dict[str, Any] = {}

    async def flow(ch: AriCallChannel) -> None:
        await ch.hand_off(RouteDecision(scenario=Scenario.AGENT, skill="billing",
                                        queue="billing", priority=3, intent="invoice"))
        peer = await ch.watch_handoff(15)
        seen["peer"] = peer
        if peer is not None:
            seen["peer_session"] = await harness.client.get_variable(peer.id, "IVR_SESSION")
            seen["peer_intent"] = await harness.client.get_variable(peer.id, "IVR_INTENT")

    async with rig_ami(harness.rig) as ami:  # queue members persist across runs (AstDB)
        await only_members(ami, "ivr-billing", "PJSIP/agent1")
    async with SippAgent(harness.rig, 1) as agent:
        done = harness.expect(number, flow)
        call = await place_call(harness.rig, None, number, hangup_after_s=10)
        ch = await asyncio.wait_for(done, 10)
        invite = await agent.wait_for_invite(5)
    assert call.answered
    assert ch.state is CallState.HANDED_OFF
    headers = {k.lower(): v for k, v in invite.items()}
    assert headers.get("x-ivr-session") == ch.session_id
    assert seen.get("peer") is not None, "no answered Dial event for the agent leg"
    assert seen["peer_session"] == ch.session_id
    assert seen["peer_intent"] == "invoice"
