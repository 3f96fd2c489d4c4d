"""`ivr demo`: sample calls covering every scenario, printed as a table."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console

from ivr.cli.call_cmd import TextCallReport, decision_table, run_text_call
from ivr.cli.common import settings_from, stdout_to_stderr
from ivr.config import Settings


@dataclass(frozen=True)
class SampleCall:
    title: str
    caller: str | None
    script: tuple[str, ...]
    expect_scenario: str | None
    expect_intent: str | None


# Callers are the demo CRM's customers (ivr db seed --demo).
SAMPLES: tuple[SampleCall, ...] = (
    SampleCall("S1 order status (known caller)", "+447700900123",
               ("where is my order", "yes"), "S1", "order_status"),
    SampleCall("S1 outage in caller's area", "+31611112222",
               ("is there an internet outage in my area", "yes"), "S1", "outage_info"),
    SampleCall("S1 opening hours (Dutch)", "+31687654321",
               ("wat zijn jullie openingstijden", "ja"), "S1", "opening_hours"),
    SampleCall("S2 self-service link (WhatsApp)", "+31633334444",
               ("ik ga verhuizen en wil mijn adres wijzigen", "nee dank je"), "S2",
               "address_change"),
    SampleCall("S3 switch to live chat", "+447700900456",
               ("the app keeps crashing on my phone",), "S3", "tech_support_app"),
    SampleCall("S4 skilled agent (billing)", "+31655556666",
               ("I have a question about my invoice",), "S4", "invoice_question"),
    SampleCall("Sensitive: report a death", "+31644445555",
               ("ik wil het overlijden van mijn vader melden",), "S4", "report_death"),
    SampleCall("Unknown number asks first, then keys in customer no + PIN", "+31201112233",
               ("where is my order", "dtmf:1001#", "dtmf:4321", "ja"), "S1",
               "order_status"),
    SampleCall("Withheld number wants a person", None,
               ("I want to speak to someone",), "S4", "speak_to_agent"),
    SampleCall("Not understood twice -> keypad", "+447700900123",
               ("blah blah blah", "hmm", "dtmf:2"), "S4", "invoice_question"),
)

def demo_moment() -> datetime:
    """10:30 local on the next weekday: agents and chat are open, seeded data is current."""
    now = datetime.now(ZoneInfo("Europe/Amsterdam"))
    at = now.replace(hour=10, minute=30, second=0, microsecond=0)
    while at.weekday() >= 5:
        at += timedelta(days=1)
    return at


async def run_text_demo(settings: Settings, *, echo: bool) -> tuple[list[TextCallReport], str]:
    from ivr.clock import PinnedClock
    from ivr.storage.db import upgrade
    from ivr.testing.app import running_app
    from ivr.web.app import create_web_app, free_port, web_server

    console = Console(width=max(160, Console().width))
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    port = free_port()
    settings = replace(settings, web_port=port, public_url=f"http://127.0.0.1:{port}")
    sandbox_lines: list[str] = []
    async with running_app(settings, clock=PinnedClock(demo_moment()),
                         sandbox_log=sandbox_lines.append) as app, \
            web_server(create_web_app(app), "127.0.0.1", port):
        reports = []
        for sample in SAMPLES:
            if echo:
                console.rule(f"[bold]{sample.title}[/] from {sample.caller or 'withheld'}")
            reports.append(await run_text_call(app, settings, from_number=sample.caller,
                                               script=list(sample.script), echo=echo))
        await asyncio.sleep(0.3)  # let the sandbox's status callbacks land in its log
    return reports, "\n".join(sandbox_lines)


@click.command()
@click.option("--text", "text_only", is_flag=True,
              help="text channel only (no Asterisk rig, no audio)")
@click.option("--json", "as_json", is_flag=True, help="print results as JSON")
@click.pass_context
def demo(ctx: click.Context, text_only: bool, as_json: bool) -> None:
    """Run the sample calls of every scenario and print the decisions."""
    settings = settings_from(ctx)
    with stdout_to_stderr(as_json):
        reports, sandbox_log = asyncio.run(run_text_demo(settings, echo=not as_json))
    rows = [r.as_dict() for r in reports]
    failures = [
        f"{s.title}: expected {s.expect_scenario}/{s.expect_intent}, got "
        f"{r['scenario']}/{r['intent']}"
        for s, r in zip(SAMPLES, rows, strict=True)
        if (s.expect_scenario, s.expect_intent) != (r["scenario"], r["intent"])
    ]
    if not as_json:
        console = Console(width=max(160, Console().width))
        console.print(decision_table(reports, "Kanaal demo: sample calls (text channel)"))
        console.rule("Messages the Twilio sandbox received")
        console.print(sandbox_log or "(none)")
    voice_rows = None
    if not text_only:
        with stdout_to_stderr(as_json):
            voice_rows, voice_failures = _voice_demo(settings, as_json=as_json)
        failures += voice_failures
    if as_json:
        # One document: text calls, and the voice calls (null with --text).
        click.echo(json.dumps({"text": rows, "voice": voice_rows}, indent=2,
                              ensure_ascii=False))
    if failures:
        raise click.ClickException("demo calls landed in the wrong place:\n" +
                                   "\n".join(failures))


# Real SIP calls through the rig. English speakers: Whisper tiny.en is the engine that
# installs from a registry; Dutch speech needs an operator-supplied Vosk model. The calls
# run at the same time, so each comes from a different number.
VOICE_SAMPLES = (
    ("S1 order status", "where is my order", "+447700900123", None, "S1", "order_status"),
    ("S1 outage (proactive + answer)", "is there an internet outage in my area",
     "+31611112222", None, "S1", "outage_info"),
    ("S2 self-service link", "I am moving house and need to change my address",
     "+31655556666", None, "S2", "address_change"),
    ("S3 live chat", "the app keeps crashing on my phone", "+447700900456", None, "S3",
     "tech_support_app"),
    ("S4 billing agent (unknown number keys customer no)", "I have a question about my bill",
     "+447700900999", "1002#", "S4", "invoice_question"),
    ("Sensitive: report a death (withheld)", "I want to report a death in the family",
     None, None, "S4", "report_death"),
    ("Unknown caller asks first, no keypad", "what are your opening hours", "+31201112233",
     None, "S1", "opening_hours"),
)


def _voice_demo(settings: Settings, *,
                as_json: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Place the voice samples; returns their results and the misrouted ones."""
    from ivr.cli.voice_call import VoiceCallSpec, latency_summary, run_voice_calls, voice_table

    # Each caller stays on the line until the IVR hangs up (answer given, link sent) or,
    # handed to a queue nobody in the demo answers, for 45 s: a caller who hung up after
    # the IVR's first reply would end every call as "abandoned".
    specs = [VoiceCallSpec(say=say, from_number=number, dtmf=dtmf, title=title,
                           expect_scenario=scen, expect_intent=intent, hangup_after_s=45)
             for title, say, number, dtmf, scen, intent in VOICE_SAMPLES]
    console = Console(width=max(160, Console().width))
    if not as_json:
        console.rule("Real SIP calls: SIPp -> Asterisk 22 (rig) -> ivr (ARI)")
    from ivr.clock import PinnedClock

    # Concurrent: the calls overlap on the rig like real traffic does.
    reports = asyncio.run(run_voice_calls(settings, specs, concurrent=True,
                                          clock=PinnedClock(demo_moment())))
    if not as_json:
        console.print(voice_table(reports, "Kanaal demo: real calls through Asterisk"))
        console.print(latency_summary(reports))
    return [r.as_dict() for r in reports], [
        f"voice {r.spec.title}: expected {r.spec.expect_scenario}/{r.spec.expect_intent}, got "
        f"{d['scenario']}/{d['intent']}"
        for r in reports
        if (r.spec.expect_scenario, r.spec.expect_intent) != (
            (d := r.as_dict())["scenario"], d["intent"])
    ]
