"""Queued callers over ARI (fake server at the wire): whispering to a channel outside
Stasis, and a caller coming back from the queue's exit key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from test_ari_client import fake, make_client, running  # the ARI tests' fixtures

from ivr.telephony.ari.app import QUEUE_EXIT, StasisApp
from ivr.telephony.ari.channel import AriCallChannel, AriChannelSettings
from ivr.telephony.ari.client import AriClient
from ivr.telephony.ari.whisper import AriWhisper
from ivr.testing.fake_ari import FakeAri
from ivr.testing.fake_ari import channel_json as chan

__all__ = ["fake"]  # a fixture, used by name


@contextlib.asynccontextmanager
async def client_for(fake: FakeAri) -> AsyncIterator[AriClient]:
    client = make_client(fake)
    async with running(client, fake):
        yield client


class Sounds:
    async def resolve(self, prompt: Any) -> str:
        return f"sound:/x/{prompt.key}"


async def test_whisper_plays_on_a_snoop_and_hangs_it_up(fake: FakeAri) -> None:
    """The message goes to a whisper snoop of the queued channel, which is hung up after."""
    fake.channels["q1"] = chan("q1")
    async with client_for(fake) as client:
        whisper = AriWhisper(client, timeout_s=5)
        assert await whisper.whisper("q1", "sound:/x/queue_update")
    snoops = [q for m, path, q in fake.requests if path == "/channels/q1/snoop"]
    assert len(snoops) == 1 and snoops[0]["whisper"] == "out" and snoops[0]["spy"] == "none"
    sid = snoops[0]["snoopId"]
    plays = [path for m, path, q in fake.requests if path.startswith(f"/channels/{sid}/play")]
    assert plays, fake.requests
    assert sid not in fake.channels  # hung up
    assert "q1" in fake.channels  # the caller is untouched
    assert whisper.played == 1


async def test_whisper_to_a_caller_who_is_gone_is_false(fake: FakeAri) -> None:
    async with client_for(fake) as client:
        assert not await AriWhisper(client, timeout_s=5).whisper("gone", "sound:/x/y")


async def test_queue_exit_resumes_the_same_session_and_unknown_ones_fail_safe(
        fake: FakeAri) -> None:
    """StasisStart(queue-exit, SESSION) runs the resume runner on that session; with no
    session (or one the runner cannot find) the caller goes to a human, not away."""
    resumed: list[tuple[str, str]] = []
    fresh: list[str] = []

    async def flow(channel: Any) -> None:
        fresh.append(channel.session_id)

    async def resume(channel: Any, session: str) -> None:
        if not session:
            raise LookupError("no contact to resume")
        resumed.append((channel.session_id, session))

    async with client_for(fake) as client:
        app = StasisApp(client, flow_runner=flow, resume_runner=resume, prompts=Sounds(),
                        recognizer=None)
        task = asyncio.create_task(app.run())
        await fake.start_call("back", "0201234567", args=(QUEUE_EXIT, "sess-42"))
        await fake.start_call("nosession", "0201234568", args=(QUEUE_EXIT,))
        await fake.start_call("new", "0201234569")
        for _ in range(400):  # the fail-safe's hand-off ends after the counters move
            if app.completed + app.failed == 3 and ("nosession", "IVR_QUEUE") in fake.variables:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert resumed == [("sess-42", "sess-42")]
    assert len(fresh) == 1 and fresh[0] != "sess-42"
    assert (app.completed, app.failed) == (2, 1)
    assert fake.variables[("nosession", "IVR_QUEUE")] == "general"


async def test_the_lease_is_renewed_while_in_the_app_and_stops_before_the_hand_off(
        fake: FakeAri) -> None:
    """The call's absolute timeout is renewed every lease/5 (by channel name, the AMI way)
    while the call is in the app, so a dead node's callers leave Stasis for a human;
    no renewal follows the hand-off's continue. Without a renewer there is no lease."""
    from ivr.domain.model import RouteDecision, Scenario

    log: list[tuple[str, int, int]] = []  # (channel name, seconds, ARI requests so far)

    async def renew(name: str, seconds: int) -> None:
        log.append((name, seconds, len(fake.requests)))

    async with client_for(fake) as client:
        await fake.start_call("c1")
        start, sub = await asyncio.wait_for(client.next_call(), 2)
        ch = AriCallChannel(client, sub, start.channel, session_id="s1", recognizer=None,
                            prompts=Sounds(), settings=AriChannelSettings(lease_s=0.6),
                            renew_lease=renew)
        await ch.answer()
        await asyncio.sleep(0.75)
        assert len(log) >= 3 and log[0][:2] == (start.channel.name, 2)  # at least 2 s
        await ch.hand_off(RouteDecision(scenario=Scenario.AGENT, skill="billing",
                                        queue="ivr-billing"))
        done = len(log)
        cont = next(i for i, (m, path, q) in enumerate(fake.requests)
                    if path == "/channels/c1/continue")
        await asyncio.sleep(0.5)
        await ch.close()
        await fake.start_call("c2")
        start2, sub2 = await asyncio.wait_for(client.next_call(), 2)
        plain = AriCallChannel(client, sub2, start2.channel, session_id="s2", recognizer=None,
                               prompts=Sounds(), settings=AriChannelSettings(lease_s=0.6))
        await plain.answer()
        await asyncio.sleep(0.3)
        await plain.close()
    assert len(log) == done and log[-1][2] <= cont


