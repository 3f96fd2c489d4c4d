"""Orphans of a dead node (ivr.telephony.ari.adopt), over ARI's wire format (FakeAri).

The real-Asterisk proof is tests/e2e/test_takeover.py; this one pins which channels are
adopted, what the hand-off carries and how the record is closed, in milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from ivr.clock import PinnedClock
from ivr.domain.model import ContactChannel, ContactSnapshot, Outcome, Step, StepRecord
from ivr.domain.routing import fallback_decision
from ivr.telephony.ari.adopt import Adopted, OrphanAdopter
from ivr.telephony.ari.client import AriClient
from ivr.testing.fake_ari import FakeAri, channel_json
from ivr.testing.fakes import InMemoryContactLog
from ivr.web.push import ScreenPopHub

AT = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server = FakeAri(username="ivr", password="secret", app="ivr")
    async with server.serve():
        yield server


def _in_stasis(fake: FakeAri, cid: str, app: str = "ivr", name: str = "PJSIP/caller-1",
               session: str | None = None) -> None:
    ch: dict[str, Any] = channel_json(cid, name=name)
    ch["dialplan"].update(app_name="Stasis", app_data=f"{app},cli_trusted=0")
    fake.channels[cid] = ch
    if session is not None:
        fake.variables[(cid, "IVR_SESSION")] = session


def _asked(session: str) -> ContactSnapshot:
    return ContactSnapshot(
        id=session, channel=ContactChannel.VOICE, caller="+31655557777", started_at=AT,
        language="en", customer_id=7, question="I want to cancel my contract",
        intent="cancel_contract", confidence=0.9, scenario=None, skill="retention",
        action=None, outcome=None, dropped_at=None, ended_at=None,
        transcript=("ivr: how can I help?", "caller: I want to cancel my contract"),
        steps=(StepRecord(Step.GREETING, AT), StepRecord(Step.QUESTION, AT)))


async def test_the_dead_nodes_caller_goes_to_a_human_with_the_session_and_skill(
        fake: FakeAri) -> None:
    _in_stasis(fake, "c-1", session="s-1")            # the dead node's caller
    _in_stasis(fake, "c-2", session="s-2")            # a call this node holds
    _in_stasis(fake, "c-3", app="test-other")         # another app's caller
    fake.channels["c-4"] = channel_json("c-4")        # not in Stasis at all
    _in_stasis(fake, "c-5", name="Snoop/c-1-1")       # the dead call's media leg
    contacts = InMemoryContactLog()
    await contacts.save(_asked("s-1"))
    hub = ScreenPopHub()
    desk = hub.subscribe()
    adopter = OrphanAdopter(
        contacts=contacts, screenpop=hub, clock=PinnedClock(AT),
        fail_safe=lambda reason, session, skill: fallback_decision(
            reason, session, skill=skill or "general"))
    client = AriClient(fake.base_url, username="ivr", password="secret", app="ivr")
    try:
        adopted = await adopter.adopt(client, lambda cid: cid == "c-2")
    finally:
        await client.aclose()
    assert [(a.channel_id, a.session_id, a.queue) for a in adopted] == [
        ("c-5", "", ""), ("c-1", "s-1", "retention")]  # media legs first
    sets = {(cid, name): value for (cid, name), value in fake.variables.items()}
    assert sets[("c-1", "__IVR_FALLBACK")] == "node_lost"
    assert sets[("c-1", "__IVR_SESSION")] == "s-1"
    assert sets[("c-1", "IVR_QUEUE")] == "retention"
    continued = [(p, q) for m, p, q in fake.requests if p.endswith("/continue")]
    assert continued == [("/channels/c-1/continue", {"context": "ivr-handoff",
                                                     "extension": "s", "priority": "1"})]
    assert "c-5" not in fake.channels  # hung up
    assert {"c-2", "c-3", "c-4"} <= set(fake.channels)  # untouched
    record = contacts.records["s-1"]
    assert record.outcome is Outcome.ERROR_TO_AGENT and record.ended_at == AT
    assert record.steps[-1].step is Step.HANDOFF
    assert record.steps[-1].detail["reason"] == "node_lost"
    pop = desk.get_nowait()
    assert pop["session"] == "s-1"
    assert pop["context"]["question"] == "I want to cancel my contract"


async def test_an_orphan_without_a_session_still_gets_the_fallback_queue(
        fake: FakeAri) -> None:
    _in_stasis(fake, "c-9")  # labelled never (a node of before this version)
    adopter = OrphanAdopter(
        contacts=InMemoryContactLog(), screenpop=ScreenPopHub(), clock=PinnedClock(AT),
        fail_safe=lambda reason, session, skill: fallback_decision(
            reason, session or None, skill=skill or "general"))
    client = AriClient(fake.base_url, username="ivr", password="secret", app="ivr")
    try:
        adopted = await adopter.adopt(client, lambda _cid: False)
    finally:
        await client.aclose()
    assert [(a.channel_id, a.queue, a.had_contact) for a in adopted] == [
        ("c-9", "general", False)]
    assert fake.variables[("c-9", "IVR_QUEUE")] == "general"


async def _adopt_all(fake: FakeAri, contacts: InMemoryContactLog, **options: Any
                     ) -> list[Adopted]:
    """Every orphan of app ``ivr`` adopted, none held by a live call; general by default."""
    adopter = OrphanAdopter(
        contacts=contacts, screenpop=ScreenPopHub(), clock=PinnedClock(AT), **options,
        fail_safe=lambda reason, session, skill: fallback_decision(
            reason, session, skill=skill or "general"))
    client = AriClient(fake.base_url, username="ivr", password="secret", app="ivr")
    try:
        return await adopter.adopt(client, lambda _cid: False)
    finally:
        await client.aclose()


@pytest.mark.parametrize(("guess", "queue"), [("retention", "retention"), (None, "general"),
                                              (RuntimeError("matcher down"), "general")])
async def test_a_contact_killed_before_routing_goes_to_the_skill_its_question_needs(
        fake: FakeAri, guess: str | Exception | None, queue: str) -> None:
    # Killed between saving the question and routing it: no skill on the record yet.
    _in_stasis(fake, "c-7", session="s-7")
    contacts = InMemoryContactLog()
    await contacts.save(replace(_asked("s-7"), intent=None, skill=None))
    seen: list[str | None] = []

    async def skill_of(contact: ContactSnapshot) -> str | None:
        seen.append(contact.question)
        if isinstance(guess, Exception):
            raise guess
        return guess

    adopted = await _adopt_all(fake, contacts, skill_of=skill_of)
    assert seen == ["I want to cancel my contract"]
    assert [(a.channel_id, a.queue) for a in adopted] == [("c-7", queue)]
    assert contacts.records["s-7"].skill == queue


@pytest.mark.parametrize("ami_fails", [False, True])
async def test_orphans_are_moved_over_ami_when_it_answers_else_over_ari(
        fake: FakeAri, ami_fails: bool) -> None:
    """AMI's Setvar and Redirect act at once (ARI's wait behind the dead node's prompt);
    an AMI that fails still leaves the ARI path, so the caller reaches a human."""
    for cid in ("c-1", "c-2", "c-3"):
        _in_stasis(fake, cid, session=f"s-{cid}", name=f"PJSIP/caller-{cid}")
    moved: list[tuple[str, str, tuple[str, str, int]]] = []

    async def move(channel: str, variables: Mapping[str, str],
                   target: tuple[str, str, int]) -> object:
        if ami_fails:
            raise ConnectionError("AMI down")
        moved.append((channel, variables["__IVR_FALLBACK"], target))
        return None

    adopted = await _adopt_all(fake, InMemoryContactLog(), move=move)
    assert sorted(a.channel_id for a in adopted) == ["c-1", "c-2", "c-3"]
    continued = sorted(p for m, p, q in fake.requests if p.endswith("/continue"))
    if ami_fails:
        assert moved == []
        assert continued == [f"/channels/{c}/continue" for c in ("c-1", "c-2", "c-3")]
        assert fake.variables[("c-2", "__IVR_FALLBACK")] == "node_lost"
    else:
        assert sorted(moved) == [(f"PJSIP/caller-{c}", "node_lost", ("ivr-handoff", "s", 1))
                                 for c in ("c-1", "c-2", "c-3")]
        assert continued == []  # nothing went over ARI
