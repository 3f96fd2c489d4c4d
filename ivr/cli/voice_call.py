"""Real SIP calls through the Asterisk rig: `ivr call --say` and the voice part of `ivr demo`.

The node (Stasis app + web + outbox) runs in this process on a Stasis app of its
own; a Python SIP caller (:mod:`ivr.testing.turncaller`) speaks each turn once the
IVR's prompt has finished, as heard on its own RTP, and the call's channel in this
node takes input (silence alone cannot tell a pause between two prompts from the
end of the question on a busy machine); it measures the turn gap at the wire.
A barge-in turn talks over the prompt of the channel's input turn (``asking``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ivr.config import Settings
from ivr.domain.model import ContactSnapshot, Language, as_language
from ivr.domain.ports import Clock, PortError, Recognizer
from ivr.testing.rig import Rig, rig_from_env

if TYPE_CHECKING:
    from datetime import datetime

    from ivr.app import App, Node
    from ivr.telephony.ari.channel import AriCallChannel, ResponseTiming
    from ivr.testing.turncaller import Turn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceCallSpec:
    say: str
    from_number: str | None
    lang: Language = "en"
    dtmf: str | None = None
    title: str = ""
    expect_scenario: str | None = None
    expect_intent: str | None = None
    silent_turns: int = 0  # say nothing this many times first (keypad fallback)
    # Stay on the line this long after the answer (waiting in a queue, talking to an
    # agent); None: hang up once the IVR has answered the last turn.
    hangup_after_s: float | None = None
    # Speak this long after the question prompt starts (barge-in) instead of after it.
    barge_in_after_s: float | None = None
    # Lead the utterance with silence up to this length, so that callers of different
    # sentences who start together also stop talking together (bench/turns.py).
    pad_to_s: float | None = None
    # While staying (hangup_after_s), hang up as soon as this returns True.
    leave_when: Callable[[], bool] | None = None


@dataclass
class VoiceCallReport:
    spec: VoiceCallSpec
    sip_ok: bool
    contact: ContactSnapshot | None
    response_ms: list[float] = field(default_factory=list)
    asr_ms: list[float] = field(default_factory=list)
    silence_wait_ms: list[float] = field(default_factory=list)
    # The node's: speech detected -> Asterisk reports the prompt stopped.
    barge_in_ms: list[float] = field(default_factory=list)
    # At the wire: the caller's speech onset -> the prompt's last audible frame.
    barge_in_wire_ms: list[float] = field(default_factory=list)
    # Heard by the caller at the wire: its last frame -> the IVR's first audible frame.
    turn_gap_ms: list[float] = field(default_factory=list)
    # The same from the end of the caller's last word (its speech's trailing quiet added).
    last_word_gap_ms: list[float] = field(default_factory=list)
    spoke_until: list[float] = field(default_factory=list)  # monotonic end of each turn sent
    timings: list[ResponseTiming] = field(default_factory=list)  # the node's, per turn
    duration_s: float = 0.0
    error: str | None = None
    acks: int = 0  # "One moment, let me check that" heard (slow answers)
    session_id: str | None = None  # the call's contact id (None: never reached the IVR)

    def as_dict(self) -> dict[str, Any]:
        c = self.contact
        return {
            "title": self.spec.title, "caller": self.spec.from_number or "withheld",
            "said": self.spec.say, "sip_ok": self.sip_ok,
            "transcript": [t for t in (c.transcript if c else ()) if t.startswith("caller:")],
            "question": c.question if c else None, "intent": c.intent if c else None,
            "scenario": c.scenario.value if c and c.scenario else None,
            "skill": c.skill if c else None, "action": c.action if c else None,
            "outcome": c.outcome.value if c and c.outcome else None,
            "response_ms": [round(x, 1) for x in self.response_ms],
            "asr_ms": [round(x, 1) for x in self.asr_ms],
            "silence_wait_ms": [round(x, 1) for x in self.silence_wait_ms],
            "barge_in_ms": [round(x, 1) for x in self.barge_in_ms],
            "barge_in_wire_ms": [round(x, 1) for x in self.barge_in_wire_ms],
            "turn_gap_ms": [round(x, 1) for x in self.turn_gap_ms],
            "last_word_gap_ms": [round(x, 1) for x in self.last_word_gap_ms],
            "duration_s": round(self.duration_s, 1), "error": self.error,
        }


def caller_turns(spec: VoiceCallSpec, speech: bytes) -> list[Turn]:
    """The caller's script: silences, the question, then any keys (ask first)."""
    from ivr.testing.turncaller import Turn

    turns = [Turn(label="silence") for _ in range(spec.silent_turns)]
    if speech:
        turns.append(Turn(speech=speech, barge_in_after_s=spec.barge_in_after_s,
                          label="question"))
    if spec.dtmf:
        turns.append(Turn(dtmf=spec.dtmf, label="keys"))
    return turns


