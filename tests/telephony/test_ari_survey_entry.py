"""A caller back from the queue after the agent hung up (StasisStart csat, SESSION) runs
the survey runner; a broken survey lets the caller go instead of queueing them again."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from test_ari_client import fake, make_client, running  # the ARI tests' fixtures

from ivr.telephony.ari.app import CSAT, StasisApp
from ivr.testing.fake_ari import FakeAri

__all__ = ["fake"]  # a fixture, used by name


class Sounds:
    async def resolve(self, prompt: Any) -> str:
        return f"sound:/x/{prompt.key}"


async def test_survey_entry_runs_the_survey_and_a_failure_just_hangs_up(
        fake: FakeAri) -> None:
    surveyed: list[tuple[str, str]] = []

    async def flow(channel: Any) -> None:
        raise AssertionError("a survey caller never starts a new call flow")

    async def survey(channel: Any, session: str) -> None:
        if session == "broken":
            raise RuntimeError("survey failed")
        surveyed.append((channel.session_id, session))

    client = make_client(fake)
    async with running(client, fake):
        app = StasisApp(client, flow_runner=flow, survey_runner=survey, prompts=Sounds(),
                        recognizer=None)
        task = asyncio.create_task(app.run())
        await fake.start_call("back", "0201234567", args=(CSAT, "sess-7"))
        await fake.start_call("bad", "0201234568", args=(CSAT, "broken"))
        for _ in range(200):
            if app.completed + app.failed == 2 and "bad" not in fake.channels:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert surveyed == [("sess-7", "sess-7")]
    assert (app.completed, app.failed) == (1, 1)
    assert "bad" not in fake.channels  # hung up
    assert ("bad", "IVR_QUEUE") not in fake.variables  # not sent to a queue
