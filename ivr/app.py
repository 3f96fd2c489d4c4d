"""Composition root: builds every part of a node from the Settings. No logic lives here.

- ``build_app`` wires the core a call needs (database adapters, CRM, knowledge,
  understanding, Router, messaging with its outbox, screen-pop hub, metrics).
  ``App`` is an async context manager: entering it starts the outbox worker.
- ``build_node`` adds the telephony and web servers around an ``App``: the ARI
  Stasis app, the FastAGI server (the same flow for dialplan-driven setups),
  the web app, the recogniser and the prompt files. ``Node.run`` serves them.

CLI commands only parse arguments and call these.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from ivr.clock import SystemClock
from ivr.config import Settings
from ivr.contact_centre.remote import CENTRE_VIEW, RemoteCentres
from ivr.domain.flow import (
    CallFlow,
    ContactLogObserver,
    FlowConfig,
    FlowMetrics,
    FlowPorts,
    FlowResult,
    ScreenPopObserver,
    State,
)
from ivr.domain.flow.prepare import catalogue_prompts
from ivr.domain.model import (
    LANGUAGES,
    ContactChannel,
    ContactSnapshot,
    Language,
    RouteDecision,
    Utterance,
    as_language,
)
from ivr.domain.outages import OutageRecord
from ivr.domain.ports import (
    CallChannel,
    Clock,
    FlowObserver,
    IntentCatalogue,
    IntentMatcher,
    LinkBuilder,
    Messenger,
    Recognizer,
)
from ivr.domain.routing import SimpleRouter
from ivr.domain.surge import SurgeConfig, SurgeDetector
from ivr.domain.troubleshoot import EMPTY_BOOK, ScriptBook
from ivr.metrics import NodeTelemetry
from ivr.outages.alerts import SupervisorAlerts
from ivr.outages.surge import SurgeObserver, SurgeService, SurgeSettings
from ivr.storage.broadcast import PgBroadcast
from ivr.storage.csat import SqlSurveyLog
from ivr.storage.db import make_engine
from ivr.storage.online import SqlOnlineContacts
from ivr.storage.outages import SqlOutageBoard
from ivr.storage.repositories import (
    SpoolingContactLog,
    SqlAgentPool,
    SqlContactLog,
    SqlCustomerDirectory,
    SqlKnowledgeBase,
)
from ivr.storage.tables import skills
from ivr.telephony.callerid import region_of
from ivr.web.push import ScreenPopHub

if TYPE_CHECKING:  # heavy imports (uvicorn, ARI, speech) only where a node is built
    import uvicorn

    from ivr.callbacks.desk import SqlCallbackDesk
    from ivr.callbacks.dialer import CallbackDialer
    from ivr.contact_centre.announcer import QueueAnnouncer
    from ivr.contact_centre.service import ContactCentre
    from ivr.nlu.matcher import MatcherLimits
    from ivr.notify.csat import CsatSurvey
    from ivr.notify.links import SignedLinkBuilder
    from ivr.notify.outbox import Outbox, OutboxStore
    from ivr.telephony.agi.channel import Transcribe
    from ivr.telephony.agi.route import FlowAgi
    from ivr.telephony.agi.server import FastAgiServer
    from ivr.telephony.ami import AmiClient
    from ivr.telephony.ami.app_lost import AppLostCloser
    from ivr.telephony.ari.adopt import Mover, OrphanAdopter
    from ivr.telephony.ari.app import StasisApp
    from ivr.telephony.ari.channel import AriCallChannel
    from ivr.telephony.ari.client import AriClient
    from ivr.telephony.prompts import FilePromptResolver

log = logging.getLogger(__name__)

# Every link_key the catalogues use must have a URL here (tests check it).
LINK_KEYS = ("address_change", "activate_account", "deactivate_account", "password_reset",
             "payment_plan", "payment_method", "personal_details", "return", "chat")


class SandboxNotStarted(RuntimeError):
    """``twilio_base_url=sandbox`` reached build_app: the CLI starts the sandbox, not the core."""


@dataclass
class App:
    """Every long-lived collaborator of one node, built once."""

    settings: Settings
    engine: Engine
    directory: SqlCustomerDirectory
    knowledge: SqlKnowledgeBase
    contacts: SpoolingContactLog
    agents: SqlAgentPool
    router: SimpleRouter
    catalogue: IntentCatalogue
    matcher: IntentMatcher
    links: LinkBuilder
    messenger: Messenger
    clock: Clock
    flow_config: FlowConfig
    outbox: Outbox
    outbox_store: OutboxStore
    screenpop: ScreenPopHub
    metrics: FlowMetrics
    # Prometheus series (/metrics); FlowMetrics above feeds the wallboard.
    telemetry: NodeTelemetry = field(default_factory=NodeTelemetry)
    # Outages and surge detection (ivr.outages): consoles' live alerts and the
    # detector's service (None when IVR_SURGE_DETECTION=false).
    alerts: SupervisorAlerts = field(default_factory=SupervisorAlerts)
    surge: SurgeService | None = None
    # Guided troubleshooting scripts (grammars/troubleshooting.yaml), checked at start-up.
    scripts: ScriptBook = EMPTY_BOOK
    # The SMS survey after agent calls (None when IVR_CSAT_SKILLS is empty).
    csat: CsatSurvey | None = None
    # Callbacks in time slots (None when IVR_CALLBACKS=false).
    callbacks: SqlCallbackDesk | None = None
    # Questions asked online (POST /api/contacts) that wait for the customer's call.
    online: SqlOnlineContacts = field(init=False)
    # Screen-pops to and from the other nodes on the database (PostgreSQL only:
    # LISTEN/NOTIFY); None on SQLite, where there is one node.
    broadcast: PgBroadcast | None = None
    # The other Asterisks' live queue state, broadcast by their nodes (the wallboard).
    remote_centres: RemoteCentres = field(default_factory=RemoteCentres)
    # Languages the node's recogniser hears (voice callers in others get the keypad).
    speech_languages: tuple[Language, ...] = field(init=False)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    def __post_init__(self) -> None:
        self.online = SqlOnlineContacts(self.engine, ttl_s=self.settings.online_code_ttl_s)
        self.speech_languages = speech_languages(self.settings)

    @property
    def ports(self) -> FlowPorts:
        return FlowPorts(directory=self.directory, knowledge=self.knowledge,
                         catalogue=self.catalogue, matcher=self.matcher, router=self.router,
                         messenger=self.messenger, links=self.links, clock=self.clock,
                         scripts=self.scripts, callbacks=self.callbacks,
                         surveys=SqlSurveyLog(self.engine), online=self.online)

    def observers(self) -> tuple[FlowObserver, ...]:
        """Who hears every call's flow events: the contact log, the screen-pop, metrics."""
        observers: tuple[FlowObserver, ...] = (
            ContactLogObserver(self.contacts), ScreenPopObserver(self.screenpop), self.metrics,
            self.telemetry)
        if self.surge is not None:
            observers += (SurgeObserver(self.surge, region_of, self.clock),)
        return observers

    async def learn_surge_history(self) -> None:
        """The surge baseline from the contact history (the node, at start-up)."""
        if self.surge is None:
            return
        try:
            n = await self.surge.learn(self.surge.board.contact_history_sync, region_of,
                                       now=self.clock.now(),
                                       weeks=self.settings.surge_history_weeks)
        except Exception:  # no history is a learning detector, not a dead node
            log.exception("surge history not loaded; the detector starts learning")
            return
        log.info("surge detector learned from %d contacts", n)

    def flow(self, channel: CallChannel, contact_channel: ContactChannel = ContactChannel.VOICE,
             *, language: Language | None = None,
             observers: Sequence[FlowObserver] | None = None) -> CallFlow:
        """A CallFlow for one call on ``channel`` (``observers`` replaces the node's set)."""
        config = self.flow_config
        if language is not None:
            config = replace(config, default_language=language)
        if contact_channel is ContactChannel.VOICE:
            # A voice caller in a language no recogniser hears is told to use the keys.
            config = replace(config, speech_languages=self.speech_languages)
        return CallFlow(channel, ports=self.ports, config=config,
                        observers=self.observers() if observers is None else observers,
                        contact_channel=contact_channel)

    async def run_call(self, channel: CallChannel, language: Language | None = None, *,
                       extra_observers: Sequence[FlowObserver] = ()) -> FlowResult:
        """Run one voice call to its end (ARI and FastAGI entry points); ``extra_observers``
        hear its flow events besides the node's own."""
        observers = (*self.observers(), *extra_observers) if extra_observers else None
        return await self.flow(channel, ContactChannel.VOICE, language=language,
                               observers=observers).run()

    async def resume_call(self, channel: CallChannel, session_id: str) -> FlowResult:
        """A queued caller who left the queue by key: the same contact goes on.

        An unknown session raises; the ARI app then sends the caller to a human.
        """
        previous = await self.contacts.get(session_id) if session_id else None
        if previous is None:
            raise LookupError(f"no contact {session_id} to resume after the queue exit")
        return await CallFlow(channel, ports=self.ports, config=self.flow_config,
                              observers=self.observers(), resume=previous).run()

    async def survey_call(self, channel: CallChannel, session_id: str) -> FlowResult | None:
        """A caller back after the agent hung up ([ivr-csat]): the survey on their contact.

        An unknown session is not worth a human: the caller is simply let go (None).
        """
        previous = await self.contacts.get(session_id) if session_id else None
        if previous is None:
            log.warning("no contact %s for the after-call survey; hanging up", session_id)
            return None
        return await CallFlow(channel, ports=self.ports, config=self.flow_config,
                              observers=self.observers(), resume=previous,
                              entry=State.SURVEY).run()

    async def __aenter__(self) -> App:
        task = asyncio.create_task(self.outbox.run(), name="outbox")
        self._stack.push_async_callback(
            _cancel, asyncio.create_task(self.contacts.run(), name="contact-spool"))
        if self.broadcast is not None:
            self._stack.push_async_callback(
                _cancel, asyncio.create_task(self.broadcast.run(), name="broadcast"))

        async def _stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self._stack.push_async_callback(_stop)
        if self.surge is not None:
            surge = asyncio.create_task(self.surge.run(), name="surge")

            async def _stop_surge() -> None:
                surge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await surge

            self._stack.push_async_callback(_stop_surge)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        self.engine.dispose()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build_understanding(settings: Settings) -> tuple[IntentCatalogue, IntentMatcher]:
    """The intent catalogue and matcher for the configured languages."""
    from ivr.nlu.catalogue import load_catalogue
    from ivr.nlu.matcher import default_matcher

    languages = tuple(lang for lang in LANGUAGES if lang in settings.languages)
    catalogue = load_catalogue(settings.grammars_dir, languages=languages)
    matcher = default_matcher(catalogue, cache_dir=settings.embedding_cache,
                              limits=matcher_limits(settings))
    return catalogue, matcher


