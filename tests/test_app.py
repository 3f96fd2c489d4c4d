"""The composed application: real SQLite, real matcher, real Twilio sandbox, real web app."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ivr.app import LINK_KEYS, contact_skill
from ivr.cli import cli
from ivr.cli.call_cmd import run_text_call
from ivr.cli.demo_cmd import SAMPLES, demo_moment, run_text_demo
from ivr.clock import PinnedClock
from ivr.config import Settings, load_settings
from ivr.nlu.catalogue import load_catalogue
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import KNOWLEDGE, seed_demo
from ivr.testing.app import running_app
from ivr.web.app import create_web_app

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine)
    engine.dispose()
    return replace(load_settings(env_file=None, environ={}), database_url=url,
                   data_dir=tmp_path, api_token="t0ken-for-tests")


async def test_demo_samples_land_in_their_scenarios_with_real_data(settings: Settings) -> None:
    """Every sample conversation reaches the expected scenario and intent; S1 speaks DB data;
    S2/S3 links reach the Twilio sandbox."""
    reports, sandbox_log = await run_text_demo(settings, echo=False)
    for sample, report in zip(SAMPLES, reports, strict=True):
        got = report.as_dict()
        assert (got["scenario"], got["intent"]) == (sample.expect_scenario,
                                                     sample.expect_intent), sample.title
    order_call = reports[0].as_dict()
    spoken = " ".join(t["text"] for t in order_call["dialogue"] if t["speaker"] == "ivr")
    assert "B 7 7 7 3 1" in spoken and "being prepared" in spoken  # from the orders table
    assert "address-change?t=" in sandbox_log and "chat?t=" in sandbox_log
    assert "-> delivered" in sandbox_log


def test_catalogue_link_keys_and_answers_are_wired(settings: Settings) -> None:
    """Every link_key has a URL and every kb: answer has demo knowledge in both languages."""
    catalogue = load_catalogue(Path("grammars"))
    for name in catalogue.intents:
        spec = catalogue.spec(name)
        assert spec is not None
        if spec.link_key:
            assert spec.link_key in LINK_KEYS, name
        if spec.answer_ref and spec.answer_ref.startswith("kb:"):
            key = spec.answer_ref[3:]
            assert set(KNOWLEDGE[key]) == {"en", "nl"}, name


async def test_screenpop_api_serves_transcript_and_customer(settings: Settings) -> None:
    """After a hand-off the agent desktop gets question, transcript and customer card; and
    the skill a dead node's adopter would give the record."""
    async with running_app(settings, clock=PinnedClock(demo_moment())) as app:
        report = await run_text_call(app, settings, from_number="+31655556666",
                                     script=["I have a question about my invoice"], echo=False)
        session = report.result.contact.id
        transport = httpx.ASGITransport(app=create_web_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://ivr") as web:
            denied = await web.get(f"/api/contacts/{session}")
            assert denied.status_code == 401
            ok = await web.get(f"/api/contacts/{session}",
                               headers={"Authorization": "Bearer t0ken-for-tests"})
            assert ok.status_code == 200
            body = ok.json()
            assert body["question"] == "I have a question about my invoice"
            assert body["intent"] == "invoice_question" and body["skill"] == "billing"
            assert any("invoice" in line for line in body["transcript"])
            assert body["customer"]["name"] == "Hannah Lee"
            assert body["customer"]["history"][0]["session"] == session
            missing = await web.get("/api/contacts/nope",
                                    headers={"Authorization": "Bearer t0ken-for-tests"})
            assert missing.status_code == 404
            report_resp = await web.get("/api/reports/contact-reasons",
                                        headers={"Authorization": "Bearer t0ken-for-tests"})
            reasons = dict(tuple(x) for x in report_resp.json()["by_intent"])
            assert reasons["invoice_question"] == 1
        # A node that died with this call would leave the record to the orphan adopter:
        # its skill (ivr.app.contact_skill) is the record's own, else its intent's, else
        # its saved question matched again (when confident); nothing to go on gives None.
        saved = report.result.contact
        cases = [(saved, "billing"), (replace(saved, skill=None), "billing"),
                 (replace(saved, skill=None, intent=None), "billing"),
                 (replace(saved, skill=None, intent=None, question="blah blah blah"), None),
                 (replace(saved, skill=None, intent=None, question=None), None)]
        assert [await contact_skill(app, c) for c, _ in cases] == [s for _, s in cases]


async def test_dead_database_during_call_goes_to_human_and_is_spooled(
        settings: Settings, tmp_path: Path) -> None:
    """With the database gone mid-life, the caller reaches a human and the contact is spooled."""
    async with running_app(settings) as app:
        app.engine.dispose()
        Path(settings.database_url.removeprefix("sqlite:///")).unlink()  # noqa: ASYNC240
        report = await run_text_call(app, settings, from_number="+447700900123",
                                     script=["where is my order"], echo=False)
        assert report.result.outcome.value == "error_to_agent"
        assert report.result.decision is not None and report.result.decision.queue == "general"
    spooled = "".join(p.read_text() for p in (tmp_path / "spool").glob("contacts-*.jsonl"))
    assert report.result.contact.id in spooled


def test_config_check_names_the_bad_variable() -> None:
    """A bad value stops start-up with the variable and what is allowed."""
    runner = CliRunner()
    bad = runner.invoke(cli, ["config", "check"], env={"IVR_DATABASE_URL": "nonsense"})
    assert bad.exit_code != 0 and "IVR_DATABASE_URL" in bad.output
    neg = runner.invoke(cli, ["config", "check"], env={"IVR_NO_INPUT_TIMEOUT_S": "-2"})
    assert neg.exit_code != 0 and "IVR_NO_INPUT_TIMEOUT_S" in neg.output
    lang = runner.invoke(cli, ["config", "check"], env={"IVR_DEFAULT_LANGUAGE": "fr"})
    assert lang.exit_code != 0 and "en, nl" in lang.output
    window = runner.invoke(cli, ["config", "check"], env={"IVR_WHISPER_WINDOW": "wide"})
    assert window.exit_code != 0 and "IVR_WHISPER_WINDOW" in window.output
    ok = runner.invoke(cli, ["config", "check", "--json"],
                       env={"IVR_DATABASE_URL": "postgresql+psycopg://u:pw-s3cr3t@db/kanaal"})
    assert ok.exit_code == 0 and "pw-s3cr3t" not in ok.output and "***" in ok.output


def test_unknown_setting_in_env_file_is_an_error(tmp_path: Path) -> None:
    """A typo in .env fails loudly instead of being ignored."""
    env = tmp_path / ".env"
    env.write_text("IVR_DATABSE_URL=sqlite:///x.db\n")
    with pytest.raises(ValueError, match="IVR_DATABSE_URL"):
        load_settings(env_file=env, environ={})


async def test_screenpop_is_pushed_to_agent_desktops(settings: Settings) -> None:
    """A desktop on /ws/screenpop (with a single-use ticket) receives the hand-off context
    as the caller is transferred; a token in the URL is refused."""
    import asyncio
    import json

    import websockets

    from ivr.web.app import free_port, web_server

    port = free_port()
    # Agents are on duty at the demo moment (a hand-off happens, so a pop is pushed).
    async with running_app(settings, clock=PinnedClock(demo_moment())) as app, \
            web_server(create_web_app(app), "127.0.0.1", port):
        url = f"ws://127.0.0.1:{port}/ws/screenpop"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{url}?token=t0ken-for-tests")
        assert refused.value.response.status_code == 403
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            ticket = (await http.post("/api/ws-ticket", headers={
                "Authorization": "Bearer t0ken-for-tests"})).json()["ticket"]
        async with websockets.connect(f"{url}?ticket={ticket}") as desk:
            report = await run_text_call(app, settings, from_number="+31655556666",
                                         script=["I have a question about my invoice"],
                                         echo=False)
            pop = json.loads(await asyncio.wait_for(desk.recv(), 5))
    assert pop["session"] == report.result.contact.id
    assert pop["context"]["customer"]["name"] == "Hannah Lee"
    assert pop["context"]["question"] == "I have a question about my invoice"
    assert pop["context"]["skill"] == "billing"

