"""`ivr serve`: the node — ARI Stasis app, FastAGI server, web app and outbox in one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ivr.cli.common import settings_from
from ivr.config import Settings
from ivr.domain.model import (
    Caller,
    Contact,
    ContactChannel,
    Language,
    Outcome,
    RouteDecision,
    Scenario,
)

log = logging.getLogger(__name__)


def rig_settings(settings: Settings, rig: Any) -> Settings:
    """Point the settings at a running test rig (ARI, prompt and recording folders)."""
    creds = rig.credentials
    return replace(
        settings,
        ari_url=rig.ari_url, ari_user=creds.ari_user, ari_password=creds.ari_password,
        ari_app=creds.stasis_app, agi_port=rig.ports.agi,
        prompt_dir=rig.host_path("/var/lib/kanaal/prompts"),
        asterisk_prompt_dir="/var/lib/kanaal/prompts",
        record_dir=rig.host_path("/var/spool/asterisk/kanaal"),
        asterisk_record_dir="/var/spool/asterisk/kanaal",
    )


async def transcribe_file(recognizer: Any, path: Path, language: Language,
                          phrases: list[str]) -> str:
    """Transcribe a recorded WAV (FastAGI /route) the way a live call is recognised."""
    from ivr.speech.audio import read_wav
    from ivr.speech.recognizers import recognize_pcm

    wav = await asyncio.to_thread(read_wav, path, sample_rate=16000)
    result = await recognize_pcm(recognizer, wav.pcm16, 16000, language, phrases)
    return result.text


async def serve_node(settings: Settings, *, ready: asyncio.Event | None = None,
                     recognizer: Any = None,
                     on_call_end: Callable[[Any], None] | None = None,
                     clock: Any = None) -> None:
    """Run every server of one node until cancelled."""
    import uvicorn

    from ivr.app import build_app
    from ivr.speech.recognizers import build_recognizer
    from ivr.speech.tts import default_tts
    from ivr.telephony.agi.route import AgiRouteOutcome, RouteAgi
    from ivr.telephony.agi.server import FastAgiServer
    from ivr.telephony.ari.app import StasisApp
    from ivr.telephony.ari.channel import AriChannelSettings
    from ivr.telephony.ari.client import AriClient
    from ivr.telephony.prompts import FilePromptResolver
    from ivr.web.app import create_web_app

    if recognizer is None:
        vosk = {lang: p for lang, p in (("en", settings.vosk_model_en),
                                        ("nl", settings.vosk_model_nl)) if p is not None}
        recognizer = build_recognizer(vosk if settings.asr_engine != "whisper" else {},
                                      whisper_window=settings.whisper_window)
    prompts = FilePromptResolver(tts=default_tts(), static_dir=settings.sounds_dir,
                                 export_dir=settings.prompt_dir,
                                 asterisk_dir=settings.asterisk_prompt_dir or None)
    settings.record_dir.mkdir(parents=True, exist_ok=True)
    async with build_app(settings, clock=clock) as app:
        client = AriClient(settings.ari_url, username=settings.ari_user,
                           password=settings.ari_password, app=settings.ari_app)
        stasis = StasisApp(
            client, flow_runner=lambda ch: _run_flow(app, ch), prompts=prompts,
            recognizer=recognizer,
            settings=AriChannelSettings(media_host=settings.media_host,
                                        default_region=settings.default_region),
            on_call_end=on_call_end,
        )

        async def decide(text: str, caller: Caller, language: Language) -> RouteDecision:
            customer = (await app.directory.find_by_number(caller.number)
                        if caller.number else None)
            match = await app.matcher.match(text, language)
            best = match.best
            name = best.intent if (best and not match.out_of_scope and
                                   best.confidence >= settings.reject_below) else "speak_to_agent"
            spec = app.catalogue.spec(name) or app.catalogue.spec("speak_to_agent")
            assert spec is not None
            # A dialplan-driven setup can only queue: every scenario ends with an agent.
            return await app.router.route(spec=replace(spec, scenario=Scenario.AGENT),
                                          customer=customer, at=app.clock.now(),
                                          language=language)

        async def record(outcome: AgiRouteOutcome) -> None:
            now = datetime.now(UTC)
            d = outcome.decision
            contact = Contact(
                id=outcome.session_id, channel=ContactChannel.VOICE,
                caller=outcome.caller.number or outcome.caller.raw or "withheld",
                started_at=now, language=outcome.language,
                customer_id=d.customer.id if d and d.customer else None,
                question=outcome.question, intent=d.intent if d else None,
                scenario=d.scenario if d else Scenario.AGENT,
                skill=d.skill if d else "general",
                action=f"agi:{d.queue if d else 'fallback'}",
                outcome=Outcome.AGENT if d else Outcome.ERROR_TO_AGENT, ended_at=now,
                transcript=[f"caller: {outcome.question}"] if outcome.question else [],
            )
            await app.contacts.save(contact.snapshot())

        agi = FastAgiServer({"route": RouteAgi(
            transcribe=lambda p, lang: transcribe_file(
                recognizer, p, lang, list(app.catalogue.phrases(lang))),
            decide=decide,
            record_dir_asterisk=settings.asterisk_record_dir or str(settings.record_dir),
            record_dir_local=settings.record_dir,
            default_language="nl" if settings.default_language == "nl" else "en",
            default_region=settings.default_region, on_outcome=record,
        )}, host=settings.agi_host, port=settings.agi_port)
        web = uvicorn.Server(uvicorn.Config(create_web_app(app), host=settings.web_host,
                                           port=settings.web_port, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=2))
        await agi.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(stasis.run(), name="stasis")
                tg.create_task(agi.serve_forever(), name="fastagi")
                tg.create_task(web.serve(), name="web")
                async with asyncio.timeout(30):
                    await client.connected.wait()
                log.info("ready: ARI %s app %s, FastAGI :%d, web :%d", settings.ari_url,
                         settings.ari_app, agi.port, settings.web_port)
                if ready is not None:
                    ready.set()
        finally:
            web.should_exit = True
            await agi.stop()


async def _run_flow(app: Any, channel: Any) -> None:
    await app.flow(channel, ContactChannel.VOICE).run()


@click.command()
@click.option("--rig", "use_rig", is_flag=True,
              help="start the bundled Asterisk test rig and serve its calls")
@click.pass_context
def serve(ctx: click.Context, use_rig: bool) -> None:
    """Serve calls: ARI Stasis app + FastAGI + web (screen-pop, webhooks, reports)."""
    settings = settings_from(ctx)
    from ivr.storage.db import upgrade

    upgrade(settings.effective_database_url)
    if use_rig:
        from ivr.telephony.rig import Rig

        rig = Rig()
        rig.up()
        settings = rig_settings(settings, rig)
        click.echo(f"rig up: SIP 127.0.0.1:{rig.ports.sip}, ARI {rig.ari_url}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_node(settings))
