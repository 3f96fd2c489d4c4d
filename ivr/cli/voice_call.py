"""Real SIP calls through the Asterisk rig: `ivr call --say` and the voice part of `ivr demo`.

The node (Stasis app + web + outbox) runs in this process on a Stasis app of its
own; a Python SIP caller (:mod:`ivr.testing.turncaller`) speaks each turn once the
IVR's prompt has finished, as heard on its own RTP, and the call's channel in this
node takes input (silence alone cannot tell a pause between two prompts from the
end of the question on a busy machine); it measures the turn gap at the wire.
``_prompt_leads`` (prompt lengths from a dry run over the text channel) remains for
SIPp callers whose audio must be laid out in advance (the AGI entry).
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
from ivr.domain.model import ContactChannel, ContactSnapshot, Language, as_language
from ivr.domain.ports import Clock, Recognizer
from ivr.testing.rig import Rig, rig_from_env

if TYPE_CHECKING:
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
    barge_in_ms: list[float] = field(default_factory=list)
    # Heard by the caller at the wire: its last frame -> the IVR's first audible frame.
    turn_gap_ms: list[float] = field(default_factory=list)
    spoke_until: list[float] = field(default_factory=list)  # monotonic end of each turn sent
    timings: list[ResponseTiming] = field(default_factory=list)  # the node's, per turn
    duration_s: float = 0.0
    error: str | None = None

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
            "turn_gap_ms": [round(x, 1) for x in self.turn_gap_ms],
            "duration_s": round(self.duration_s, 1), "error": self.error,
        }


async def _prompt_leads(app: App, settings: Settings,
                        spec: VoiceCallSpec) -> list[tuple[float, float]]:
    """For each caller input: (seconds from the previous input to the end of the prompt that
    asks for it, length of that prompt), learned from a dry run of the same flow.

    The dry run uses the text channel and an in-memory contact log, and hangs up at
    the question, so it has no side effects. Waits the IVR does (no-input and digit
    timeouts) are included.
    """
    from ivr.speech.audio import read_wav
    from ivr.speech.tts import default_tts
    from ivr.telephony.callerid import parse_caller
    from ivr.telephony.prompts import FilePromptResolver
    from ivr.telephony.text_channel import TextCallChannel

    script = ["silence"] * spec.silent_turns
    script += [f"dtmf:{spec.dtmf}"] if spec.dtmf else []
    script.append("hangup")
    channel = TextCallChannel(caller_info=parse_caller(spec.from_number,
                                                       settings.default_region),
                              script=script)
    # No observers: the dry run leaves no record, no screen-pop and no metrics.
    await app.flow(channel, ContactChannel.TEXT, observers=()).run()
    # Same files the node plays: recorded prompts where they exist, else synthesised.
    prompts_audio = FilePromptResolver(tts=default_tts(), static_dir=settings.sounds_dir,
                                       export_dir=settings.prompt_dir)

    async def seconds(prompt: Any) -> float:
        path = await prompts_audio.audio_file(prompt)
        return (await asyncio.to_thread(read_wav, path)).duration_s

    leads: list[tuple[float, float]] = []
    current = last = 0.0
    prompts = iter(channel.said)
    for turn in channel.turns:
        if turn.speaker == "caller" and turn.text.startswith("[keys"):
            leads.append((current, last))
            current = 0.0
        elif turn.speaker == "caller" and turn.text == "(silence)":
            current += settings.no_input_timeout_s  # the IVR waits this long, then goes on
        elif turn.speaker == "caller" and turn.text == "(no keys)":
            current += app.flow_config.digit_timeout_s
        elif turn.speaker == "ivr":
            last = await seconds(next(prompts))
            current += last
    leads.append((current, last))  # the spoken question (the dry run hung up there)
    return leads


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
    def ready() -> bool:
        return any(c.awaiting_input for c in node.stasis.calls.values()
                   if (c.caller.number or "anonymous") == (spec.from_number or "anonymous"))

    caller = TurnCaller(rig.ports.sip, from_number=spec.from_number,
                        dialed=f"test-{settings.ari_app}", ready=ready)
    result = await caller.run(caller_turns(spec, speech), stay_s=spec.hangup_after_s,
                              max_call_s=max(max_call_s, spec.hangup_after_s or 0) + 30,
                              leave=spec.leave_when)
    key = spec.from_number or "anonymous"
    for _ in range(100):  # the flow saves its contact as the call ends
        if key in ended:
            break
        await asyncio.sleep(0.1)
    channel = ended.pop(key, None)
    contact = await app.contacts.get(channel.session_id) if channel else None
    report = VoiceCallReport(spec, result.answered, contact,
                             duration_s=time.monotonic() - t0)
    report.turn_gap_ms = [g for g in (t.gap_ms for t in result.turns) if g is not None]
    report.spoke_until = [result.started_at + t.sent_end_s for t in result.turns
                          if t.sent_end_s is not None]
    if channel is not None:
        report.timings = list(channel.stats.responses)
        report.response_ms = [r.response_ms for r in channel.stats.responses]
        report.asr_ms = [r.asr_ms for r in channel.stats.responses]
        report.silence_wait_ms = [r.silence_wait_ms
                                  for r in channel.stats.responses]
        report.barge_in_ms = [b.detect_to_stop_request_ms
                              for b in channel.stats.barge_ins]
        report.error = result.error
    else:
        report.error = (f"the call never reached the IVR (SIP status {result.final_status}"
                        + (f": {result.error}" if result.error else "") + ")")
    return report


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
    from ivr.app import build_node, build_recognizer
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
        asr = None if recognizer is None else recognizer(build_recognizer(settings))
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


def run_voice_call(ctx: click.Context, *, say: str, from_number: str | None, lang: str,
                   dtmf: str | None, as_json: bool,
                   barge_in_after_s: float | None = None) -> None:
    from ivr.cli.common import settings_from, stdout_to_stderr

    settings = settings_from(ctx)
    spec = VoiceCallSpec(say=say, from_number=from_number, lang=as_language(lang), dtmf=dtmf,
                         barge_in_after_s=barge_in_after_s)
    with stdout_to_stderr(as_json):  # serve_node's sandbox prints what it receives
        reports = asyncio.run(run_voice_calls(settings, [spec]))
    if as_json:
        click.echo(json.dumps(reports[0].as_dict(), indent=2, ensure_ascii=False))
        return
    console = Console(width=max(140, Console().width))
    console.print(voice_table(reports, "Real SIP call through Asterisk"))
    console.print(latency_summary(reports))
