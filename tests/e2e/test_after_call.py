"""After the agent call, through the rig: a caller of a surveyed skill stays on the line
when the (SIPp) agent hangs up, app_queue's ``c`` option brings them back into the app
([ivr-csat]), they key 4, and ``ivr report`` shows the CSAT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC
from pathlib import Path

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

INVOICE = "I have a question about my invoice"
HANNAH = "+31655556666"


def _report(url: str, day: str) -> dict[str, object]:
    env = {**os.environ, "IVR_DATABASE_URL": url}
    out = subprocess.run([sys.executable, "-m", "ivr", "report", "--since", day, "--until", day,
                          "--json"], env=env, capture_output=True, text=True, check=True)
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


async def test_agent_hangs_up_caller_keys_4_and_the_report_has_the_csat(
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
            # the question, then (after the agent hung up) the survey's score by key
            print(f"\nnode up after {time.monotonic() - t0:.1f} s")
            report = await line.place(VoiceCallSpec(INVOICE, HANNAH, dtmf="4",
                                                    hangup_after_s=60))
    finally:
        await phone.stop()
    c = report.contact
    assert c is not None, report.error
    assert len(phone.invites()) == 1, "the agent's phone never rang"
    assert c.outcome is Outcome.AGENT and c.skill == "billing", c.transcript
    assert any("rate our help" in t for t in c.transcript), c.transcript  # told before
    assert any("scale of 1 to 5" in t for t in c.transcript), c.transcript
    assert c.dropped_at is None
    with engine.connect() as conn:
        csat = conn.execute(select(contacts.c.csat).where(contacts.c.id == c.id)).scalar()
        kinds = {r.kind for r in conn.execute(select(contact_events.c.kind).where(
            contact_events.c.contact_id == c.id))}
    engine.dispose()
    assert csat == 4
    assert "csat_score" in kinds  # on the customer's timeline
    # the follow-up answer was recorded (ARI) and the recording noted on the contact
    assert "csat_comment" in kinds
    assert rig.host_path(f"/var/spool/asterisk/recording/csat-{c.id}.wav").exists()
    print(f"call done after {time.monotonic() - t0:.1f} s")
    doc = _report(url, c.started_at.astimezone(UTC).date().isoformat())
    figures = doc["csat"]
    assert isinstance(figures, dict) and figures["mean"] == 4, figures
    print(f"\nafter-call survey: CSAT {csat}, report {figures}, call {report.duration_s:.1f} s")