def matcher_limits(settings: Settings) -> MatcherLimits:
    """The matcher's bounded pool, from IVR_NLU_WORKERS/MAX_PENDING/TIMEOUT_S."""
    from ivr.nlu.matcher import MatcherLimits

    return MatcherLimits(workers=settings.nlu_workers, max_pending=settings.nlu_max_pending,
                         timeout_s=settings.nlu_timeout_s)


def build_messaging(settings: Settings, engine: Engine
                    ) -> tuple[Messenger, LinkBuilder, Outbox, OutboxStore]:
    """Twilio messenger + durable outbox + signed links."""
    from ivr.notify.outbox import Outbox, OutboxStore
    from ivr.notify.twilio_messenger import TwilioMessenger, TwilioTransport, make_twilio_client

    if settings.twilio_base_url == "sandbox":
        raise SandboxNotStarted(
            "IVR_TWILIO_BASE_URL=sandbox: the built-in sandbox is started by the `ivr` "
            "commands (ivr.testing.running_app); give build_app its URL, or a Twilio URL")
    client = make_twilio_client(settings.twilio_account_sid, settings.twilio_auth_token,
                                base_url=settings.twilio_base_url or None)
    store = OutboxStore(engine)
    transport = TwilioTransport(
        client, status_callback_url=f"{settings.public_url.rstrip('/')}/twilio/status")
    outbox = Outbox(store=store, transport=transport, poll_s=1.0)
    messenger = TwilioMessenger(
        outbox=outbox, senders={"sms": settings.sms_from,
                                "whatsapp": settings.whatsapp_from.removeprefix("whatsapp:")})
    return messenger, build_links(settings), outbox, store


