"""Caller-ID trust: only numbers the dialplan vouches for identify a customer."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from test_ari_client import fake, make_client, running  # the ARI tests' fixtures

from ivr.domain.model import Caller
from ivr.telephony.ari.app import StasisApp
from ivr.telephony.callerid import cli_trust_of, parse_caller
from ivr.testing.fake_ari import FakeAri

__all__ = ["fake"]  # a fixture, used by name

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan"


@pytest.mark.parametrize(("args", "trusted"), [
    ((), True),  # a dialplan from before the argument: as before
    (("cli_trusted=1",), True),
    (("cli_trusted=0",), False),
    (("queue-exit", "s1"), True),
    (("x", "cli_trusted="), False),
    (("cli_trusted=yes",), False),  # only the exact "1" vouches
])
def test_cli_trust_of_stasis_and_agi_arguments(args: tuple[str, ...], trusted: bool) -> None:
    """cli_trusted=1 vouches for the number; anything else given says no."""
    assert cli_trust_of(args) is trusted


def test_parse_caller_carries_the_trust() -> None:
    """An untrusted number still parses (for the record and SMS), flagged untrusted."""
    c = parse_caller("0612345678", "NL", trusted=False)
    assert c.number == "+31612345678" and not c.cli_trusted
    assert parse_caller("0612345678").cli_trusted


def test_dialplan_trusts_only_the_trunk_endpoint() -> None:
    """pjsip.conf: the trusted endpoint sets IVR_CLI_TRUSTED=1 and no identify matches
    everyone; extensions.conf passes the trust to both the Stasis app and the AGI route."""
    pjsip = (DIALPLAN / "pjsip.conf").read_text()
    active = [ln.strip() for ln in pjsip.splitlines() if ln.strip() and not ln.startswith(";")]
    assert "set_var=IVR_CLI_TRUSTED=1" in active
    assert not any(ln.startswith("match=") and "0.0.0.0" in ln for ln in active)
    assert active.count("trust_id_inbound=yes") == 1
    ext = (DIALPLAN / "extensions.conf").read_text()
    assert "Stasis(${IVR_APP_NAME},${IVR_CLI_ARG})" in ext
    assert 'AGI(${IVR_AGI_URL},cli_trusted=${IF($["${IVR_CLI_TRUSTED}" = "1"]?1:0)})' in ext


class Sounds:
    async def resolve(self, prompt: Any) -> str:
        return f"sound:/x/{prompt.key}"


async def test_ari_app_reads_the_trust_from_stasis_args(fake: FakeAri) -> None:
    """Stasis(ivr,cli_trusted=0) gives the flow an untrusted caller; =1 a trusted one."""
    seen: dict[str, Caller] = {}

    async def flow(channel: Any) -> None:
        seen[channel.channel_id] = channel.caller

    client = make_client(fake)
    async with running(client, fake):
        app = StasisApp(client, flow_runner=flow, prompts=Sounds(), recognizer=None)
        task = asyncio.create_task(app.run())
        await fake.start_call("spoofed", "0612345678", args=("cli_trusted=0",))
        await fake.start_call("trunk", "0612345678", args=("cli_trusted=1",))
        for _ in range(200):
            if app.completed == 2:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not seen["spoofed"].cli_trusted and seen["trunk"].cli_trusted
    assert seen["spoofed"].number == seen["trunk"].number == "+31612345678"
