"""Fault-matrix rows where a service the node depends on goes away with calls in flight:
PostgreSQL stopped, and Twilio answering 500s then timing out (see
``ivr.testing.fault_matrix`` for the other rows and the Row they report).

* **PostgreSQL stopped** (``pg_ctl stop -m fast``) for ``down_s`` under a node on it,
  then started again on the same port. What a call needs from the database fails: the
  flow fails safe (a human). Contact saves go to the spool (``SpoolingContactLog``) and
  are replayed once the database is back. Measured: calls lost, time from the stop to
  the human queue (AMI ``QueueCallerJoin``), contact records complete after recovery.
* **Twilio down**: ``ivr twilio-sandbox`` runs as its own process (a real HTTP server,
  as Twilio is another host) with its fault injection: every create answers 500 until
  each caller's link is in the outbox, then requests time out (the first one after
  Twilio created the message: an answer lost on the way back), then it recovers.
  Measured: calls lost, the caller's wait at the wire after the question, messages
  delivered after recovery and duplicates (messages per caller at the sandbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from ivr.cli.voice_call import VoiceCallReport
from ivr.config import Settings
from ivr.domain.model import ContactSnapshot
from ivr.notify.outbox import OutboxRow
from ivr.storage.db import make_engine, upgrade
from ivr.storage.seed import seed_demo
from ivr.telephony.ami.events import QueueCallerJoin
from ivr.testing.fault_matrix import Harness, Row, default_settings, harness, summarise, with_calls
from ivr.testing.postgres import PostgresServer, start_postgres
from ivr.testing.rig import Rig
from ivr.web.app import free_port

LINK_QUESTIONS = ("I am moving house and need to change my address",
                  "I want to change my address", "I am moving house")


def seed(url: str, *, staffed: bool) -> None:
    """Migrate ``url`` and load the demo contact centre into it."""
    upgrade(url)
    engine = make_engine(url)
    seed_demo(engine, staffed=staffed)
    engine.dispose()


# ------------------------------------------------------------------- PostgreSQL

async def postgres_outage(rig: Rig, work: Path, n: int = 3, down_s: float = 30.0,
                          fault_after_s: float = 4.0) -> Row:
    """A node of its own on a PostgreSQL of its own; the server stops ``fault_after_s``
    into the calls and starts again ``down_s`` later on the same port."""
    async with postgres_node(rig, work) as (h, server):
        return await postgres_row(h, server, n, down_s, fault_after_s,
                                  stay_s=down_s + 10)


@contextlib.asynccontextmanager
async def postgres_node(rig: Rig, work: Path, **settings: Any
                        ) -> AsyncIterator[tuple[Harness, PostgresServer]]:
    """A throwaway PostgreSQL (kept on disk, so it can be stopped and started again on
    its port) with the demo data, and a harness node on it (``settings`` override)."""
    # A folder of its own under /tmp: the postgres user must reach it (not under work).
    root = Path(tempfile.mkdtemp(prefix="kanaal-pg-faults-"))
    server = await asyncio.to_thread(start_postgres, root)
    try:
        url = await asyncio.to_thread(server.create_database,
                                      f"kanaal_faults_{secrets.token_hex(4)}")
        await asyncio.to_thread(seed, url, staffed=False)
        # Its own data folder: its spool must not be replayed into another row's database.
        base = default_settings(url, work / f"pg-node-{secrets.token_hex(3)}")
        async with harness(replace(base, **settings), rig) as h:
            yield h, server
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(root, ignore_errors=True)


async def postgres_row(h: Harness, server: PostgresServer, n: int, down_s: float,
                        fault_after_s: float, stay_s: float | None = None) -> Row:
    """``stay_s``: the callers stay on the line this long (waiting for the human the
    fail-safe queued them for, as callers do) unless the IVR ends the call first."""
    centre = h.line.node.centre
    assert centre is not None  # the harness serves with live routing (AMI)
    joined: dict[str, float] = {}
    marks: dict[str, float] = {}

    async def watch() -> None:
        with centre.ami.subscribe(QueueCallerJoin) as joins:
            async for ev in joins:
                if isinstance(ev, QueueCallerJoin):
                    joined.setdefault(ev.caller_id_num, time.monotonic())

    async def outage() -> None:
        await asyncio.to_thread(server.stop)  # fast shutdown: sessions cut, nothing served
        marks["stopped"] = time.monotonic()
        await asyncio.sleep(down_s)
        await asyncio.to_thread(start_postgres, server.datadir.parent, port=server.port)
        marks["back"] = time.monotonic()

    watcher = asyncio.create_task(watch())
    try:
        reports = await with_calls(h, n, outage, fault_after_s=fault_after_s,
                                   stay_s=stay_s)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    reports = [await reread(h, r, within_s=30.0) for r in reports]
    complete_at = time.monotonic()
    stopped = marks.get("stopped", 0.0)
    to_human = [joined[r.spec.from_number] - stopped for r in reports
                if r.spec.from_number in joined and joined[r.spec.from_number] >= stopped]
    row = summarise(f"PostgreSQL stopped {down_s:.0f} s", reports,
                    to_human_s=round(max(to_human), 1) if to_human else None)
    replayed = h.line.node.app.contacts.replayed
    row.figures = {"to_human_s": [round(x, 1) for x in to_human],
                   "replayed_from_spool": replayed,
                   "complete_s_after_back": round(complete_at - marks.get("back", 0.0), 1)}
    row.note = (f"{len(to_human)} of {n} sent to the human queue by the fail-safe; "
                f"{replayed} contact records replayed from the spool once the database "
                "was back")
    return row


async def reread(h: Harness, report: VoiceCallReport, within_s: float) -> VoiceCallReport:
    """The report with its contact as stored now (replayed from the spool, if it was),
    waiting up to ``within_s`` for a record with an outcome."""
    contacts = h.line.node.app.contacts
    contact = report.contact

    async def stored() -> ContactSnapshot | None:
        if report.session_id is not None:
            return await contacts.get(report.session_id)
        # The flow had not ended when the report was made: its latest contact by number.
        found = await contacts.history(caller=report.spec.from_number, limit=1)
        return found[0] if found else None

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within_s):
            for _ in itertools.count():  # the spool's replay loop: nothing to await
                try:
                    contact = await stored()
                except Exception:  # still down
                    contact = None
                if contact is not None and contact.outcome is not None:
                    break
                await asyncio.sleep(0.5)
    return replace(report, contact=contact)


# ------------------------------------------------------------------- Twilio

@contextlib.asynccontextmanager
async def sandbox_process(settings: Settings) -> AsyncIterator[str]:
    """``ivr twilio-sandbox`` in its own process on a free port; yields its URL."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr", "twilio-sandbox", "--port", str(port),
        "--account-sid", settings.twilio_account_sid,
        "--auth-token", settings.twilio_auth_token,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as http, asyncio.timeout(60):
            for _ in itertools.count():  # another process: poll until it listens
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/_sandbox/messages")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def _rows(h: Harness, known: set[str]) -> list[OutboxRow]:
    store = h.line.node.app.outbox_store
    return [r for r in await asyncio.to_thread(store.rows) if r.id not in known]


