"""Through the rig, one call for both of issue 17's voice checks (one node start: the CI
budget). Online, then by phone: a question created with ``POST /api/contacts``, then a
call from that customer's number, reaches the (SIPp) agent with the online text on the
screen-pop, the question never asked. After the agent call: the agent hangs up, the
caller (who stayed on the line; billing is surveyed) is back in the app through
app_queue's ``c`` option and [ivr-csat], keys 4, and ``ivr report`` shows the CSAT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ivr.cli.demo_cmd import demo_moment
from ivr.cli.voice_call import VoiceCallSpec, voice_node
from ivr.clock import PinnedClock
from ivr.config import load_settings
from ivr.domain.model import Outcome
from ivr.storage.db import make_engine, upgrade
from ivr.storage.outbox_tables import contact_events
from ivr.storage.seed import seed_demo
from ivr.storage.tables import contacts
from ivr.testing.centre import clear_queue_members
from ivr.testing.rig import Rig
from ivr.testing.sipcaller import SippAgent

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HANNAH = "+31655556666"  # customer 1008 in the demo CRM
TEXT = "Why is my November invoice 40 euro higher than October?"


def _report(url: str, day: str) -> dict[str, object]:
    env = {**os.environ, "IVR_DATABASE_URL": url}
    out = subprocess.run([sys.executable, "-m", "ivr", "report", "--since", day, "--until", day,
                          "--json"], env=env, capture_output=True, text=True, check=True)
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


async def test_web_question_then_call_reaches_agent_and_keying_4_after_is_the_csat(
        rig: Rig, tmp_path: Path) -> None:
    t0 = time.monotonic()
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=False)
    settings = replace(load_settings(env_file=None, environ={}), database_url=url,
                       data_dir=tmp_path, csat_voice_skills=("billing",))
    phone = SippAgent(rig, 1, hang_up_after_s=2.0)  # the agent ends the call
    await phone.start()
    try:
        async with voice_node(settings, rig=rig, clock=PinnedClock(demo_moment()),
                              hangup_after_s=60) as line:
            centre = line.node.centre
            assert centre is not None
            await clear_queue_members(centre.ami)
            await centre.membership.login("1001")
            async with httpx.AsyncClient(base_url=line.settings.public_url) as web:
                r = await web.post("/api/contacts", json={
                    "customer": "1008", "intent": "invoice_question", "text": TEXT},
                    headers={"Authorization": f"Bearer {line.settings.api_token}"})
            assert r.status_code == 201, r.text
            pops = line.node.app.screenpop.subscribe()
            up = time.monotonic() - t0
            # no question spoken; after the agent hung up, the survey's score by key
            report = await line.place(VoiceCallSpec("", HANNAH, dtmf="4", hangup_after_s=60))
            pushed = [pops.get_nowait() for _ in range(pops.qsize())]
    finally:
        await phone.stop()
    c = report.contact
    assert c is not None, report.error
    invites = phone.invites()
    assert len(invites) == 1, "the agent's phone never rang"
    assert invites[0].get("x-ivr-intent") == "invoice_question", invites[0]
    assert c.outcome is Outcome.AGENT and c.skill == "billing", c.transcript
    said = "\n".join(c.transcript)
    assert "You were asking about" in said, said
    assert "how can i help" not in said.lower(), said  # the question was never asked
    assert c.question == TEXT
    pop = [m["context"] for m in pushed if m.get("session") == c.id]
    assert pop and pop[-1]["question"] == TEXT, pushed  # the agent's screen-pop
    # the survey: told before the queue, asked after the agent hung up
    assert "rate our help" in said and "scale of 1 to 5" in said, said
    assert c.dropped_at is None
    with engine.connect() as conn:
        csat = conn.execute(select(contacts.c.csat).where(contacts.c.id == c.id)).scalar()
        kinds = {r.kind for r in conn.execute(select(contact_events.c.kind).where(
            contact_events.c.contact_id == c.id))}
    engine.dispose()
    assert csat == 4
    assert "csat_score" in kinds and "csat_comment" in kinds  # the customer's timeline
    # the follow-up answer was recorded over ARI
    assert rig.host_path(f"/var/spool/asterisk/recording/csat-{c.id}.wav").exists()
    doc = _report(url, c.started_at.astimezone(UTC).date().isoformat())
    figures = doc["csat"]
    assert isinstance(figures, dict) and figures["mean"] == 4, figures
    print(f"\nnode up {up:.1f} s; call {report.duration_s:.1f} s; code {r.json()['code']}; "
          f"CSAT {csat}; report {figures}")