def build_csat(settings: Settings, engine: Engine, messenger: Messenger) -> CsatSurvey | None:
    """The CSAT survey by SMS for the skills in IVR_CSAT_SKILLS (None: no survey)."""
    from ivr.notify.csat import CsatSurvey
    from ivr.storage.csat import SqlSurveys

    if not settings.csat_skills:
        return None
    return CsatSurvey(SqlSurveys(engine), messenger, frozenset(settings.csat_skills))


def build_callbacks(settings: Settings, engine: Engine, knowledge: SqlKnowledgeBase,
                    clock: Clock | None = None) -> SqlCallbackDesk | None:
    """Callback slots for the flow: capacity from settings or agents logged in, open hours."""
    from ivr.callbacks.desk import SqlCallbackDesk
    from ivr.config import callback_policy
    from ivr.storage.agents import SqlAgentDirectory
    from ivr.storage.callbacks import SqlCallbackBook

    if not settings.callbacks:
        return None
    directory = SqlAgentDirectory(engine)

    async def staffing(skill: str) -> int:
        agents = await directory.list_agents(logged_in=True)
        return sum(1 for a in agents if skill in a.profile.skills)

    async def is_open(at: datetime) -> bool:
        return (await knowledge.opening("voice", at)).is_open

    # The node's clock (pinned or shifted in demos and tests) decides what is due.
    book = SqlCallbackBook(engine, now=(clock or SystemClock()).now)
    return SqlCallbackDesk(book, callback_policy(settings),
                           offer_wait_s=settings.callback_offer_wait_s, staffing=staffing,
                           is_open=is_open, token=build_links(settings).token,
                           public_url=settings.public_url)


