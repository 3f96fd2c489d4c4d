"""The after-call voice survey (SURVEY entry) and its opt-in at the hand-off (fakes)."""

from __future__ import annotations

from test_flow import Rig, caller  # the flow tests' fakes

from ivr.domain.flow import CallFlow, ContactLogObserver, FlowConfig, FlowPorts, State
from ivr.domain.flow.survey import read_score
from ivr.domain.model import Outcome, Step, Utterance
from ivr.domain.routing import SimpleRouter
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.fakes import FakeCatalogue, FakeLinks, FakeSurveyLog, FixedClock

NUMBER = "+447700900123"
WORDS = ("one", "two", "three", "four", "five")


async def handed_off(rig: Rig, **cfg: object) -> tuple[str, TextCallChannel]:
    result, ch = await rig.call(["I want to speak to an agent"], caller(NUMBER), **cfg)
    assert result.outcome is Outcome.AGENT and ch.handed_off is not None
    return result.contact.id, ch


async def survey(rig: Rig, session: str, script: list[str]
                 ) -> tuple[FakeSurveyLog, TextCallChannel]:
    previous = await rig.contacts.get(session)
    assert previous is not None
    log = FakeSurveyLog()
    ch = TextCallChannel(caller_info=caller(NUMBER), script=script)
    ports = FlowPorts(directory=rig.directory, knowledge=rig.knowledge,
                      catalogue=FakeCatalogue(), matcher=rig.matcher,
                      router=SimpleRouter(rig.agents), messenger=rig.messenger,
                      links=FakeLinks(), clock=FixedClock(), surveys=log)
    await CallFlow(ch, ports=ports, config=FlowConfig(), resume=previous,
                   entry=State.SURVEY, observers=(ContactLogObserver(rig.contacts),)).run()
    return log, ch


async def test_a_surveyed_skill_is_told_and_flagged_for_the_dialplan() -> None:
    """csat_voice_skills: the caller hears how to take part; IVR_CSAT goes to the dialplan."""
    rig = Rig()
    _, ch = await handed_off(rig, csat_voice_skills=frozenset({"*"}))
    assert ch.handed_off is not None and ch.handed_off.survey
    assert any("rate our help" in t.text for t in ch.turns if t.speaker == "ivr")
    _, plain = await handed_off(Rig())
    assert plain.handed_off is not None and not plain.handed_off.survey
    assert not any("rate our help" in t.text for t in plain.turns)


async def test_key_4_is_the_score_and_the_follow_up_is_kept() -> None:
    rig = Rig()
    session, _ = await handed_off(rig)
    log, ch = await survey(rig, session, ["dtmf:4", "the wait was long"])
    assert log.scores == {session: 4}
    assert log.comments == {session: ("the wait was long", None)}  # text: no recording
    after = await rig.contacts.get(session)
    assert after is not None and after.outcome is Outcome.AGENT and after.dropped_at is None
    assert any(s.step is Step.FEEDBACK and s.detail.get("score") == 4 for s in after.steps)
    assert "Goodbye" in ch.turns[-1].text or any("feedback" in t.text for t in ch.turns)


async def test_a_spoken_number_counts_and_nonsense_gets_one_retry() -> None:
    rig = Rig()
    session, _ = await handed_off(rig)
    log, _ = await survey(rig, session, ["banana", "four I guess", "silence"])
    assert log.scores == {session: 4} and session not in log.comments
    log, ch = await survey(rig, session, ["dtmf:9", "silence"])
    assert log.scores == {}
    assert sum("1 to 5" in t.text for t in ch.turns if t.speaker == "ivr") == 2


async def test_hanging_up_in_the_survey_is_no_drop_off() -> None:
    """The caller was served: leaving the survey keeps the agent outcome, no drop step."""
    rig = Rig()
    session, _ = await handed_off(rig)
    log, _ = await survey(rig, session, ["hangup"])
    after = await rig.contacts.get(session)
    assert after is not None and after.outcome is Outcome.AGENT and after.dropped_at is None
    assert log.scores == {}


def test_read_score() -> None:
    assert read_score(Utterance(text="", dtmf="5"), WORDS) == 5
    assert read_score(Utterance(text="", dtmf="0"), WORDS) is None
    assert read_score(Utterance(text="a 3"), WORDS) == 3
    assert read_score(Utterance(text="two"), WORDS) == 2
    assert read_score(Utterance(text="ten"), WORDS) is None
    assert read_score(None, WORDS) is None
