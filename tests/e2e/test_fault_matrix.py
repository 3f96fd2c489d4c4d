"""Short e2e variant of the fault matrix (bench/faults.py has the full table): the
recogniser hangs with calls in flight. ARI and AMI cuts and node loss have their own
e2e tests (test_ari_calls, test_live_routing, test_node_loss); the prompt disk full
row runs in the bench only (the CI budget)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.testing import fault_matrix as fm
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