def build_links(settings: Settings) -> SignedLinkBuilder:
    """Signed self-service/chat links (the web's landing route verifies with the same)."""
    from ivr.notify.links import SignedLinkBuilder

    base = settings.self_service_base_url.rstrip("/")
    return SignedLinkBuilder(secret=settings.link_secret, ttl_s=settings.link_ttl_s,
                             urls={k: f"{base}/{k.replace('_', '-')}" for k in LINK_KEYS},
                             landing=settings.public_url if settings.link_tracking else None)


def _overflow(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.name: r.overflow_skill for r in conn.execute(
            select(skills.c.name, skills.c.overflow_skill)) if r.overflow_skill}


def build_router(settings: Settings, engine: Engine) -> SimpleRouter:
    """The Router: one object for every routing decision of the node."""
    try:
        overflow = _overflow(engine)
    except Exception:  # a dead DB at start-up must not stop calls: routing falls back
        log.exception("could not read skill overflow; using defaults")
        overflow = {}
    return SimpleRouter(SqlAgentPool(engine), vip_tiers=settings.vip_tiers, overflow=overflow,
                        always_pin=frozenset(settings.require_pin_for))


def _vosk_models(settings: Settings) -> dict[str, Path]:
    """The Vosk model folders the recogniser uses, per language (none when
    IVR_ASR_ENGINE=whisper)."""
    if settings.asr_engine == "whisper":
        return {}
    return {lang: p for lang, p in (("en", settings.vosk_model_en),
                                    ("nl", settings.vosk_model_nl)) if p is not None}


def speech_languages(settings: Settings) -> tuple[Language, ...]:
    """Languages this node's recogniser hears, from the settings alone (no model loads)."""
    from ivr.speech.base import SpeechError
    from ivr.speech.recognizers import speech_languages as heard

    vosk = _vosk_models(settings)
    try:
        langs = heard(vosk, settings.whisper_model)
    except SpeechError as exc:  # the recogniser will refuse the same folder, loudly
        log.error("IVR_WHISPER_MODEL: %s", exc)
        langs = tuple(vosk) or ("en",)
    return tuple(lang for lang in LANGUAGES if lang in langs)


def flow_config(settings: Settings) -> FlowConfig:
    return FlowConfig(
        default_language=as_language(settings.default_language),
        language_offer=settings.language_offer if len(set(settings.languages)) > 1 else "off",
        timezone=settings.timezone,
        no_input_timeout_s=settings.no_input_timeout_s,
        max_reprompts=settings.max_reprompts,
        confirm_below=settings.confirm_below,
        reject_below=settings.reject_below,
        confirm_asr_below=settings.confirm_asr_below,
        csat_voice_skills=frozenset(settings.csat_voice_skills),
    )


def surge_config(settings: Settings) -> SurgeConfig:
    return SurgeConfig(
        window_s=settings.surge_window_s, ratio=settings.surge_ratio,
        min_calls=settings.surge_min_calls, fault_share=settings.surge_fault_share,
        learning_threshold=settings.surge_learning_threshold,
        min_weeks=settings.surge_min_weeks, timezone=settings.timezone)


def build_surge(settings: Settings, engine: Engine, alerts: SupervisorAlerts,
                messenger: Messenger, store: OutboxStore, clock: Clock) -> SurgeService | None:
    """The surge detector's service: outages on the board, alerts, webhook, SMS."""
    from ivr.outages.notify import notify_subscribers
    from ivr.outages.surge import http_webhook, senders_of

    if not settings.surge_detection:
        return None
    board = SqlOutageBoard(engine)
    senders = senders_of(settings.sms_from, settings.whatsapp_from)

    async def news(outage: OutageRecord, kind: str) -> int:
        return await notify_subscribers(board, store, senders, outage, kind)

    return SurgeService(
        SurgeDetector(surge_config(settings)), board,
        SurgeSettings(auto_activate=settings.surge_auto_activate,
                      sms_to=settings.surge_sms_to),
        alerts=alerts, messenger=messenger, clock=clock, subscriber_news=news,
        webhook=http_webhook(settings.surge_webhook_url) if settings.surge_webhook_url
        else None)


