"""The contact log observer saves write-behind: a step's save is off the reply's path,
the writes of one contact stay in order, a failure is spooled or logged, and a call's
end (a hang-up right after the reply included) leaves the record complete."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from ivr.domain.flow import CallFlow, ContactLogObserver, FlowConfig, FlowPorts
from ivr.domain.flow.events import Ended, StepTaken
from ivr.domain.model import (
    Caller,
    Contact,
    ContactChannel,
    ContactSnapshot,
    Outcome,
    Presentation,
    Step,
    StepRecord,
)
from ivr.domain.routing import SimpleRouter
from ivr.storage.db import make_engine, upgrade
from ivr.storage.repositories import SpoolingContactLog, SqlContactLog
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import (
    FakeAgentPool,
    FakeCatalogue,
    FakeDirectory,
    FakeKnowledge,
    FakeLinks,
    FakeMessenger,
    FixedClock,
    KeywordMatcher,
)

AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


class GatedLog:
    """A contact log whose saves wait for ``gate`` and are recorded in order."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.gate = asyncio.Event()
        self.saved: list[ContactSnapshot] = []
        self.records: dict[str, ContactSnapshot] = {}
        self._fail = fail_first

    async def save(self, contact: ContactSnapshot) -> None:
        await self.gate.wait()
        if self._fail:
            self._fail -= 1
            raise RuntimeError("contact log bug")
        self.saved.append(contact)
        self.records[contact.id] = contact

    async def get(self, contact_id: str) -> ContactSnapshot | None:
        return self.records.get(contact_id)


def _contact() -> Contact:
    return Contact(id="s1", channel=ContactChannel.VOICE, caller="+31612345678",
                   started_at=AT, language="en")


def _step(c: Contact, step: Step) -> tuple[StepTaken, ContactSnapshot]:
    ev = StepTaken(step, AT, {})
    c.steps.append(StepRecord(step=step, at=AT, detail={}))
    return ev, c.snapshot()


async def test_a_step_returns_before_its_save_and_writes_stay_in_order() -> None:
    """Three steps while the first save is held: each returns at once (the reply is
    requested first); the saves that follow never write an older record after a newer
    one, and the end waits for them and writes the final record."""
    log = GatedLog()
    obs = ContactLogObserver(log)
    c = _contact()
    for step in (Step.QUESTION, Step.INTENT, Step.SCENARIO):
        ev, snap = _step(c, step)
        async with asyncio.timeout(1):  # would hang if the step awaited its save
            await obs.on_event(ev, snap)
    assert log.saved == []  # nothing written yet: the gate is shut
    await asyncio.sleep(0)
    log.gate.set()
    c.outcome, c.ended_at = Outcome.SELF_SERVED, AT
    await obs.on_event(Ended(Outcome.SELF_SERVED, AT), c.snapshot())
    counts = [len(s.steps) for s in log.saved]
    assert counts == sorted(counts) and counts[-1] == 3
    assert log.saved[-1].outcome is Outcome.SELF_SERVED
    assert log.records["s1"].outcome is Outcome.SELF_SERVED and obs.failed == 0


async def test_a_failed_save_is_logged_and_the_next_one_still_written() -> None:
    log = GatedLog(fail_first=1)
    log.gate.set()
    obs = ContactLogObserver(log)
    c = _contact()
    await obs.on_event(*_step(c, Step.QUESTION))
    await obs.flush()
    assert obs.failed == 1 and log.saved == []
    c.outcome = Outcome.ABANDONED
    await obs.on_event(Ended(Outcome.ABANDONED, AT), c.snapshot())
    assert log.records["s1"].outcome is Outcome.ABANDONED and obs.failed == 1


async def test_a_save_during_a_database_outage_goes_to_the_spool(tmp_path: Path) -> None:
    """Write-behind keeps the spool: with the database down the step's record is
    spooled, and replayed once it is back."""
    url = f"sqlite:///{tmp_path / 'late.db'}"
    spool = tmp_path / "spool" / "node.jsonl"
    log = SpoolingContactLog(SqlContactLog(make_engine(url)), spool)
    obs = ContactLogObserver(log)
    c = _contact()
    await obs.on_event(*_step(c, Step.QUESTION))
    await obs.flush()
    assert spool.exists() and "s1" in spool.read_text() and obs.failed == 0
    upgrade(url)
    c.outcome = Outcome.ABANDONED
    await obs.on_event(Ended(Outcome.ABANDONED, AT), c.snapshot())
    stored = await log.get("s1")
    assert stored is not None and stored.outcome is Outcome.ABANDONED
    assert not spool.exists()


async def test_a_hang_up_right_after_the_reply_keeps_the_answer_and_outcome() -> None:
    """The caller hangs up at "did that help?" while every save is still held: the
    flow's end waits for the writer, so the stored record has the answer and the
    drop-off, not a step-old copy."""
    log = GatedLog()
    ch = TextCallChannel(caller_info=Caller(raw="+31699999999", number="+31699999999",
                                            presentation=Presentation.VALID),
                         script=["what are your opening hours", "hangup"])
    knowledge = FakeKnowledge(answers={("opening_hours", "en"): "Open 8 to 18."})
    ports = FlowPorts(directory=FakeDirectory(), knowledge=knowledge,
                      catalogue=FakeCatalogue(), matcher=KeywordMatcher(),
                      router=SimpleRouter(FakeAgentPool()), messenger=FakeMessenger(),
                      links=FakeLinks(), clock=FixedClock())
    flow = CallFlow(ch, ports=ports, config=FlowConfig(),
                    observers=(ContactLogObserver(log),))
    run = asyncio.create_task(flow.run())
    # The call runs to its end while no save can finish: it waits there for the writer.
    done, _ = await asyncio.wait({run}, timeout=2)
    assert not done
    # The answer was said with nothing saved yet (a save awaited first would block it).
    assert "Open 8 to 18" in "\n".join(t.text for t in ch.turns)
    assert log.saved == []
    log.gate.set()
    result = await run
    stored = log.records[result.contact.id]
    assert stored.action == "answer:opening_hours"
    assert Step.ACTION in [s.step for s in stored.steps]
    assert stored.outcome is Outcome.ABANDONED and stored.dropped_at is Step.FEEDBACK
    assert stored.ended_at is not None