async def _place(app: App, node: Node, rig: Rig, settings: Settings, spec: VoiceCallSpec,
                 ended: dict[str, AriCallChannel], max_call_s: float) -> VoiceCallReport:
    """One real SIP call through the rig; the caller takes each turn when the IVR has
    finished its prompt (no timing learned in advance). Its contact and timings."""
    from ivr.testing.sipcaller import read_ulaw_wav, synthesize_utterance
    from ivr.testing.turncaller import TurnCaller

    t0 = time.monotonic()
    speech = b""
    if spec.say:
        wav = await asyncio.to_thread(synthesize_utterance, spec.say, spec.lang)
        speech = read_ulaw_wav(wav)
        if spec.pad_to_s is not None:
            speech = speech.rjust(int(spec.pad_to_s * 8000), b"\xff")  # mu-law silence
    def mine() -> list[AriCallChannel]:
        return [c for c in node.stasis.calls.values()
                if (c.caller.number or "anonymous") == (spec.from_number or "anonymous")]

    caller = TurnCaller(rig.ports.sip, from_number=spec.from_number,
                        dialed=f"test-{settings.ari_app}",
                        ready=lambda: any(c.awaiting_input for c in mine()),
                        asking=lambda: any(c.asking for c in mine()))
    result = await caller.run(caller_turns(spec, speech), stay_s=spec.hangup_after_s,
                              max_call_s=max(max_call_s, spec.hangup_after_s or 0) + 30,
                              leave=spec.leave_when)
    # End to end for the caller: synthesis, dialling, the turns, the hang-up; not the
    # bookkeeping below (waiting for the flow to end and its contact to be saved).
    duration_s = time.monotonic() - t0
    key = spec.from_number or "anonymous"
    for _ in range(100):  # the flow saves its contact as the call ends
        if key in ended:
            break
        await asyncio.sleep(0.1)
    channel = ended.pop(key, None)
    contact = await _saved_contact(app, channel.session_id) if channel else None
    report = VoiceCallReport(spec, result.answered, contact, duration_s=duration_s,
                             session_id=channel.session_id if channel else None)
    report.turn_gap_ms = [g for g in (t.gap_ms for t in result.turns) if g is not None]
    report.last_word_gap_ms = [g for g in (t.last_word_gap_ms for t in result.turns)
                               if g is not None]
    report.spoke_until = [result.started_at + t.sent_end_s for t in result.turns
                          if t.sent_end_s is not None]
    report.barge_in_wire_ms = [b for b in (t.barge_in_stop_ms for t in result.turns)
                               if b is not None]
    if channel is not None:
        report.timings = list(channel.stats.responses)
        report.acks = channel.acks
        report.response_ms = [r.response_ms for r in channel.stats.responses]
        report.asr_ms = [r.asr_ms for r in channel.stats.responses]
        report.silence_wait_ms = [r.silence_wait_ms
                                  for r in channel.stats.responses]
        # Until Asterisk reported the prompt stopped (the request alone if it never did).
        report.barge_in_ms = [b.detect_to_stop_request_ms if b.detect_to_finished_ms is None
                              else b.detect_to_finished_ms for b in channel.stats.barge_ins]
        report.error = result.error
    else:
        report.error = (f"the call never reached the IVR (SIP status {result.final_status}"
                        + (f": {result.error}" if result.error else "") + ")")
    return report


async def _saved_contact(app: App, session_id: str, within_s: float = 15.0
                         ) -> ContactSnapshot | None:
    """The call's contact once saved as ended: the save can trail the end of the call task
    (20 calls ending together on a loaded machine: every contact looked missing)."""
    contact = None
    for _ in range(int(within_s / 0.1)):
        try:
            contact = await app.contacts.get(session_id)
        except PortError:  # the database away (a fault row): the record may come later
            contact = None
        if contact is not None and contact.ended_at is not None:
            break
        await asyncio.sleep(0.1)
    return contact


@dataclass
class VoiceLine:
    """A running node on the rig: ``place(spec)`` makes one real call through it."""

    place: Callable[[VoiceCallSpec], Awaitable[VoiceCallReport]]
    node: Node
    settings: Settings