def build_app(settings: Settings, *, clock: Clock | None = None) -> App:
    """Wire the core of a node from settings (the database must be migrated)."""
    engine = make_engine(settings.effective_database_url)
    catalogue, matcher = build_understanding(settings)
    from ivr.nlu.troubleshooting import load_scripts

    scripts = load_scripts(settings.grammars_dir,
                           is_intent=lambda name: catalogue.spec(name) is not None)
    messenger, links, outbox, store = build_messaging(settings, engine)
    alerts = SupervisorAlerts()
    knowledge = SqlKnowledgeBase(engine, timezone=settings.timezone)
    screenpop = ScreenPopHub()
    remote_centres = RemoteCentres()
    broadcast = None
    if engine.dialect.name == "postgresql":
        broadcast = PgBroadcast(settings.effective_database_url, lambda message: from_other_node(
            message, screenpop, alerts, remote_centres))
        screenpop.relay_to(broadcast.post)
        alerts.relay_to(broadcast.post)
    return App(
        settings=settings, engine=engine, directory=SqlCustomerDirectory(
            engine, pin_max_failures=settings.pin_max_failures, pin_lock_s=settings.pin_lock_s),
        knowledge=knowledge, callbacks=build_callbacks(settings, engine, knowledge, clock),
        contacts=SpoolingContactLog(SqlContactLog(engine),
                                    settings.spool_file),
        agents=SqlAgentPool(engine), router=build_router(settings, engine),
        catalogue=catalogue, matcher=matcher, links=links, messenger=messenger,
        clock=clock or SystemClock(), flow_config=flow_config(settings), scripts=scripts,
        csat=build_csat(settings, engine, messenger),
        outbox=outbox, outbox_store=store, screenpop=screenpop, metrics=FlowMetrics(),
        alerts=alerts, surge=build_surge(settings, engine, alerts, messenger, store,
                                         clock or SystemClock()),
        broadcast=broadcast, remote_centres=remote_centres,
    )


# ----------------------------------------------------------------------- the node

def from_other_node(message: dict[str, Any], screenpop: ScreenPopHub,
                    alerts: SupervisorAlerts, remote_centres: RemoteCentres) -> None:
    """A broadcast from another node: a supervisor alert, another Asterisk's live
    state, or (the rest) a screen-pop."""
    from ivr.outages.alerts import ALERT

    if message.get("type") == ALERT and isinstance(message.get("alert"), dict):
        alerts.deliver(message["alert"])
    elif message.get("type") == CENTRE_VIEW:
        remote_centres.deliver(message)
    else:
        screenpop.deliver(message)


def turn_judge(app: App) -> Callable[[str, str, float], Awaitable[bool]] | None:
    """What the recogniser's adaptive end of turn asks before ending a turn early: the
    node's intent matcher, at the flow's confirm threshold (None: adaptive end off)."""
    from ivr.nlu.matcher import HybridIntentMatcher, request_judge

    if not app.settings.adaptive_end_of_turn or not isinstance(app.matcher, HybridIntentMatcher):
        return None
    return request_judge(app.matcher, app.flow_config.confirm_below,
                         app.flow_config.confirm_asr_below)


def recognizer_pool(settings: Settings) -> ThreadPoolExecutor | None:
    """The recogniser's own bounded thread pool (None: asyncio's default one).

    Every caller's 20 ms packet goes through voice detection in a worker thread; in the
    default pool (6 threads here) those hops queued with the database calls and the
    synthesis of every call, so a slow lookup or a burst of packets delayed the other.
    Idle threads cost nothing and end with the process."""
    if settings.asr_threads == 0:
        return None
    return ThreadPoolExecutor(max_workers=settings.asr_threads, thread_name_prefix="asr")


def build_recognizer(settings: Settings, *,
                     judge: Callable[[str, str, float], Awaitable[bool]] | None = None
                     ) -> Recognizer:
    """Vosk models where configured (unless IVR_ASR_ENGINE=whisper), else Whisper;
    ``judge``: see ``turn_judge``."""
    from ivr.speech.recognizers import build_recognizer as build

    return build(_vosk_models(settings),
                 executor=recognizer_pool(settings),
                 whisper_model_dir=settings.whisper_model,
                 whisper_window=settings.whisper_window,
                 adaptive_end=settings.adaptive_end_of_turn,
                 whisper_batch=settings.whisper_batch, judge=judge)


def file_transcriber(recognizer: Recognizer) -> Transcribe:
    """Transcribe a recorded WAV (FastAGI turns) the way a live call is recognised."""
    from ivr.speech.audio import read_wav
    from ivr.speech.recognizers import recognize_pcm

    async def transcribe(path: Path, language: Language,
                         phrases: Sequence[str]) -> Utterance | None:
        wav = await asyncio.to_thread(read_wav, path, sample_rate=16000)
        result = await recognize_pcm(recognizer, wav.pcm16, 16000, language, list(phrases))
        text = result.text.strip()
        return Utterance(text=text, confidence=result.confidence) if text else None

    return transcribe


