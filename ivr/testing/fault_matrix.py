"""The fault matrix: real calls through the rig while one thing breaks.

Each row places calls, breaks something while they are in flight, heals it, and
reports calls in flight, calls lost (no answer, no contact, or a contact
without an outcome), time from the fault to a human where the fault sends
callers to one, and contact records complete (with an outcome). Used by
``bench/faults.py`` (the full table) and the e2e test of the matrix (short
variants of the same rows on one shared node).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr.cli.voice_call import VoiceCallReport, VoiceCallSpec, VoiceLine, voice_node
from ivr.config import Settings, load_settings
from ivr.domain.ports import Recognizer
from ivr.testing.node_process import node_env, start_node_process
from ivr.testing.recognizers import FaultyRecognizer
from ivr.testing.rig import Rig
from ivr.testing.tcp_proxy import KillableProxy

QUESTIONS = ("where is my order", "what are your opening hours", "when are you open")


@dataclass
class Row:
    """One line of the table."""

    fault: str
    in_flight: int
    lost: int
    to_human_s: float | None
    contacts_complete: str  # "complete/expected"
    note: str = ""
    details: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # the row's own measures

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Harness:
    """One in-process node on the rig, with its AMI behind a killable proxy and a
    recogniser that can be broken; rows run one after another on it."""

    line: VoiceLine
    ami: KillableProxy
    asr: FaultyRecognizer
    rig: Rig
    numbers: int = 0

    def number(self) -> str:
        self.numbers += 1
        return f"+3165{os.getpid() % 1000:03d}{self.numbers:04d}"


@contextlib.asynccontextmanager
async def harness(settings: Settings, rig: Rig) -> AsyncIterator[Harness]:
    """The shared node (live routing on, so the call lease is on: the default)."""
    faulty: list[FaultyRecognizer] = []

    def wrap(inner: Recognizer) -> Recognizer:
        faulty.append(FaultyRecognizer(inner))
        return faulty[0]

    async with KillableProxy("127.0.0.1", rig.ports.ami) as ami, voice_node(
            settings, rig=rig, hangup_after_s=40, ami_port=ami.port,
            recognizer=wrap) as line:
        yield Harness(line, ami, faulty[0], rig)


# Where an abandoned call was when the caller hung up, if the IVR had not served them
# yet: nothing understood, no answer, no human, no keypad offered.
UNSERVED = frozenset({"identification", "greeting", "question"})


def lost(report: VoiceCallReport) -> bool:
    """Dropped, never in the app, no contact, or given up on before the IVR served them
    (the test caller leaves once the IVR has answered, or stays to ``hangup_after_s``)."""
    c = report.contact
    if not report.sip_ok or c is None or c.outcome is None:
        return True
    return c.outcome.value == "abandoned" and not c.intent and c.dropped_at in UNSERVED


def outcome_of(report: VoiceCallReport) -> str:
    c = report.contact
    if c is None or c.outcome is None:
        return "no outcome"
    return f"{c.outcome.value} at {c.dropped_at or '-'}, intent {c.intent}"


def summarise(fault: str, reports: list[VoiceCallReport], *, note: str = "",
              to_human_s: float | None = None) -> Row:
    complete = sum(1 for r in reports if r.contact is not None and r.contact.outcome)
    details = [f"{r.spec.from_number}: {outcome_of(r)} {r.error or ''}".strip()
               for r in reports]
    return Row(fault, len(reports), sum(lost(r) for r in reports), to_human_s,
               f"{complete}/{len(reports)}", note, details)


async def with_calls(h: Harness, n: int, fault: Callable[[], Awaitable[None]],
                     *, fault_after_s: float = 4.0, stagger_s: float = 1.0,
                     stay_s: float | None = None,
                     questions: Sequence[str] = QUESTIONS) -> list[VoiceCallReport]:
    """Place ``n`` question calls, run ``fault`` while they are in the IVR. ``stay_s``: the
    callers stay on the line until the IVR ends the call (or this long)."""
    async def call(i: int) -> VoiceCallReport:
        await asyncio.sleep(i * stagger_s)
        return await h.line.place(VoiceCallSpec(questions[i % len(questions)], h.number(),
                                                hangup_after_s=stay_s))

    calls = [asyncio.create_task(call(i)) for i in range(n)]
    await asyncio.sleep(fault_after_s)
    await fault()
    return list(await asyncio.gather(*calls))


async def ari_cut(h: Harness, n: int = 3) -> Row:
    """The ARI websocket drops mid-call (the client reconnects and resyncs)."""
    async def cut() -> None:
        await h.line.node.ari.close_events()
    return summarise("ARI websocket cut", await with_calls(h, n, cut),
                     note="reconnect + resync; calls carry on in the IVR")


async def ami_cut(h: Harness, n: int = 3, down_s: float = 20.0) -> Row:
    """AMI dies (connections reset, new ones refused) for ``down_s`` mid-call."""
    async def cut() -> None:
        await h.ami.kill()

    try:
        reports = await with_calls(h, n, cut)
        await asyncio.sleep(max(0.0, down_s - 10))
    finally:
        await h.ami.revive()
    return summarise(f"AMI cut {down_s:.0f} s", reports,
                     note="lease renewed over ARI (long lease); no caller sent to a human")


async def asr_fault(h: Harness, mode: str, n: int = 3, stay_s: float = 60.0) -> Row:
    """The recogniser raises, or hangs, for the calls in flight."""
    async def brk() -> None:
        h.asr.mode = mode
    try:
        # The callers stay: speech is not understood, so the IVR's way out (keypad, a
        # human) is what serves them.
        reports = await with_calls(h, n, brk, fault_after_s=0.5, stay_s=stay_s)
    finally:
        h.asr.mode = "ok"
    return summarise(f"recogniser {'raising' if mode == 'raise' else 'hanging'}", reports,
                     note=f"{h.asr.tripped} recogniser calls failed; keypad / re-ask / human")


@contextlib.contextmanager
def full_disk(folder: Path) -> Any:
    """A tiny tmpfs over ``folder``, holding what was there, then filled to the last byte."""
    saved = Path(f"{folder}.saved-{os.getpid()}")
    shutil.copytree(folder, saved, dirs_exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], check=True)
    try:
        shutil.copytree(saved, folder, dirs_exist_ok=True)
        with open(folder / ".filler", "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        shutil.rmtree(saved, ignore_errors=True)


async def disk_full(h: Harness, n: int = 3) -> Row:
    """The prompt folder's disk is full: recorded prompts already exported still play,
    generated answers cannot be written."""
    folder = h.line.settings.prompt_dir
    folder.mkdir(parents=True, exist_ok=True)
    with full_disk(folder):
        reports = await with_calls(h, n, _nothing, fault_after_s=0.0)
    return summarise("prompt disk full", reports)


async def _nothing() -> None:
    return None


def default_settings(url: str, data_dir: Path) -> Settings:
    return replace(load_settings(env_file=None, environ={}), database_url=url,
                   data_dir=data_dir, log_level="WARNING")


async def node_loss(rig: Rig, url: str, *, n: int = 3, restart: bool,
                    say: Callable[[str], Path]) -> Row:
    """``kill -9`` of a node process with ``n`` callers in the IVR; with ``restart`` a new
    node starts at once (its lease off, so adoption, not the lease, saves the callers).
    A SIPp agent in the fallback queue answers; time to a human per caller."""
    from ivr.telephony.ami import AmiClient
    from ivr.telephony.ami.events import QueueCallerJoin
    from ivr.testing.centre import clear_queue_members
    from ivr.testing.sipcaller import SippAgent, place_call

    creds = rig.credentials
    ami = AmiClient("127.0.0.1", rig.ports.ami, username=creds.ami_user,
                    secret=creds.ami_password)
    ami_task = asyncio.create_task(ami.run())
    await ami.wait_connected(10)
    await clear_queue_members(ami)
    joins = ami.subscribe(QueueCallerJoin)
    lease = {"IVR_ARI_LEASE_S": "0"} if restart else {}
    since = datetime.now(UTC)
    node = await start_node_process(url, node_env(rig, **lease))
    audio = await asyncio.to_thread(say, "I have a question about my invoice")
    numbers = [f"+3161{i:07d}" for i in range(n)]
    second: asyncio.subprocess.Process | None = None
    try:
        async with SippAgent(rig, 1) as agent:
            with contextlib.suppress(Exception):  # the node may have logged agent 1 in
                await ami.action("QueueAdd", [("Queue", "ivr-general"),
                                              ("Interface", "PJSIP/agent1")])
            calls = [asyncio.create_task(place_call(
                rig, audio, number, dialed="100", hangup_after_s=60 if restart else 35,
                audio_delay_s=8.0)) for number in numbers]
            await asyncio.sleep(5)
            seen_before = len(agent.invites())  # the agent's trace outlives one row
            node.kill()
            killed = time.monotonic()
            await node.wait()
            if restart:
                second = await start_node_process(url, node_env(rig, IVR_ARI_LEASE_S="0"))
            reached = await _queue_joins(joins, numbers, killed, 90 if restart else 25)
            fallbacks = await _fallbacks_rung(agent, seen_before)
            for c in calls:
                c.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
    finally:
        for proc in (node, second):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        joins.close()
        ami_task.cancel()
        await asyncio.gather(ami_task, return_exceptions=True)
    return await _loss_row(rig, url, numbers, since, restart, reached, fallbacks)


async def _queue_joins(joins: Any, numbers: Sequence[str], killed: float,
                       within_s: float) -> dict[str, float]:
    """Seconds from the kill to each caller's QueueCallerJoin (those seen in time)."""
    reached: dict[str, float] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within_s):
            while len(reached) < len(numbers):
                ev = await joins.get(within_s=1.0)
                number = str(getattr(ev, "caller_id_num", "") or "")
                if number in numbers and number not in reached:
                    reached[number] = time.monotonic() - killed
    return reached


