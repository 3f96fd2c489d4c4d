"""The Asterisk rig itself: configs, lifecycle, SIPp callers/agents, app-down fallback, FastAGI."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from ivr.telephony.ami import AmiClient
from ivr.testing.centre import clear_queue_members
from ivr.testing.rig import COMPLETE_MARKER, Rig, RigError, default_config_dir, render_config
from ivr.testing.sipcaller import (
    SippAgent,
    place_call,
    read_ulaw_wav,
    synthesize_utterance,
)

UTTERANCE = "I have a question about my last invoice"


def unique_number() -> str:
    """A caller number no other test uses (AstDB keys and recordings are per number)."""
    return "+3120" + str(uuid.uuid4().int)[:7]


def wav_stats(path: Path) -> tuple[float, float]:
    """(seconds, RMS amplitude 0..1) of a 16-bit PCM WAV as Asterisk records it."""
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
        seconds = w.getnframes() / w.getframerate()
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768
    return seconds, float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


# ------------------------------------------------------------ configs (no rig)


def test_dialplan_templates_render_completely(tmp_path: Path) -> None:
    """Every dialplan/ file renders with the rig's values; none keeps a placeholder."""
    rig = Rig(root=tmp_path / "root")
    etc = rig.host_path("etc/asterisk")
    etc.mkdir(parents=True)
    (etc / "asterisk.conf").write_text("[directories](!)\nastetcdir => /etc/asterisk\n")
    written = {p.name for p in rig.install_configs()}
    assert {"pjsip.conf", "extensions.conf", "queues.conf", "ari.conf", "http.conf",
            "manager.conf", "modules.conf"} <= written
    assert "[directories]\n" in (etc / "asterisk.conf").read_text()
    for name in written:
        assert not re.search(r"@[A-Z][A-Z0-9_]*@", (etc / name).read_text()), name
    assert "bind=127.0.0.1:5070" in (etc / "pjsip.conf").read_text()
    assert "bindport=8088" in (etc / "http.conf").read_text()
    queues = (etc / "queues.conf").read_text()
    # ivr-general is the queue of last resort: it always accepts callers.
    assert "[ivr-general](fallback)" in queues
    for skill in ("billing", "collections", "tech", "sales", "retention",
                  "complaints", "bereavement", "logistics", "general-own", "general-partner"):
        assert f"[ivr-{skill}](skill)" in queues
    # Members are Kanaal's to add over AMI: no static ones.
    assert "member =>" not in queues


def test_unknown_placeholder_is_an_error() -> None:
    """A typo'd placeholder fails loudly instead of becoming an empty setting."""
    with pytest.raises(RigError, match="@SIP_PROT@"):
        render_config("bind=0.0.0.0:@SIP_PROT@", {"SIP_PORT": "5070"})
    assert (default_config_dir() / "extensions.conf").is_file()


def test_interrupted_build_is_not_a_cache(tmp_path: Path) -> None:
    """A root without the completion marker (interrupted bootstrap) is not 'built'."""
    root = tmp_path / "rig"
    (root / "usr/sbin").mkdir(parents=True)
    rig = Rig(root=root)
    assert not rig.built
    (root / COMPLETE_MARKER).write_text("done\n")
    assert rig.built
    assert not rig.status().running


# ------------------------------------------------------------------ the rig


@pytest.mark.e2e
def test_rig_is_up_and_ari_answers(rig: Rig) -> None:
    """ARI answers for the configured user (and refuses a wrong password); key modules load."""
    c = rig.credentials
    info = httpx.get(f"{rig.ari_url}/ari/asterisk/info", auth=(c.ari_user, c.ari_password))
    assert info.status_code == 200
    assert info.json()["system"]["version"].startswith("22.")
    bad = httpx.get(f"{rig.ari_url}/ari/asterisk/info", auth=(c.ari_user, "wrong"))
    assert bad.status_code == 401
    st = rig.status()
    assert st.running and st.ari_ok and st.ports == rig.ports
    modules = rig.asterisk_cli("module show like chan_")
    for needed in ("chan_pjsip.so", "chan_bridge_media.so", "chan_rtp.so"):
        assert needed in modules
    assert "ivr-general" in rig.asterisk_cli("queue show ivr-general")