@dataclass
class Node:
    """One serving node: the core plus its ARI, FastAGI and web servers."""

    app: App
    ari: AriClient
    centre: ContactCentre | None
    stasis: StasisApp
    agi: FastAgiServer
    agi_route: FlowAgi
    web: uvicorn.Server
    announcer: QueueAnnouncer | None = None
    dialer: CallbackDialer | None = None
    # Closes the contacts of calls the lease saved from a dead node (needs AMI).
    app_lost: AppLostCloser | None = None
    # Synthesises the catalogue's prompts into the prompt cache (IVR_WARM_PROMPTS).
    warm_prompts: Callable[[], Coroutine[Any, Any, object]] | None = None

    async def _broadcast_centre(self, centre: ContactCentre, broadcast: PgBroadcast) -> None:
        """This Asterisk's live state to the other nodes' consoles, every couple of
        seconds (ivr.contact_centre.remote)."""
        from ivr.contact_centre.views import centre_view

        name = centre_name(self.app.settings)
        while True:
            view = centre_view(centre.feed.snapshot(), stale_s=centre.feed.stale_s)
            broadcast.post(RemoteCentres.message(name, view))
            await asyncio.sleep(CENTRE_BROADCAST_S)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Serve until cancelled; ``ready`` is set once ARI is connected."""
        s = self.app.settings
        errors = self.app.telemetry.log_handler()  # errors by kind on /metrics
        logging.getLogger("ivr").addHandler(errors)
        await self.agi.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.stasis.run(), name="stasis")
                tg.create_task(self.agi.serve_forever(), name="fastagi")
                tg.create_task(self.web.serve(), name="web")
                if self.app.surge is not None:
                    tg.create_task(self.app.learn_surge_history(), name="surge-history")
                if self.centre is not None:
                    tg.create_task(self.centre.run(), name="contact-centre")
                    tg.create_task(self.app.telemetry.follow_queues(self.centre.ami),
                                   name="queue-metrics")
                    if self.app.broadcast is not None:
                        tg.create_task(self._broadcast_centre(self.centre, self.app.broadcast),
                                       name="centre-broadcast")
                if self.announcer is not None:
                    tg.create_task(self.announcer.run(), name="queue-announcer")
                if self.dialer is not None:
                    tg.create_task(self.dialer.run(), name="callback-dialer")
                if self.app_lost is not None:
                    tg.create_task(self.app_lost.run(), name="app-lost-contacts")
                if self.warm_prompts is not None:
                    tg.create_task(self.warm_prompts(), name="warm-prompts")
                async with asyncio.timeout(30):
                    await self.ari.connected.wait()
                log.info("ready: ARI %s app %s, FastAGI :%d, web :%d", s.ari_url, s.ari_app,
                         self.agi.port, s.web_port)
                if ready is not None:
                    ready.set()
        finally:
            self.web.should_exit = True
            logging.getLogger("ivr").removeHandler(errors)
            await self.agi.stop()


CENTRE_BROADCAST_S = 2.0  # the console polls every few seconds; views expire after 15 s


def centre_name(settings: Settings) -> str:
    """This node's Asterisk as the wallboards name it: its ARI URL, not the app (two nodes
    on one Asterisk read the same queues and must not show them twice)."""
    return settings.ari_url.rstrip("/")


def build_node(app: App, *, recognizer: Recognizer | None = None,
               on_call_end: Callable[[AriCallChannel], None] | None = None) -> Node:
    """Telephony and web around ``app``: ARI Stasis app, FastAGI ``/route``, web server."""
    import uvicorn

    from ivr.contact_centre.announcer import QueueAnnouncer, channel_language
    from ivr.speech.tts import default_tts
    from ivr.telephony.agi.route import FlowAgi
    from ivr.telephony.agi.server import FastAgiServer
    from ivr.telephony.ari.app import StasisApp
    from ivr.telephony.ari.channel import AriCallChannel, AriChannelSettings, TurnTimingObserver
    from ivr.telephony.ari.client import AriClient
    from ivr.telephony.ari.whisper import AriWhisper
    from ivr.telephony.prompts import FilePromptResolver
    from ivr.web.app import create_web_app
    from ivr.web.security import check_serving_secrets

    s = app.settings
    # Refuse before anything listens: a default secret off loopback is an open door.
    check_serving_secrets(s)
    recognizer = recognizer or build_recognizer(s, judge=turn_judge(app))
    prompts = FilePromptResolver(tts=default_tts(), static_dir=s.sounds_dir,
                                 export_dir=s.prompt_dir,
                                 asterisk_dir=s.asterisk_prompt_dir or None)
    s.record_dir.mkdir(parents=True, exist_ok=True)
    centre = build_contact_centre(app) if s.live_routing else None
    if centre is not None:
        app.router = centre.router
    client = AriClient(s.ari_url, username=s.ari_user, password=s.ari_password, app=s.ari_app)

    async def run_call(channel: CallChannel, language: Language | None = None) -> None:
        # An ARI call's turn timings split understanding from decision (the matcher's
        # time comes from the flow's Matched events).
        extra = (TurnTimingObserver(channel),) if isinstance(channel, AriCallChannel) else ()
        await app.run_call(channel, language, extra_observers=extra)

    def call_ended(channel: AriCallChannel) -> None:
        app.telemetry.observe_call(channel.stats)  # turn gaps and ASR latency
        if on_call_end is not None:
            on_call_end(channel)

    async def resume_call(channel: CallChannel, session_id: str) -> None:
        await app.resume_call(channel, session_id)

    async def survey_call(channel: CallChannel, session_id: str) -> None:
        await app.survey_call(channel, session_id)

    stasis = StasisApp(
        client, flow_runner=run_call, prompts=prompts, recognizer=recognizer,
        fail_safe=lambda reason, session: app.router.fail_safe(reason, session_id=session),
        settings=AriChannelSettings(media_host=s.media_host, default_region=s.default_region,
                                    lease_s=s.ari_lease_s, ack_after_s=s.ack_after_ms / 1000),
        on_call_end=call_ended, resume_runner=resume_call, survey_runner=survey_call,
        renew_lease=None if centre is None else lease_renewer(centre.ami),
        adopter=build_adopter(app, None if centre is None else ami_mover(centre.ami)),
    )
    announcer = None
    if centre is not None and s.queue_announce_s > 0:
        announcer = QueueAnnouncer(
            centre.feed, lambda: centre.router.policy, AriWhisper(client), prompts,
            lambda channel_id: channel_language(client.get_variable, channel_id),
            every_s=s.queue_announce_s)
    route = FlowAgi(
        run_flow=run_call,
        fail_safe=lambda reason, session: app.router.fail_safe(reason, session_id=session),
        prompts=prompts, transcribe=file_transcriber(recognizer),
        record_dir_asterisk=s.asterisk_record_dir or str(s.record_dir),
        record_dir_local=s.record_dir, default_language=app.flow_config.default_language,
        default_region=s.default_region,
    )
    agi = FastAgiServer({"route": route}, host=s.agi_host, port=s.agi_port)
    web = uvicorn.Server(uvicorn.Config(create_web_app(app, centre=centre, ari=client.connected),
                                        host=s.web_host,
                                        port=s.web_port,
                                        log_level="warning", log_config=None, lifespan="off",
                                        timeout_graceful_shutdown=2))
    return Node(app=app, ari=client, centre=centre, stasis=stasis, agi=agi, agi_route=route,
                web=web, announcer=announcer, dialer=build_dialer(app, client, centre),
                app_lost=build_app_lost(app, centre, stasis),
                warm_prompts=build_warm_up(app, prompts))


def build_warm_up(app: App, prompts: FilePromptResolver
                  ) -> Callable[[], Coroutine[Any, Any, object]] | None:
    """The start-up task that makes the catalogue's prompts ahead (IVR_WARM_PROMPTS)."""
    from ivr.telephony.prompts import warm_up

    s = app.settings
    if not s.warm_prompts:
        return None
    ahead = catalogue_prompts(app.catalogue, app.scripts,
                              [lang for lang in LANGUAGES if lang in s.languages])
    return lambda: warm_up(prompts, ahead)