async def _fallbacks_rung(agent: Any, seen_before: int) -> set[str]:
    """The X-IVR-Fallback headers agent 1 rang with (it rings for the first caller)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            for _ in itertools.count():  # the agent's trace file: nothing to await
                if len(agent.invites()) > seen_before:
                    break
                await asyncio.sleep(0.2)
    return {inv.get("x-ivr-fallback", "") for inv in agent.invites()[seen_before:]}


async def _loss_row(rig: Rig, url: str, numbers: Sequence[str], since: datetime,
                    restart: bool, reached: dict[str, float], fallbacks: set[str]) -> Row:
    n = len(numbers)
    worst = max(reached.values()) if reached else None
    note = f"agent 1 rang with X-IVR-Fallback {sorted(f for f in fallbacks if f)}"
    complete = "n/a"
    figures: dict[str, Any] = {}
    if not restart:
        # Nobody was left to write the outcomes; the node started again later closes
        # them from the notes the dialplan's lease fallback left (ari/ami app_lost).
        done, took = await later_node_closes(rig, url, numbers, since)
        complete = f"{done}/{n}"
        figures = {"closed_s_after_later_node_ready": took}
        note += ("; the node started later closed the records "
                 f"{'-' if took is None else f'{took:.1f} s'} after it was ready")
    # time to the human queue (QueueCallerJoin); agent 1 then takes them one by one
    return Row("node kill -9, restarted at once (lease off: adoption)" if restart
               else "node kill -9, no restart (started again later)", n, n - len(reached),
               None if worst is None else round(worst, 1), complete, note=note,
               details=[f"{k}: {v:.1f}s" for k, v in reached.items()], figures=figures)


async def later_node_closes(rig: Rig, url: str, numbers: Sequence[str], since: datetime,
                            within_s: float = 60.0) -> tuple[int, float | None]:
    """A node started on ``url`` after the callers of a dead one reached the human queue
    (lease on): how many of their contact records get an outcome within ``within_s``
    of it being ready, and how long that took."""
    from ivr.storage.db import make_engine
    from ivr.storage.repositories import SqlContactLog

    engine = make_engine(url)
    contacts = SqlContactLog(engine)
    digits = {n.lstrip("+") for n in numbers}
    node = await start_node_process(url, node_env(rig))
    ready = time.monotonic()
    done, took = 0, None
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                for _ in itertools.count():  # another process writes them: poll
                    mine = [c for c in await contacts.history(limit=200)
                            if c.started_at >= since and c.caller.lstrip("+") in digits]
                    done = sum(1 for c in mine if c.outcome is not None)
                    if done >= len(numbers):
                        took = round(time.monotonic() - ready, 1)
                        break
                    await asyncio.sleep(0.5)
    finally:
        node.kill()
        await node.wait()
        engine.dispose()
    return done, took
