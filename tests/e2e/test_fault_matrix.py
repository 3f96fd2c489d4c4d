"""Short e2e variants of the fault matrix (bench/faults.py has the full table), on one
shared node: the recogniser hanging, then the prompt folder's disk full, each with
calls in flight. ARI and AMI cuts and node loss have their own e2e tests
(test_ari_calls, test_live_routing, test_node_loss)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing import fault_matrix as fm
from ivr.testing.rig import Rig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_hung_recogniser_and_full_prompt_disk_lose_no_call(
        rig: Rig, tmp_path: Path) -> None:
    """With two calls in flight the recogniser hangs: every call still ends with an
    outcome (the turn gives up after the ASR timeout); then with the prompt folder's
    disk full (a filled tmpfs): calls still end with an outcome. No call lost, every
    contact record complete."""
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=False)
    engine.dispose()
    async with fm.harness(fm.default_settings(url, tmp_path), rig) as h:
        hung = await fm.asr_fault(h, "hang", 2, stay_s=30)
        disk = await fm.disk_full(h, 2)
    for row in (hung, disk):
        print(f"\n{row.fault}: {row.details} {row.note}")
        assert row.lost == 0, row
        assert row.contacts_complete == "2/2", row
    assert h.asr.tripped >= 1
