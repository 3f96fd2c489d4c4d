"""Crash and restart: pending rows are resumed and every row is sent exactly once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import Engine
from twilio_helpers import (
    SMS_FROM,
    Sandbox,
    eventually,
    make_outbox,
    make_transport,
    running,
)

from ivr.notify.outbox import OutboxStore

TO = "+31687654321"


async def test_crash_after_db_write_resumes_once_with_two_workers(
    sandbox: Sandbox, store: OutboxStore
) -> None:
    """Rows written before a crash are sent once each, even with two workers racing."""
    ids = [store.insert(contact_id=f"c{i}", channel="sms", to=TO, from_=SMS_FROM,
                        body=f"message {i}", language="en") for i in range(5)]
    a = make_outbox(store, make_transport(sandbox))
    b = make_outbox(OutboxStore(store._engine), make_transport(sandbox))
    async with running(a), running(b):
        await eventually(lambda: all(r.state == "accepted" for r in store.rows()))
    bodies = sorted(m["body"] for m in sandbox.messages())
    assert bodies == sorted(f"message {i}" for i in range(5))
    assert sandbox.requests() == 5
    assert {r.id for r in store.rows()} == set(ids)


async def test_crash_between_send_and_sid_is_reconciled(
    sandbox: Sandbox, store: OutboxStore
) -> None:
    """A row sent but whose SID was never recorded is matched at Twilio, not resent."""
    row_id = store.insert(contact_id="c1", channel="sms", to=TO, from_=SMS_FROM,
                          body="sent right before the crash", language="en")
    transport = make_transport(sandbox, idempotency=False)
    claimed = store.claim(row_id)
    assert claimed is not None
    lost = transport.send(claimed)  # reached Twilio; the process "dies" before recording
    assert lost.sid is not None and store.get(row_id).state == "sending"  # type: ignore[union-attr]

    async with running(make_outbox(store, transport, lease_s=0.1)):
        row = await eventually(lambda: (r := store.get(row_id)) and r.state == "accepted" and r)
    assert row.message_sid == lost.sid
    assert len(sandbox.messages()) == 1 and sandbox.requests() == 1


CHILD = textwrap.dedent("""
    import asyncio, sys
    from ivr.notify.outbox import Outbox, OutboxStore
    from ivr.notify.twilio_messenger import TwilioMessenger, TwilioTransport, make_twilio_client
    from ivr.storage.db import make_engine

    db, sandbox, callback, account, token = sys.argv[1:6]

    async def main() -> None:
        client = make_twilio_client(account, token, base_url=sandbox, timeout_s=60)
        outbox = Outbox(store=OutboxStore(make_engine(db)),
                        transport=TwilioTransport(client, status_callback_url=callback,
                                                  send_idempotency_token=False))
        messenger = TwilioMessenger(outbox=outbox, senders={"sms": "%s"},
                                    first_attempt_deadline_s=0.1)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(outbox.run())
            print(await messenger.send_link(to="%s", channel="sms", body="killed mid-send",
                                            contact_id="c-kill", language="en"), flush=True)

    asyncio.run(main())
""") % (SMS_FROM, TO)


async def test_process_killed_mid_send_sends_once(
    sandbox: Sandbox, store: OutboxStore, engine: Engine, webhooks: str, tmp_path: Path
) -> None:
    """SIGKILL while the request hangs after Twilio created it; the restart sends nothing new."""
    from twilio_helpers import ACCOUNT, TOKEN

    sandbox.fault(hang_s=30, count=1, after_create=True)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), engine.url.render_as_string(hide_password=False), sandbox.url,
        f"{webhooks}/twilio/status", ACCOUNT, TOKEN,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await eventually(lambda: sandbox.messages(), timeout_s=20)
        # The status callback (carrying ?outbox_id=) recorded the SID on the row.
        await eventually(lambda: [r for r in store.rows() if r.message_sid], timeout_s=5)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    (row,) = store.rows()
    assert row.state == "sending"  # the dead worker never finished the attempt

    async with running(make_outbox(store, make_transport(sandbox, idempotency=False),
                                   lease_s=0.1)):
        await eventually(lambda: store.rows()[0].state == "accepted")
    (msg,) = sandbox.messages()
    assert store.rows()[0].message_sid == msg["sid"]
    assert sandbox.requests() == 1
