"""A node that starts adopts the calls a dead node left in its Stasis app."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from test_ari_client import APP, fake, make_client  # the ARI tests' fixtures

from ivr.clock import SystemClock
from ivr.domain.routing import fallback_decision
from ivr.telephony.ari.adopt import OrphanAdopter
from ivr.telephony.ari.app import StasisApp
from ivr.testing.fake_ari import FakeAri
from ivr.testing.fake_ari import channel_json as chan
from ivr.testing.fakes import InMemoryContactLog
from ivr.web.push import ScreenPopHub

__all__ = ["fake"]  # a fixture, used by name


class Sounds:
    async def resolve(self, prompt: Any) -> str:
        return f"sound:/x/{prompt.key}"


def in_stasis(cid: str, app: str, name: str = "PJSIP/caller-1") -> dict[str, Any]:
    ch = chan(cid, name=name)
    ch["dialplan"].update(app_name="Stasis", app_data=f"{app},cli_trusted=0")
    return ch


async def test_orphans_go_to_a_human_under_their_session_and_their_media_is_cleared(
        fake: FakeAri) -> None:
    """On its first ARI connection the app finds a caller left in Stasis(its app) by a
    dead node: hands it to the fallback queue with its old session and
    X-IVR-Fallback node_lost (ivr.telephony.ari.adopt), hangs up its snoop/externalMedia
    legs (and those of a caller gone meanwhile) and destroys their bridges. Another
    app's caller, a caller in the dialplan and one arriving after a websocket gap (a
    live call by then) are left alone."""
    fake.channels["dead1"] = in_stasis("dead1", APP)
    fake.variables[("dead1", "IVR_SESSION")] = "sess-dead1"
    fake.channels["dead1-snoop"] = in_stasis("dead1-snoop", APP, "Snoop/PJSIP/caller-1-0001")
    fake.channels["dead1-em"] = in_stasis("dead1-em", APP, "UnicastRTP/127.0.0.1:5-1")
    fake.channels["gone-em"] = in_stasis("gone-em", APP, "UnicastRTP/127.0.0.1:6-1")
    fake.bridges["dead1-br"] = ["dead1-snoop", "dead1-em"]
    fake.bridges["gone-br"] = ["gone-em"]
    fake.channels["other"] = in_stasis("other", "another-app")
    fake.channels["queued"] = chan("queued")  # in the dialplan (a queue), no app
    served: list[str] = []

    async def flow(channel: Any) -> None:
        served.append(channel.session_id)

    client = make_client(fake)
    adopter = OrphanAdopter(
        contacts=InMemoryContactLog(), screenpop=ScreenPopHub(), clock=SystemClock(),
        fail_safe=lambda reason, session, skill: fallback_decision(reason, session))
    app = StasisApp(client, flow_runner=flow, prompts=Sounds(), recognizer=None,
                    adopter=adopter)
    task = asyncio.create_task(app.run())
    try:
        for _ in range(200):
            if app.adopted and "dead1-br" not in fake.bridges and "gone-br" not in fake.bridges:
                break
            await asyncio.sleep(0.05)
        # a websocket gap later: nothing is adopted again (they would be live calls)
        fake.channels["dead2"] = in_stasis("dead2", APP)
        for ws in list(fake.sockets):
            await ws.close()
        await asyncio.sleep(1.0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
    assert app.adopted == 1
    assert fake.variables[("dead1", "__IVR_SESSION")] == "sess-dead1"
    assert fake.variables[("dead1", "__IVR_FALLBACK")] == "node_lost"
    assert fake.variables[("dead1", "IVR_QUEUE")] == "general"
    assert any(p == "/channels/dead1/continue" for _, p, _ in fake.requests)
    assert not {"dead1-snoop", "dead1-em", "gone-em"} & set(fake.channels)
    assert not {"dead1-br", "gone-br"} & set(fake.bridges)
    assert {"other", "queued", "dead2"} <= set(fake.channels)
    touched = {p.split("/")[2] for _, p, _ in fake.requests if p.startswith("/channels/")}
    assert not {"other", "queued", "dead2"} & touched, touched
    assert served == []