async def twilio_outage(h: Harness, sandbox: str, n: int = 3, timeouts_s: float = 15.0,
                        hang_s: float = 12.0, deliver_within_s: float = 120.0) -> Row:
    """Callers ask for a self-service link while the sandbox answers 500, then times out
    (``hang_s``, over the client's 10 s) for ``timeouts_s``, then recovers."""
    marks: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as http:
        await http.delete("/_sandbox/faults")
        await http.delete("/_sandbox/messages")
        await http.post("/_sandbox/faults", json={"status": 500, "code": 20500, "count": None})
        known = {r.id for r in await _rows(h, set())}

        async def outage() -> None:
            with contextlib.suppress(TimeoutError):  # a caller not understood: go on
                async with asyncio.timeout(60):
                    for _ in itertools.count():  # outbox rows: nothing to await
                        if len(await _rows(h, known)) >= n:
                            break
                        await asyncio.sleep(0.3)
            await http.delete("/_sandbox/faults")
            marks["timeouts"] = time.monotonic()
            # The first request of this phase reaches Twilio, whose answer is lost (the
            # outbox must find that message, not send it again); the rest never arrive.
            for fault in ({"hang_s": hang_s, "after_create": True, "count": 1},
                          {"hang_s": hang_s, "count": None}):
                await http.post("/_sandbox/faults", json=fault)
            await asyncio.sleep(timeouts_s)
            await http.delete("/_sandbox/faults")
            marks["recovered"] = time.monotonic()

        reports = await with_calls(h, n, outage, fault_after_s=0.0, questions=LINK_QUESTIONS)
        rows = await _delivered(h, known, deliver_within_s)
        marks["delivered"] = time.monotonic()
        messages = (await http.get("/_sandbox/messages")).json()["messages"]
    return _twilio_row(h, reports, rows, messages, marks, timeouts_s)


async def _delivered(h: Harness, known: set[str], within_s: float) -> list[OutboxRow]:
    rows: list[OutboxRow] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within_s):
            for _ in itertools.count():  # the outbox's retries: nothing to await
                rows = await _rows(h, known)
                if rows and all(r.twilio_status == "delivered" or r.state == "failed"
                                for r in rows):
                    break
                await asyncio.sleep(0.5)
    return rows


def _twilio_row(h: Harness, reports: list[VoiceCallReport], rows: list[OutboxRow],
                messages: list[dict[str, Any]], marks: dict[str, float],
                timeouts_s: float) -> Row:
    numbers = [r.spec.from_number for r in reports]
    sent_to = [m["to"] for m in messages]
    per_number = {num: sent_to.count(num) for num in numbers}
    delivered = sum(1 for r in rows if r.twilio_status == "delivered")
    linked = [r for r in reports if r.contact is not None and (r.contact.action or "")
              .startswith("link:")]
    store = h.line.node.app.outbox_store
    history = sum(1 for r in linked if r.contact is not None and any(
        e.direction == "out" and e.message_sid for e in store.events(r.contact.id)))
    gaps = [r.turn_gap_ms[0] for r in reports if r.turn_gap_ms]
    after = marks.get("delivered", 0.0) - marks.get("recovered", 0.0)
    row = summarise(f"Twilio 500s, then timeouts {timeouts_s:.0f} s", reports)
    row.figures = {
        "links_asked": len(linked), "outbox_rows": len(rows), "delivered": delivered,
        "duplicates": sum(max(0, c - 1) for c in per_number.values()),
        "messages_per_caller": list(per_number.values()),
        "attempts": [r.attempts for r in rows],
        "delivered_s_after_recovery": round(after, 1) if delivered else None,
        "caller_wait_after_question_ms": [round(g) for g in gaps],
        "contacts_with_sent_message": history}
    row.note = (f"{len(linked)} links queued in the call; {delivered}/{len(rows)} delivered "
                f"{after:.0f} s after recovery, {row.figures['duplicates']} duplicates; "
                f"caller's wait after the question at most "
                f"{max(gaps) / 1000 if gaps else float('nan'):.1f} s")
    return row
