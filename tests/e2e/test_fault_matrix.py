"""Short e2e variants of the fault matrix (bench/faults.py has the full table): the
recogniser hangs, and Twilio answers 500s then times out, each with calls in flight.
ARI and AMI cuts and node loss have their own e2e tests (test_ari_calls,
test_live_routing, test_node_loss, which also closes the lease-saved contact from the
dialplan's note); the prompt disk full and PostgreSQL stopped rows run in the bench
only (the CI budget; tests/storage/test_repositories.py pins the spool's replay
loop)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing import fault_matrix as fm
from ivr.testing import fault_outages as fo
from ivr.testing.rig import Rig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_a_hung_recogniser_loses_no_call(rig: Rig, tmp_path: Path) -> None:
    """With two calls in flight the recogniser hangs: each call gives up on speech after
    the ASR timeout, stops asking the hung engine, and reaches the keypad menu (or a
    human) while the caller is still there; every contact record has an outcome."""
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=False)
    engine.dispose()
    async with fm.harness(fm.default_settings(url, tmp_path), rig) as h:
        hung = await fm.asr_fault(h, "hang", 2, stay_s=45)
    print(f"\n{hung.fault}: {hung.details} {hung.note}")
    assert hung.lost == 0, hung
    assert hung.contacts_complete == "2/2", hung
    assert h.asr.tripped >= 1


async def test_twilio_down_while_callers_ask_for_a_link_loses_nothing(
        rig: Rig, tmp_path: Path) -> None:
    """Two callers ask for a self-service link while the Twilio sandbox (its own
    process) answers 500, then times out for a few seconds (the first timed-out request
    was created at Twilio: its answer lost), then recovers. Nobody waits on Twilio (the
    caller hears the link is on its way within seconds), both contacts show the link,
    and each caller gets exactly one message, delivered after the recovery."""
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    fo.seed(url, staffed=False)
    settings = fm.default_settings(url, tmp_path)
    async with fo.sandbox_process(settings) as sandbox:
        h_settings = replace(settings, twilio_base_url=sandbox)
        async with fm.harness(h_settings, rig) as h:
            row = await fo.twilio_outage(h, sandbox, 2, timeouts_s=5.0, hang_s=11.0,
                                         deliver_within_s=60.0)
    print(f"\n{row.fault}: {row.note} {row.figures} {row.details}")
    assert row.lost == 0, row
    assert row.figures["links_asked"] == 2, row
    assert row.figures["delivered"] == 2 and row.figures["duplicates"] == 0, row
    assert row.figures["messages_per_caller"] == [1, 1], row
    assert row.figures["contacts_with_sent_message"] == 2, row
    # the first attempt's wait is bounded (3 s) and the flow does not retry inline
    assert max(row.figures["caller_wait_after_question_ms"]) < 8000, row
