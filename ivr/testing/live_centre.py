"""A real ``ContactCentre`` whose Asterisk side is :class:`FakeAmiServer`.

    async with fake_centre(core.engine, core.settings) as (centre, ami):
        web = create_web_app(core, centre=centre)
        ...
        await ami.caller_join("ivr-billing", "1700.1")   # the live state follows

Everything above AMI is the production code: the agent directory on the given
database, membership (QueueAdd/Remove/Pause), the state feed and its resyncs.
Browser tests and ``scripts/screenshots.py`` use it to show live queue state
without the Asterisk rig.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import Engine

from ivr.config import Settings
from ivr.contact_centre.service import ContactCentre
from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.repositories import SqlAgentPool
from ivr.storage.seed import DEMO_SPLITS, SKILLS
from ivr.telephony.ami import AmiClient, Backoff
from ivr.testing.fake_ami import FakeAmiServer

AMI_USER, AMI_SECRET = "kanaal", "fake-ami-secret"
# The queues dialplan/queues.conf defines for the demo skills and their split sides:
# app_queue refuses QueueAdd to a queue it does not know, and so does the fake.
DEMO_QUEUES = (*(f"ivr-{name}" for name, _, _ in SKILLS),
               *(f"ivr-{skill}-{side}" for skill in DEMO_SPLITS
                 for side in ("own", "partner")))


@contextlib.asynccontextmanager
async def fake_centre(engine: Engine, settings: Settings, *, sync_timeout_s: float = 10.0
                      ) -> AsyncIterator[tuple[ContactCentre, FakeAmiServer]]:
    """A running ``ContactCentre`` (first resync done) against a fresh FakeAmiServer."""
    async with FakeAmiServer(username=AMI_USER, secret=AMI_SECRET) as ami:
        ami.add_queue(*DEMO_QUEUES)
        client = AmiClient("127.0.0.1", ami.port, username=AMI_USER, secret=AMI_SECRET,
                           backoff=Backoff(initial_s=0.05, cap_s=0.2), action_timeout_s=2.0)
        # No overflow chain: the fake has no calls to overflow, only queue state to show.
        centre = ContactCentre(
            ami=client, directory=SqlAgentDirectory(engine), pool=SqlAgentPool(engine),
            overflow={}, vip_tiers=settings.vip_tiers,
            always_pin=frozenset(settings.require_pin_for),
            stale_limit_s=settings.routing_stale_s,
            overflow_after_s=settings.overflow_after_s,
            repeat_window_days=settings.repeat_window_days)
        task = asyncio.create_task(centre.run(), name="fake-centre")
        try:
            async with asyncio.timeout(sync_timeout_s):
                await centre.feed.synced.wait()
            yield centre, ami
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
