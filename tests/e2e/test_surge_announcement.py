"""The issue's surge check through the rig: ~30 calls from one region about a fault within
a few minutes switch the announcement on; the next caller from that region hears it on a
real SIP call, a caller from another region does not.

To keep it fast the first 28 calls go through the text channel into the same node (the
same App, flow, observers and surge service as a voice call); the last two are real SIP
calls from SIPp through Asterisk 22."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from ivr.cli.voice_call import VoiceCallSpec, voice_node
from ivr.config import load_settings
from ivr.domain.model import ContactChannel
from ivr.storage.db import make_engine, upgrade
from ivr.storage.outages import SqlOutageBoard
from ivr.storage.seed import seed_demo
from ivr.telephony.callerid import parse_caller
from ivr.telephony.text_channel import TextCallChannel
from ivr.testing.rig import Rig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_surge_switches_the_announcement_on_for_that_region(rig: Rig,
                                                                  tmp_path: Path) -> None:
    """28 fault calls from Arnhem numbers -> a surge outage for Arnhem, active at once;
    a real call from an unknown Arnhem landline hears it, one from Amsterdam does not."""
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=True)
    engine.dispose()
    settings = replace(load_settings(env_file=None, environ={}), database_url=url,
                       data_dir=tmp_path, api_token="e2e-token", surge_auto_activate=True,
                       no_input_timeout_s=3.0)
    async with voice_node(settings, rig=rig, hangup_after_s=45.0) as line:
        app = line.node.app
        assert app.surge is not None
        for i in range(28):
            who = parse_caller(f"+312633{i:05d}")  # Arnhem landlines (area code 026)
            assert who.region == "Arnhem"
            ch = TextCallChannel(caller_info=who, script=[
                "I want to report a fault, my internet is down", "hangup"])
            await app.flow(ch, ContactChannel.TEXT).run()
        board = SqlOutageBoard(app.engine)
        surge = None
        for _ in range(50):  # the service acts in its own task
            surge = next((o for o in await board.listing() if o.covers("Arnhem")), None)
            if surge is not None:
                break
            await asyncio.sleep(0.1)
        assert surge is not None, app.surge.status()
        assert surge.source.value == "surge" and surge.status.value == "active"
        assert surge.detail["calls"] >= 20
        # Both at once: the announcement must reach one region's caller only.
        arnhem, amsterdam = await asyncio.gather(
            line.place(VoiceCallSpec(say="hello", from_number="+31263399999")),
            line.place(VoiceCallSpec(say="hello", from_number="+31201239999")))
    assert arnhem.contact is not None, arnhem.error
    assert amsterdam.contact is not None, amsterdam.error
    heard = "\n".join(arnhem.contact.transcript)
    assert "many calls from the Arnhem area" in heard, heard
    assert "instead of waiting" in heard  # offered SMS news
    other = "\n".join(amsterdam.contact.transcript)
    assert "many calls" not in other and "Please note" not in other, other