def build_app_lost(app: App, centre: ContactCentre | None,
                   stasis: StasisApp) -> AppLostCloser | None:
    """Closes contacts of calls the dialplan noted as lost by their node (see
    ivr.telephony.ami.app_lost); None without AMI (no live routing: no lease either)."""
    from ivr.telephony.ami.app_lost import AppLostCloser

    if centre is None:
        return None
    return AppLostCloser(centre.ami, app.contacts, clock=app.clock, screenpop=app.screenpop,
                         is_live=lambda session: session in stasis.calls)


async def contact_skill(app: App, contact: ContactSnapshot) -> str | None:
    """The skill a saved contact was heading for: its own, its intent's, or its question's.

    A node killed between saving the question and routing it left no skill: the saved
    intent, else the question matched again, still finds the right people (in the
    general queue a dead node's caller waits for whoever is free, maybe nobody who
    knows the subject)."""
    if contact.skill:
        return contact.skill
    intent = contact.intent
    if intent is None and contact.question:
        found = await app.matcher.match(contact.question, contact.language)
        best = found.best
        # Only a match the flow would act on without confirming it: a guess goes to
        # the general queue, where anyone can ask.
        if best and not (found.out_of_scope or found.unavailable) \
                and best.confidence >= app.settings.confirm_below:
            intent = best.intent
    spec = app.catalogue.spec(intent) if intent else None
    return spec.skill if spec else None


