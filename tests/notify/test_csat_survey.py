"""CSAT by SMS: asked once after an agent call of a surveyed skill, the digit reply (signed
Twilio inbound webhook) lands on the contact and in the report, then one follow-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, insert, select
from twilio.request_validator import RequestValidator
from twilio_helpers import TOKEN

from ivr.domain.csat import parse_score
from ivr.notify.csat import CsatSurvey
from ivr.notify.outbox import OutboxStore
from ivr.storage.csat import SqlSurveys
from ivr.storage.reports import SqlReportStore
from ivr.storage.tables import contacts
from ivr.testing.fakes import FakeMessenger
from ivr.web.twilio_routes import twilio_router

PUBLIC = "https://ivr.example.com"
CALLER = "+31611113333"


@pytest.fixture
def survey(engine: Engine) -> tuple[CsatSurvey, FakeMessenger]:
    messenger = FakeMessenger()
    return CsatSurvey(SqlSurveys(engine), messenger, frozenset({"billing"})), messenger


@pytest.fixture
async def client(store: OutboxStore, survey: tuple[CsatSurvey, FakeMessenger]
                 ) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(twilio_router(store=store, auth_token=TOKEN, public_base_url=PUBLIC,
                                     on_reply=survey[0].on_reply))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://internal:8080") as c:
        yield c


def _contact(engine: Engine, cid: str, skill: str, language: str = "nl") -> None:
    with engine.begin() as conn:
        conn.execute(insert(contacts).values(
            id=cid, channel="voice", caller=CALLER, language=language, skill=skill,
            started_at=datetime.now(UTC) - timedelta(minutes=5), outcome="agent",
            scenario="S4", intent="invoice_question", agent_interface="PJSIP/agent1",
            queue_wait_s=12, talk_s=200, transcript=[], steps=[]))


async def _reply(client: httpx.AsyncClient, body: str, sid: str) -> None:
    form = {"From": CALLER, "To": "+3197010000001", "Body": body, "MessageSid": sid}
    sig = RequestValidator(TOKEN).compute_signature(PUBLIC + "/twilio/inbound", form)
    r = await client.post("/twilio/inbound", data=form, headers={"X-Twilio-Signature": sig})
    assert r.status_code == 200


async def test_survey_asked_once_scored_by_digit_then_follow_up(
        engine: Engine, client: httpx.AsyncClient,
        survey: tuple[CsatSurvey, FakeMessenger]) -> None:
    """Billing call -> Dutch question; '4' -> csat 4 + follow-up; text -> comment; report."""
    csat, messenger = survey
    _contact(engine, "c-tech", "tech")
    assert not await csat.after_agent_call("c-tech")  # tech is not surveyed
    _contact(engine, "c-bill", "billing")
    assert await csat.after_agent_call("c-bill")
    assert not await csat.after_agent_call("c-bill")  # asked once
    assert len(messenger.sent) == 1 and "Hoe tevreden" in messenger.sent[0]["body"]
    await _reply(client, "dunno", "SMa1")  # not a score: ignored
    await _reply(client, " 4 ", "SMa2")
    await _reply(client, "sneller opnemen graag", "SMa3")
    with engine.connect() as conn:
        row = conn.execute(select(contacts.c.csat, contacts.c.csat_comment).where(
            contacts.c.id == "c-bill")).one()
    assert (row.csat, row.csat_comment) == (4, "sneller opnemen graag")
    assert "Wat kunnen we" in messenger.sent[1]["body"] and len(messenger.sent) == 2
    report = SqlReportStore(engine).report_sync(datetime.now(UTC) - timedelta(hours=1),
                                                datetime.now(UTC)).as_dict()
    assert report["csat"]["by_skill"] == [{"skill": "billing", "responses": 1, "mean": 4.0,
                                           "distribution": {"1": 0, "2": 0, "3": 0, "4": 1,
                                                            "5": 0}}]


def test_scores_are_single_digits_one_to_five() -> None:
    """'5', ' 3!' are scores; '6', '45', 'four', '' are not."""
    assert [parse_score(b) for b in ("5", " 3!", "6", "45", "four", "")] == [
        5, 3, None, None, None, None]