@pytest.mark.e2e
async def test_echo_call_completes(rig: Rig) -> None:
    """A SIPp caller reaches the echo extension, streams speech and hangs up itself."""
    audio = await asyncio.to_thread(synthesize_utterance, UTTERANCE, "en")
    call = await place_call(rig, audio, unique_number(), dialed="600", hangup_after_s=2)
    assert call.ok, call.errors
    assert call.answered and call.final_status == 200
    assert call.hung_up_by == "caller"
    assert call.setup_s is not None and call.setup_s < 2


@pytest.mark.e2e
async def test_caller_audio_reaches_asterisk(rig: Rig) -> None:
    """The utterance arrives as audio: Asterisk's recording has its length and energy."""
    number = unique_number()
    audio = await asyncio.to_thread(synthesize_utterance, UTTERANCE, "en")
    spoken_s = len(read_ulaw_wav(audio)) / 8000
    call = await place_call(rig, audio, number, dialed="603", hangup_after_s=spoken_s + 6,
                            trailing_silence_s=4)
    assert call.ok, call.errors
    assert call.hung_up_by == "remote"  # Record() ended on 2 s of silence, then Hangup()
    recorded = rig.host_path(f"var/spool/asterisk/kanaal/{number}.wav")
    seconds, rms = wav_stats(recorded)
    # Record() trims most, not all, of the 2 s of silence that ended it
    assert spoken_s - 0.3 < seconds < spoken_s + 1.5, (seconds, spoken_s)
    assert rms > 0.02


@pytest.mark.e2e
async def test_dtmf_reaches_asterisk(rig: Rig) -> None:
    """RFC 4733 digits sent after speech are read by the dialplan (Read -> AstDB)."""
    number = unique_number()
    audio = await asyncio.to_thread(synthesize_utterance, "one moment", "en")
    call = await place_call(rig, audio, number, dialed="602", dtmf="4711#", hangup_after_s=10)
    assert call.ok, call.errors
    assert call.hung_up_by == "remote"  # '#' ended Read(), the dialplan hung up
    stored = rig.asterisk_cli(f"database get kanaal/digits {number}")
    assert "Value: 4711" in stored


@pytest.mark.e2e
async def test_anonymous_and_unknown_callers_are_handled(rig: Rig) -> None:
    """An anonymous From is accepted; a call to a number nobody serves is not answered."""
    call = await place_call(rig, None, None, dialed="600", hangup_after_s=1)
    assert call.ok and call.answered, call.errors
    with pytest.raises(ValueError, match="SIP cannot carry"):
        await place_call(rig, None, "<sip:evil>", dialed="600")


@pytest.mark.e2e
async def test_app_down_call_lands_in_human_queue(rig: Rig) -> None:
    """With no Stasis app (STASISSTATUS=FAILED) the caller reaches an agent via ivr-general.

    No Kanaal node runs here: the agent was added to the queue earlier (as a login
    does, over AMI) and app_queue keeps serving without the brain."""
    number = unique_number()
    creds = rig.credentials
    ami = AmiClient("127.0.0.1", rig.ports.ami, username=creds.ami_user,
                    secret=creds.ami_password)
    runner = asyncio.create_task(ami.run())
    try:
        await ami.wait_connected(10)
        await clear_queue_members(ami)
        await ami.queue_add("ivr-general", "PJSIP/agent1", member_name="Agent 1")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
    agents = [SippAgent(rig, n, ring_s=0.2) for n in range(1, 5)]
    for agent in agents:
        await agent.start()
    try:
        call = await place_call(rig, None, number, dialed="699", hangup_after_s=2,
                                answer_timeout_s=20)
        assert call.ok, call.errors
        assert call.answered
        invites = [i for a in agents for i in a.invites() if number in i.get("from", "")]
    finally:
        for agent in agents:
            await agent.stop()
    assert invites, "no agent was rung"
    inv = invites[0]
    assert inv["x-ivr-fallback"] == "app_down"
    assert inv["x-ivr-queue"] == "ivr-general"
    assert number in inv["p-asserted-identity"]  # the agent sees the real caller


@pytest.mark.e2e
def test_rig_stops_and_starts_again(rig: Rig) -> None:
    """down() stops Asterisk and unmounts proc; up() brings ARI back (the cache is reused)."""
    rig.down()
    st = rig.status()
    assert not st.running and not st.ari_ok and st.built
    assert not rig.ari_ok()
    assert not (rig.root / "proc/self").exists()
    st = rig.up()
    assert st.running and st.ari_ok