async def _leased_call(fake: FakeAri, client: AriClient,
                       ami: Callable[[str, int], Awaitable[None]]) -> AriCallChannel:
    """Call c1 answered with a 1 s lease renewed by ``ami`` (30 s when it falls back
    to ARI)."""
    await fake.start_call("c1")
    start, sub = await asyncio.wait_for(client.next_call(), 2)
    ch = AriCallChannel(client, sub, start.channel, session_id="s1", recognizer=None,
                        prompts=Sounds(),
                        settings=AriChannelSettings(lease_s=1.0, degraded_lease_s=30),
                        renew_lease=ami)
    await ch.answer()
    return ch


async def test_the_lease_falls_back_to_a_long_ari_lease_while_ami_is_down_or_hangs(
        fake: FakeAri) -> None:
    """AMI unreachable, or hanging: the lease is renewed over ARI instead, with the long
    degraded lease (ARI's set waits behind a playing prompt, so a short one would run
    out mid-prompt and send a live caller to a human), not on every tick; once AMI
    answers again the short lease is back."""
    from ivr.telephony.ami.client import AmiNotConnected

    ami_state = {"mode": "down"}
    ami_log: list[int] = []

    async def ami(name: str, seconds: int) -> None:
        if ami_state["mode"] == "down":
            raise AmiNotConnected("AMI not connected (action AbsoluteTimeout)")
        if ami_state["mode"] == "hung":
            await asyncio.sleep(3600)
        ami_log.append(seconds)

    def ari_renewals() -> list[str]:
        return [q["value"] for m, path, q in fake.requests
                if path == "/channels/c1/variable" and q.get("variable") == "TIMEOUT(absolute)"]

    async with client_for(fake) as client:
        ch = await _leased_call(fake, client, ami)
        await asyncio.sleep(0.7)
        down = ari_renewals()
        ami_state["mode"] = "hung"
        fake.requests.clear()
        await asyncio.sleep(1.2)  # the ARI lease of 30 s is not due again yet
        hung = ari_renewals()
        ami_state["mode"] = "up"
        await asyncio.sleep(0.5)
        await ch.close()
    assert down == ["30"], down  # once, not every 0.2 s
    assert hung == [], hung
    assert ami_log and set(ami_log) == {2}, ami_log


async def test_an_ari_renewal_stuck_behind_a_prompt_does_not_stop_ami_renewals(
        fake: FakeAri) -> None:
    """AMI drops, so the lease falls back to ARI, whose set waits behind the playing
    prompt; AMI comes back a moment later. The short AMI lease must be renewed at once,
    not after the stuck ARI request (seen on the rig: the AMI lease ran out meanwhile
    and a repeat caller went to the fallback queue instead of their agent)."""
    from ivr.telephony.ami.client import AmiNotConnected

    ami_up = asyncio.Event()
    ami_log: list[float] = []

    async def ami(name: str, seconds: int) -> None:
        if not ami_up.is_set():
            raise AmiNotConnected("AMI not connected (action AbsoluteTimeout)")
        ami_log.append(asyncio.get_running_loop().time())

    async with client_for(fake) as client:
        real_set = client.set_variable

        async def behind_a_prompt(channel_id: str, name: str, value: str) -> None:
            if name == "TIMEOUT(absolute)":
                await asyncio.sleep(3600)  # the prompt never ends in this test
            await real_set(channel_id, name, value)

        client.set_variable = behind_a_prompt  # type: ignore[method-assign]
        ch = await _leased_call(fake, client, ami)
        await asyncio.sleep(0.5)  # AMI down: the ARI renewal is stuck
        back = asyncio.get_running_loop().time()
        ami_up.set()
        await asyncio.sleep(0.6)
        await ch.close()
    assert ami_log and ami_log[0] - back < 0.5, ami_log
