"""Session-wide Asterisk rig for the e2e tests.

The rig comes up once per test session (building the cached sid root on
first use, about 1.5 minutes). If it cannot be built or started the tests
FAIL with the reason: e2e coverage is never skipped silently. A rig that was
already running (``ivr rig up``) is reused and left running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ivr.testing.rig import Rig, RigError, rig_from_env, second_rig_of


@pytest.fixture(scope="session")
def rig() -> Iterator[Rig]:
    """The running rig (ARI answering); stopped at the end if this session started it."""
    r = rig_from_env(log=print)
    was_running = r.status().running
    try:
        r.up()
    except RigError as exc:
        pytest.fail(f"Asterisk rig could not be brought up: {exc}", pytrace=False)
    yield r
    if not was_running:
        r.down()


@pytest.fixture(scope="session")
def rig2(rig: Rig) -> Iterator[Rig]:
    """The second Asterisk (``ivr rig up --asterisks 2``): its own root, ports +200."""
    r = second_rig_of(rig)
    was_running = r.status().running
    try:
        r.up()
    except RigError as exc:
        pytest.fail(f"second Asterisk could not be brought up: {exc}", pytrace=False)
    yield r
    if not was_running:
        r.down()