def build_adopter(app: App, move: Mover | None = None) -> OrphanAdopter:
    """Hands callers a dead node left in the Stasis app to a human (see ari.adopt)."""
    from ivr.domain.routing import fallback_decision
    from ivr.telephony.ari.adopt import OrphanAdopter

    def fail_safe(reason: str, session: str, skill: str | None) -> RouteDecision:
        if skill:  # the queue the contact was heading for; the dialplan falls back itself
            return fallback_decision(reason, session or None, skill=skill)
        return app.router.fail_safe(reason, session_id=session or None)

    return OrphanAdopter(contacts=app.contacts, screenpop=app.screenpop,
                         fail_safe=fail_safe, clock=app.clock,
                         skill_of=functools.partial(contact_skill, app), move=move)


def build_dialer(app: App, client: AriClient, centre: ContactCentre | None
                 ) -> CallbackDialer | None:
    """The callback dialer over ARI originate (None: callbacks or the dialer are off)."""
    import os
    import socket

    from ivr.callbacks.dialer import CallbackDialer, CentreAgentReserver, DialerSettings
    from ivr.domain.prompts import render
    from ivr.telephony.ari.outbound import AriOutboundCalls

    s = app.settings
    desk = app.callbacks
    if desk is None or not s.callback_dialer:
        return None

    def label_of(intent: str | None, language: str) -> str:
        spec = app.catalogue.spec(intent) if intent else None
        lang = as_language(language)
        return spec.label_for(lang) if spec else render("your_question", lang).text

    return CallbackDialer(
        desk.book_store, desk.policy,
        AriOutboundCalls(client, caller_id=s.callback_caller_id),
        settings=DialerSettings(
            node=f"{socket.gethostname()}:{os.getpid()}", endpoint=s.callback_endpoint,
            ring_s=s.callback_ring_s, lease_s=s.callback_lease_s, poll_s=s.callback_poll_s,
            priority=s.callback_priority),
        clock=app.clock, messenger=app.messenger, screenpop=app.screenpop,
        manage_link=desk.manage_link, label_of=label_of,
        agents=CentreAgentReserver(centre.feed.snapshot) if centre is not None else None)


def ami_mover(ami: AmiClient) -> Mover:
    """Sets an orphan's hand-off variables and sends it to the hand-off context over AMI
    (``Setvar``, ``Redirect``): both act at once, where ARI's wait behind the prompt the
    dead node left playing."""
    async def move(channel: str, variables: Mapping[str, str],
                   target: tuple[str, str, int]) -> object:
        await ami.wait_connected(2)  # the takeover connects ARI and AMI together
        for name, value in variables.items():
            await ami.action("Setvar", [("Channel", channel), ("Variable", name),
                                        ("Value", value)])
        context, extension, priority = target
        return await ami.action("Redirect", [("Channel", channel), ("Context", context),
                                             ("Exten", extension), ("Priority", priority)])
    return move


def lease_renewer(ami: AmiClient) -> Callable[[str, int], Awaitable[object]]:
    """Renews a call's lease with AMI ``AbsoluteTimeout``: it takes effect at once, where
    ARI's variable set waits behind the channel's playback (seen timing out)."""
    async def renew(channel: str, seconds: int) -> object:
        return await ami.action("AbsoluteTimeout", [("Channel", channel), ("Timeout", seconds)])
    return renew


def build_contact_centre(app: App) -> ContactCentre:
    """Live state, membership and the live-state Router over AMI (see ivr.contact_centre)."""
    from ivr.contact_centre.service import ContactCentre
    from ivr.storage.agents import SqlAgentDirectory
    from ivr.telephony.ami import AmiClient

    s = app.settings
    ami = AmiClient(s.ami_host, s.ami_port, username=s.ami_user, secret=s.ami_secret)
    # The static router already read the skills' overflow chain at start-up.
    overflow = app.router.overflow
    return ContactCentre(
        ami=ami, directory=SqlAgentDirectory(app.engine), pool=app.agents, overflow=overflow,
        vip_tiers=s.vip_tiers, always_pin=frozenset(s.require_pin_for),
        stale_limit_s=s.routing_stale_s, overflow_after_s=s.overflow_after_s,
        repeat_window_days=s.repeat_window_days, aging_step_s=s.priority_aging_s,
        after_agent_call=app.csat.after_agent_call if app.csat is not None else None)
