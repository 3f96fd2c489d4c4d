"""A dialer killed mid-attempt does not double-dial (through the rig).

Two nodes, each its own process with its own dialer and Stasis app, share one
database. One of them claims a due callback and rings the SIPp customer through
Asterisk (ARI originate); while the customer's phone rings, that node is SIGKILLed.
The originated channel lives on in Asterisk. Once the dead node's lease has run out
the other node takes the callback, sees the attempt unfinished and its channel still
up, and waits; only when that channel is gone does it count the attempt as
interrupted and make the next one. Checked from Asterisk's side (ARI channel list,
sampled every 250 ms) and the customer's phone (SIPp's INVITEs): never two calls to
the customer at once, and exactly one INVITE per attempt on the record.

(A restart of the same node is the same case: the new process is another owner.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from ivr.domain.callbacks import CallbackDraft, CallbackRecord, SlotPolicy, candidate_starts
from ivr.storage.callbacks import SqlCallbackBook
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.storage.tables import callbacks
from ivr.telephony.ari.client import AriClient
from ivr.testing.node_process import node_env, start_node_process
from ivr.testing.rig import Rig
from ivr.testing.sipcaller import SippAgent

pytestmark = [pytest.mark.e2e]

CUSTOMER = "+31301234599"
RING_S = 15.0  # each attempt rings this long (the customer never answers): longer than
# the lease, so the survivor finds the dead node's call still up, the case that matters
LEASE_S = 6.0


def _book_due_now(url: str) -> CallbackRecord:
    """A customer-first callback in a future slot, made due now (its slot has not begun,
    but its first attempt is; a test cannot wait for a real slot boundary)."""
    policy = SlotPolicy(slot_s=3600.0, lead_s=0.0)
    start = candidate_starts(datetime.now(UTC), policy, 1)[0]
    engine = make_engine(url)
    book = SqlCallbackBook(engine)
    cb = book.book_sync(CallbackDraft(
        contact_id="c-kill", number=CUSTOMER, language="en", skill="general",
        slot_start=start, slot_end=start + timedelta(seconds=3600),
        question="my invoice is wrong, please call me", intent="invoice_question"),
        policy=policy, cap=5)
    with engine.begin() as conn:
        conn.execute(update(callbacks).where(callbacks.c.id == cb.id)
                     .values(next_attempt_at=datetime.now(UTC)))
    engine.dispose()
    return cb


async def _start_node(url: str, rig: Rig, customer_port: int, app: str,
                      ) -> asyncio.subprocess.Process:
    return await start_node_process(url, node_env(
        rig, IVR_LIVE_ROUTING="false", IVR_ARI_APP=app, IVR_CALLBACKS="true",
        IVR_CALLBACK_DIALER="true",
        IVR_CALLBACK_ENDPOINT=f"PJSIP/caller/sip:{{number}}@127.0.0.1:{customer_port}",
        IVR_CALLBACK_DEFAULT_STRATEGY="customer_first", IVR_CALLBACK_RING_S=str(RING_S),
        IVR_CALLBACK_LEASE_S=str(LEASE_S), IVR_CALLBACK_POLL_S="0.5",
        IVR_CALLBACK_RETRY_S="2", IVR_CALLBACK_SLOT_S="3600", IVR_CALLBACK_LEAD_S="0"))


class Legs:
    """Asterisk's own view of the callback legs to the customer, sampled every 250 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self.first_seen: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}

    async def watch(self, ari: AriClient) -> None:
        while True:
            with contextlib.suppress(Exception):
                legs = [c.id for c in await ari.channels()
                        if c.id.startswith("kanaal-cb-") and c.id.endswith("-c")]
                now = time.monotonic()
                for leg in legs:
                    self.first_seen.setdefault(leg, now)
                    self.last_seen[leg] = now
                self.peak = max(self.peak, len(legs))
            await asyncio.sleep(0.25)


async def _until(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            for _ in itertools.count():  # nothing to await: poll the record / the phone
                if pred():
                    return
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(what) from None


async def test_dialer_killed_mid_attempt_does_not_double_dial(rig: Rig, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=False)
    engine.dispose()
    creds = rig.credentials
    ari = AriClient(rig.ari_url, username=creds.ari_user, password=creds.ari_password,
                    app="kanaal-test-watch")
    legs = Legs()
    customer = SippAgent(rig, 4, ring_s=600.0)  # rings, never answers
    await customer.start()
    watch = asyncio.create_task(legs.watch(ari))
    nodes: dict[int, asyncio.subprocess.Process] = {}
    try:
        for proc in await asyncio.gather(*(_start_node(url, rig, customer.port, app)
                                           for app in ("kanaal-a", "kanaal-b"))):
            nodes[proc.pid] = proc
        cb = _book_due_now(url)  # both dialers are polling: either may claim it
        book = SqlCallbackBook(make_engine(url))
        await _until(lambda: len(customer.invites()) == 1, 30, "nobody rang the customer")
        (first,) = book.get_sync(cb.id).attempts
        assert first.outcome is None, first
        dialler = nodes.pop(int(first.node.rsplit(":", 1)[1]))
        dialler.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await dialler.wait()
        # The survivor settles the attempt only after its channel is gone, then dials.
        await _until(lambda: len(book.get_sync(cb.id).attempts) >= 2, RING_S + 40,
                     "the surviving node never made the next attempt")
        took = time.monotonic() - killed
        record = book.get_sync(cb.id)
        one, two = (record.attempts[0].channel_id + "-c", record.attempts[1].channel_id + "-c")
        await _until(lambda: len(customer.invites()) >= 2 and two in legs.first_seen, 15,
                     "attempt 2 never rang")
    finally:
        watch.cancel()
        for node in nodes.values():
            if node.returncode is None:
                node.kill()
                await node.wait()
        for leg in list(legs.first_seen):
            with contextlib.suppress(Exception):
                await ari.hangup(leg)
        await ari.aclose()
        await customer.stop()
    invites = customer.invites()
    print(f"\ndialer kill: attempts {[(a.n, a.node, a.outcome) for a in record.attempts]}; "
          f"{len(invites)} INVITEs; peak concurrent legs {legs.peak}; the dead node's call "
          f"rang {legs.last_seen[one] - killed:.1f} s after the kill; next attempt "
          f"{took:.1f} s after the kill")
    assert legs.peak == 1, "two calls to the customer at once"
    assert record.attempts[0].outcome == "interrupted"
    assert record.attempts[0].node != record.attempts[1].node
    assert len(invites) == len(record.attempts) == 2
    # The survivor's lease came long before the dead node's call ended (it was up all
    # along), and it dialled only after that call had gone from Asterisk.
    assert legs.last_seen[one] - killed > LEASE_S + 2
    assert legs.first_seen[two] > legs.last_seen[one]
