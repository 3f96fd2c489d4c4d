"""Session-wide Asterisk rig for the e2e tests.

The rig comes up once per test session (building the cached sid root on
first use, about 1.5 minutes). If it cannot be built or started the tests
FAIL with the reason: e2e coverage is never skipped silently. A rig that was
already running (``ivr rig up``) is reused and left running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.testing.rig import DEFAULT_ROOT, Rig, RigError, RigPorts


def _rig_from_env() -> Rig:
    # the test harness, not library code, reads the environment: CI or a
    # developer can move the cache or the ports without editing tests
    env = os.environ
    ports = RigPorts(
        sip=int(env.get("KANAAL_RIG_SIP_PORT", "5070")),
        http=int(env.get("KANAAL_RIG_HTTP_PORT", "8088")),
        ami=int(env.get("KANAAL_RIG_AMI_PORT", "5039")),
        agi=int(env.get("KANAAL_RIG_AGI_PORT", "4573")),
        agent_base=int(env.get("KANAAL_RIG_AGENT_BASE_PORT", "5081")),
    )
    return Rig(root=Path(env.get("KANAAL_RIG_ROOT", str(DEFAULT_ROOT))), ports=ports,
               log=print)


@pytest.fixture(scope="session")
def rig() -> Iterator[Rig]:
    """The running rig (ARI answering); stopped at the end if this session started it."""
    r = _rig_from_env()
    was_running = r.status().running
    try:
        r.up()
    except RigError as exc:
        pytest.fail(f"Asterisk rig could not be brought up: {exc}", pytrace=False)
    yield r
    if not was_running:
        r.down()
