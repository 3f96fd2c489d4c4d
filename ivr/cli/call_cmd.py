"""`ivr call`: run the real CallFlow over a text channel (or a real SIP call with --say)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ivr.cli.common import settings_from, stdout_to_stderr
from ivr.config import Settings
from ivr.domain.flow import FlowResult
from ivr.domain.model import ContactChannel
from ivr.logs import bind_session
from ivr.telephony.callerid import parse_caller
from ivr.telephony.text_channel import TextCallChannel, Turn


@dataclass(frozen=True)
class TextCallReport:
    """One text call: the dialogue turns and the flow's result."""

    caller: str
    turns: list[Turn]
    result: FlowResult
    elapsed_ms: float

    def as_dict(self) -> dict[str, Any]:
        c = self.result.contact
        d = self.result.decision
        return {
            "session": c.id,
            "caller": self.caller,
            "customer_id": c.customer_id,
            "language": c.language,
            "question": c.question,
            "intent": c.intent,
            "confidence": c.confidence,
            "scenario": c.scenario.value if c.scenario else None,
            "skill": c.skill,
            "action": c.action,
            "outcome": self.result.outcome.value,
            "dropped_at": c.dropped_at.value if c.dropped_at else None,
            "decision": d.as_dict() if d else None,
            "dialogue": [{"speaker": t.speaker, "text": t.text} for t in self.turns],
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


async def run_text_call(app: Any, settings: Settings, *, from_number: str | None,
                        script: list[str], echo: bool) -> TextCallReport:
    """Run one scripted call through the app's real CallFlow."""
    console = Console(width=max(120, Console().width))

    def show(turn: Turn) -> None:
        if not echo:
            return
        style = {"ivr": "bold cyan", "caller": "bold yellow", "system": "dim"}[turn.speaker]
        console.print(f"[{style}]{turn.speaker:>6}[/] {escape(turn.text)}")

    caller = parse_caller(from_number, settings.default_region)
    channel = TextCallChannel(caller_info=caller, script=list(script), on_turn=show)
    t0 = time.perf_counter()
    # Calls can share a task (the demo runs them one after another): scope the binding.
    with bind_session(channel.session_id):
        result = await app.flow(channel, ContactChannel.TEXT).run()
    return TextCallReport(from_number or "withheld", channel.turns, result,
                          (time.perf_counter() - t0) * 1000)


def decision_table(reports: list[TextCallReport], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for col in ("caller", "question", "intent", "conf", "scenario", "skill", "action",
                "outcome", "ms"):
        table.add_column(col, overflow="fold")
    for r in reports:
        d = r.as_dict()
        # escape(): a question like "[keypad 2]" is text, not rich markup.
        table.add_row(*(escape(str(v)) for v in (
            d["caller"], d["question"] or "-", d["intent"] or "-",
            f"{d['confidence']:.2f}" if d["confidence"] is not None else "-",
            d["scenario"] or "-", d["skill"] or "-", d["action"] or "-",
            d["outcome"], f"{d['elapsed_ms']:.0f}")))
    return table


def _parse_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time (2026-11-24T10:00)") from None
    if at.tzinfo is None:
        from zoneinfo import ZoneInfo
        at = at.replace(tzinfo=ZoneInfo("Europe/Amsterdam"))
    return at


@click.command()
@click.option("--text", "texts", multiple=True, metavar="TEXT",
              help="caller turn as text; repeat for later turns (dtmf:123#, silence, hangup)")
@click.option("--say", "say", default=None, metavar="TEXT",
              help="speak this utterance in a real SIP call through the rig, once the IVR's "
              "question has finished playing")
@click.option("--from", "from_number", default=None, help="caller ID (E.164); omit = withheld")
@click.option("--lang", type=click.Choice(["en", "nl"]), default=None,
              help="language for unknown callers (and the synthetic voice with --say)")
@click.option("--dtmf", default=None, help="with --say: keys to send after the utterance")
@click.option("--barge-in", "barge_in", type=click.FloatRange(0, 30), default=None,
              metavar="SECONDS",
              help="with --say: speak this long after the question prompt starts (interrupt it)")
@click.option("--at", "at", default=None, help="pretend it is this local time (opening hours)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.pass_context
def call(ctx: click.Context, texts: tuple[str, ...], say: str | None, from_number: str | None,
         lang: str | None, dtmf: str | None, barge_in: float | None, at: str | None,
         as_json: bool) -> None:
    """Place one call through the real CallFlow and print the dialogue and the decision."""
    if say is not None:
        from ivr.cli.voice_call import run_voice_call

        run_voice_call(ctx, say=say, from_number=from_number, lang=lang, dtmf=dtmf,
                       barge_in_after_s=barge_in, as_json=as_json, at=_parse_at(at))
        return
    if not texts:
        raise click.UsageError("give --text (text channel) or --say (real SIP call)")
    settings = settings_from(ctx)
    if lang:
        settings = replace(settings, default_language=lang)
    with stdout_to_stderr(as_json):
        report = asyncio.run(_text_main(settings, list(texts), from_number, _parse_at(at),
                                        echo=not as_json))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        Console().print(decision_table([report], "Decision"))


async def _text_main(settings: Settings, script: list[str], from_number: str | None,
                     at: datetime | None, *, echo: bool) -> TextCallReport:
    from ivr.clock import PinnedClock
    from ivr.storage.db import upgrade
    from ivr.testing.app import running_app

    await asyncio.to_thread(upgrade, settings.effective_database_url)
    from ivr.web.app import create_web_app, free_port, web_server

    port = free_port()
    settings = replace(settings, web_port=port, public_url=f"http://127.0.0.1:{port}")
    async with running_app(settings, clock=PinnedClock(at) if at else None,
                         sandbox_log=(lambda line: Console().print(
                             f"[dim]twilio {escape(line)}[/]")) if echo else None) as app, \
            web_server(create_web_app(app), "127.0.0.1", port):
        report = await run_text_call(app, settings, from_number=from_number, script=script,
                                     echo=echo)
        await asyncio.sleep(0.3)  # let the sandbox's status callbacks arrive
        return report
