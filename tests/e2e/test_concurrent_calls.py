"""Ten callers at once through the rig: every prompt resolves (the prompt-copy race is gone)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ivr.cli.demo_cmd import demo_moment
from ivr.cli.voice_call import VoiceCallSpec, run_voice_calls
from ivr.clock import PinnedClock
from ivr.config import load_settings
from ivr.domain.model import Step
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing.rig import Rig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_ten_simultaneous_calls_resolve_every_prompt(
        rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """10 unknown callers at the same moment all hear the greeting and the open question
    (ask first), copied fresh into Asterisk's folder; no prompt-resolution error is logged."""
    # Start from an empty export folder so all ten calls copy the same files at once.
    shutil.rmtree(rig.host_path("/var/lib/kanaal/prompts/static"), ignore_errors=True)
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=True)
    engine.dispose()
    settings = replace(load_settings(env_file=None, environ={}), database_url=url,
                       data_dir=tmp_path)
    specs = [VoiceCallSpec(say="", from_number=f"+312055500{i:02d}") for i in range(10)]
    caplog.set_level(logging.ERROR)
    reports = await run_voice_calls(settings, specs, concurrent=True, rig=rig,
                                    clock=PinnedClock(demo_moment()), hangup_after_s=10.0)
    errors = [r.getMessage() for r in caplog.records if "could not be resolved" in r.getMessage()]
    assert not errors, errors
    for r in reports:
        assert r.contact is not None, (r.spec.from_number, r.error)
        steps = [s.step for s in r.contact.steps]
        assert Step.GREETING in steps, (r.spec.from_number, r.contact.transcript)
        assert any("how can I help" in t for t in r.contact.transcript), r.contact.transcript