@contextlib.asynccontextmanager
async def voice_node(settings: Settings, *, rig: Rig | None = None, clock: Clock | None = None,
                     hangup_after_s: float = 75.0,
                     ami_port: int | None = None,
                     recognizer: Callable[[Recognizer], Recognizer] | None = None,
                     ) -> AsyncIterator[VoiceLine]:
    """Bring up the rig and the node (live routing in sync when enabled); yields the line.

    ``ami_port`` points the node's AMI at another local port (a test's killable
    proxy in front of the rig's AMI) instead of the rig's. ``recognizer`` wraps the
    node's recogniser (the fault matrix breaks it on purpose).
    """
    from ivr.app import build_node, build_recognizer, turn_judge
    from ivr.cli.serve_cmd import rig_settings
    from ivr.storage.db import upgrade
    from ivr.testing.app import running_app
    from ivr.web.app import free_port

    if rig is None:
        rig = rig_from_env()  # KANAAL_RIG_* picks a developer's own rig copy
        await asyncio.to_thread(rig.up)
    port = free_port()
    settings = replace(rig_settings(settings, rig), web_port=port, agi_port=0,
                       public_url=f"http://127.0.0.1:{port}")
    # A Stasis app of its own: several test nodes on one rig (three `ivr call --say` at
    # once) would otherwise take each other's calls. Callers dial test-<app>.
    settings = replace(settings, ari_app=f"{settings.ari_app}-{uuid.uuid4().hex[:8]}")
    if ami_port is not None:
        settings = replace(settings, ami_port=ami_port)
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    ended: dict[str, AriCallChannel] = {}

    def on_end(channel: AriCallChannel) -> None:
        ended[channel.caller.number or "anonymous"] = channel

    ready = asyncio.Event()
    async with running_app(settings, clock=clock) as app:
        asr = None if recognizer is None else recognizer(
            build_recognizer(settings, judge=turn_judge(app)))
        built = build_node(app, recognizer=asr, on_call_end=on_end)
        node = asyncio.create_task(built.run(ready))
        try:
            async with asyncio.timeout(120):
                await ready.wait()
            if built.centre is not None:
                # Route the first call on live state, not on the static plan.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(15):
                        await built.centre.feed.synced.wait()

            async def place(spec: VoiceCallSpec) -> VoiceCallReport:
                return await _place(app, built, rig, settings, spec, ended, hangup_after_s)

            yield VoiceLine(place, built, settings)
        finally:
            node.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await node


async def run_voice_calls(settings: Settings, specs: list[VoiceCallSpec], *,
                          concurrent: bool = False, rig: Rig | None = None,
                          clock: Clock | None = None,
                          hangup_after_s: float = 75.0) -> list[VoiceCallReport]:
    """Place each call (one after another, or all at once) and collect the results."""
    async with voice_node(settings, rig=rig, clock=clock,
                          hangup_after_s=hangup_after_s) as line:
        if concurrent:
            return list(await asyncio.gather(*(line.place(s) for s in specs)))
        return [await line.place(s) for s in specs]


def voice_table(reports: list[VoiceCallReport], title: str) -> Table:
    table = Table(title=title)
    for col in ("caller", "heard (ASR)", "intent", "scenario", "action", "outcome",
                "resp ms"):
        table.add_column(col, overflow="fold")
    for r in reports:
        d = r.as_dict()
        heard = "; ".join(t.removeprefix("caller: ") for t in d["transcript"]) or "-"
        # escape(): rich would take "[keys 1002]" or an ASR "[music]" for markup
        # and silently drop it from the table.
        table.add_row(*(escape(str(v)) for v in (
            d["caller"], heard, d["intent"] or "-", d["scenario"] or "-", d["action"] or "-",
            d["outcome"] or (d["error"] or "-"),
            ", ".join(f"{x:.0f}" for x in d["response_ms"]) or "-")))
    return table


def latency_summary(reports: list[VoiceCallReport]) -> str:
    resp = [x for r in reports for x in r.response_ms]
    asr = [x for r in reports for x in r.asr_ms]
    if not resp:
        return "no response timings recorded"
    return (f"end of speech -> response playback: p50 {statistics.median(resp):.0f} ms, "
            f"max {max(resp):.0f} ms over {len(resp)} turns (ASR p50 "
            f"{statistics.median(asr):.0f} ms); silence wait before end of speech not included")


def voice_call_plan(settings: Settings, *, say: str, from_number: str | None,
                    lang: str | None, dtmf: str | None, barge_in_after_s: float | None = None,
                    at: datetime | None = None) -> tuple[Settings, VoiceCallSpec, Clock | None]:
    """What ``ivr call --say`` runs: the node's settings (``--lang`` is the language an
    unknown caller is greeted in, as on the text channel), the caller, and the node's
    clock (``--at``: opening hours as at that moment)."""
    from ivr.clock import PinnedClock

    if lang:
        settings = replace(settings, default_language=lang)
    spec = VoiceCallSpec(say=say, from_number=from_number, lang=as_language(lang or "en"),
                         dtmf=dtmf, barge_in_after_s=barge_in_after_s)
    return settings, spec, PinnedClock(at) if at else None


def run_voice_call(ctx: click.Context, *, say: str, from_number: str | None, lang: str | None,
                   dtmf: str | None, as_json: bool,
                   barge_in_after_s: float | None = None, at: datetime | None = None) -> None:
    from ivr.cli.common import settings_from, stdout_to_stderr

    settings, spec, clock = voice_call_plan(
        settings_from(ctx), say=say, from_number=from_number, lang=lang, dtmf=dtmf,
        barge_in_after_s=barge_in_after_s, at=at)
    with stdout_to_stderr(as_json):  # serve_node's sandbox prints what it receives
        reports = asyncio.run(run_voice_calls(settings, [spec], clock=clock))
    if as_json:
        click.echo(json.dumps(reports[0].as_dict(), indent=2, ensure_ascii=False))
        return
    console = Console(width=max(140, Console().width))
    console.print(voice_table(reports, "Real SIP call through Asterisk"))
    console.print(latency_summary(reports))
