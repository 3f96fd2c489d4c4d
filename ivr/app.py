"""Composition root: builds every adapter from the Settings and hands them to the core.

No logic lives here beyond choosing and connecting parts. ``App`` is an async
context manager: entering it starts the background workers (message outbox,
the built-in Twilio sandbox when configured), leaving it stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from ivr.clock import SystemClock
from ivr.config import Settings
from ivr.domain.flow import CallFlow, FlowConfig
from ivr.domain.model import LANGUAGES, ContactChannel, Language
from ivr.domain.ports import (
    CallChannel,
    Clock,
    IntentCatalogue,
    IntentMatcher,
    LinkBuilder,
    Messenger,
    ScreenPop,
)
from ivr.domain.routing import SimpleRouter
from ivr.storage.db import make_engine
from ivr.storage.repositories import (
    SpoolingContactLog,
    SqlAgentPool,
    SqlContactLog,
    SqlCustomerDirectory,
    SqlKnowledgeBase,
)
from ivr.storage.tables import skills
from ivr.web.push import ScreenPopHub

log = logging.getLogger(__name__)

# Every link_key the catalogues use must have a URL here (tests check it).
LINK_KEYS = ("address_change", "activate_account", "deactivate_account", "password_reset",
             "payment_plan", "payment_method", "personal_details", "return", "chat")


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
    outbox: Any = None
    outbox_store: Any = None
    sandbox_app: Any = None
    screenpop: ScreenPop | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    def flow(self, channel: CallChannel,
             contact_channel: ContactChannel = ContactChannel.VOICE) -> CallFlow:
        """A CallFlow for one call on ``channel``."""
        return CallFlow(
            channel, directory=self.directory, knowledge=self.knowledge,
            catalogue=self.catalogue, matcher=self.matcher, router=self.router,
            contacts=self.contacts, messenger=self.messenger, links=self.links,
            clock=self.clock, config=self.flow_config, screenpop=self.screenpop,
            contact_channel=contact_channel,
        )

    async def __aenter__(self) -> App:
        if self.outbox is not None:
            task = asyncio.create_task(self.outbox.run(), name="outbox")

            async def _stop() -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            self._stack.push_async_callback(_stop)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        self.engine.dispose()


def build_understanding(settings: Settings) -> tuple[IntentCatalogue, IntentMatcher]:
    from ivr.nlu.catalogue import load_catalogue
    from ivr.nlu.matcher import default_matcher

    languages: tuple[Language, ...] = tuple(
        lang for lang in LANGUAGES if lang in settings.languages)
    catalogue = load_catalogue(settings.grammars_dir, languages=languages)
    matcher = default_matcher(catalogue, cache_dir=settings.data_dir / "cache" / "nlu")
    return catalogue, matcher


def build_messaging(settings: Settings, engine: Engine, *,
                    sandbox_log: Callable[[str], None] | None = print
                    ) -> tuple[Messenger, LinkBuilder, Any, Any, Any, contextlib.ExitStack]:
    """Twilio messenger + durable outbox + signed links (and the sandbox when configured)."""
    from ivr.notify.links import SignedLinkBuilder
    from ivr.notify.outbox import Outbox, OutboxStore
    from ivr.notify.sandbox import ServerThread, create_sandbox_app
    from ivr.notify.twilio_messenger import TwilioMessenger, TwilioTransport, make_twilio_client

    stack = contextlib.ExitStack()
    base_url: str | None = settings.twilio_base_url or None
    sandbox_app = None
    if settings.twilio_base_url == "sandbox":
        # Out of the box, messages go to the built-in Twilio-compatible server so a
        # new user sees what would have been sent, without an account.
        sandbox_app = create_sandbox_app(account_sid=settings.twilio_account_sid,
                                         auth_token=settings.twilio_auth_token, log=sandbox_log)
        server = stack.enter_context(ServerThread(sandbox_app))
        base_url = server.url
    client = make_twilio_client(settings.twilio_account_sid, settings.twilio_auth_token,
                                base_url=base_url)
    store = OutboxStore(engine)
    transport = TwilioTransport(
        client, status_callback_url=f"{settings.public_url.rstrip('/')}/twilio/status")
    outbox = Outbox(store=store, transport=transport, poll_s=1.0)
    messenger = TwilioMessenger(
        outbox=outbox, senders={"sms": settings.sms_from,
                                "whatsapp": settings.whatsapp_from.removeprefix("whatsapp:")})
    base = settings.self_service_base_url.rstrip("/")
    links = SignedLinkBuilder(secret=settings.link_secret, ttl_s=settings.link_ttl_s,
                              urls={k: f"{base}/{k.replace('_', '-')}" for k in LINK_KEYS})
    return messenger, links, outbox, store, sandbox_app, stack


def _overflow(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.name: r.overflow_skill for r in conn.execute(
            select(skills.c.name, skills.c.overflow_skill)) if r.overflow_skill}


def build_app(settings: Settings, *, clock: Clock | None = None,
              sandbox_log: Callable[[str], None] | None = print) -> App:
    """Wire the whole node from settings (the database must be migrated)."""
    engine = make_engine(settings.effective_database_url)
    directory = SqlCustomerDirectory(engine)
    knowledge = SqlKnowledgeBase(engine, timezone=settings.timezone)
    contacts = SpoolingContactLog(SqlContactLog(engine),
                                  settings.data_dir / "spool" / "contacts.jsonl")
    agents = SqlAgentPool(engine)
    try:
        overflow = _overflow(engine)
    except Exception:  # a dead DB at start-up must not stop calls: routing falls back
        log.exception("could not read skill overflow; using defaults")
        overflow = {}
    router = SimpleRouter(agents, vip_tiers=settings.vip_tiers, overflow=overflow)
    catalogue, matcher = build_understanding(settings)
    messenger, links, outbox, store, sandbox_app, stack = build_messaging(
        settings, engine, sandbox_log=sandbox_log)
    default_language: Language = "nl" if settings.default_language == "nl" else "en"
    flow_config = FlowConfig(
        default_language=default_language,
        timezone=settings.timezone,
        no_input_timeout_s=settings.no_input_timeout_s,
        max_reprompts=settings.max_reprompts,
        confirm_below=settings.confirm_below,
        reject_below=settings.reject_below,
        always_pin=frozenset(settings.require_pin_for),
    )
    app = App(
        settings=settings, engine=engine, directory=directory, knowledge=knowledge,
        contacts=contacts, agents=agents, router=router, catalogue=catalogue, matcher=matcher,
        links=links, messenger=messenger, clock=clock or SystemClock(), flow_config=flow_config,
        outbox=outbox, outbox_store=store, sandbox_app=sandbox_app,
        screenpop=ScreenPopHub(),
    )
    app._stack.callback(stack.close)
    return app


@contextlib.asynccontextmanager
async def running(settings: Settings, **kw: Any) -> AsyncIterator[App]:
    async with build_app(settings, **kw) as app:
        yield app
