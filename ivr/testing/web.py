"""A web-ready core without the slow parts, demo users, and calls played as flow events.

``create_web_app`` reads only a few parts of an ``App`` (settings, engine, CRM,
knowledge, contact log, clock, metrics, screen-pop hub). :func:`web_core` builds those
real adapters on a database, skipping the intent matcher (~20 s to load), speech and
Twilio, so browser tests and ``scripts/screenshots.py`` start in well under a second.
:func:`play_call` feeds one call's events through the real ``ContactJournal`` and the
node's observers (contact log, screen-pop hub, metrics), as ``CallFlow`` would.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Engine, insert, select

from ivr.clock import SystemClock
from ivr.config import Settings
from ivr.contact_centre.remote import RemoteCentres
from ivr.domain.flow import ContactLogObserver, FlowMetrics, ScreenPopObserver
from ivr.domain.flow.events import (
    ActionTaken,
    Authenticated,
    Concluded,
    Decided,
    Ended,
    FlowEvent,
    HandedOff,
    Heard,
    Identified,
    QuestionHeard,
    Said,
    StepTaken,
    Understood,
)
from ivr.domain.flow.journal import ContactJournal
from ivr.domain.model import (
    Contact,
    ContactChannel,
    Customer,
    Outcome,
    RouteDecision,
    Scenario,
    Step,
)
from ivr.domain.ports import Clock, FlowObserver, IntentCatalogue
from ivr.metrics import NodeTelemetry
from ivr.nlu.catalogue import load_catalogue
from ivr.storage.db import make_engine
from ivr.storage.online import SqlOnlineContacts
from ivr.storage.repositories import (
    SpoolingContactLog,
    SqlContactLog,
    SqlCustomerDirectory,
    SqlKnowledgeBase,
)
from ivr.storage.tables import agents
from ivr.storage.users import SqlUserStore
from ivr.web.push import ScreenPopHub
from ivr.web.security import Passwords

DEMO_PASSWORD = "kanaal-demo-password"
# (username, role, agent code)
DEMO_USERS = (("agent1", "agent", "1001"), ("super", "supervisor", None),
              ("admin", "admin", None))


def cheap_passwords() -> Passwords:
    """argon2id at its minimum cost: the real algorithm, fast enough for many test sign-ins."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@dataclass
class WebCore:
    """What the web layer reads from an ``App``, built from real adapters."""

    settings: Settings
    engine: Engine
    directory: SqlCustomerDirectory
    knowledge: SqlKnowledgeBase
    contacts: SpoolingContactLog
    clock: Clock = field(default_factory=SystemClock)
    metrics: FlowMetrics = field(default_factory=FlowMetrics)
    screenpop: ScreenPopHub = field(default_factory=ScreenPopHub)
    telemetry: NodeTelemetry = field(default_factory=NodeTelemetry)
    outbox_store: None = None  # no Twilio webhooks
    callbacks: Any = None  # a SqlCallbackDesk when a test wants the /cb/<token> pages
    # POST /api/contacts (online, then by phone): the SQL store and the intent catalogue
    online: SqlOnlineContacts | None = None
    catalogue: IntentCatalogue | None = None
    # the other Asterisks' wallboard views (App.remote_centres; a test delivers them)
    remote_centres: RemoteCentres = field(default_factory=RemoteCentres)

    def observers(self) -> tuple[FlowObserver, ...]:
        """The node's observers, as ``App.observers``."""
        return (ContactLogObserver(self.contacts), ScreenPopObserver(self.screenpop),
                self.metrics, self.telemetry)


@functools.lru_cache(maxsize=4)
def _catalogue(grammars_dir: Path) -> IntentCatalogue:
    """The intent catalogue, read once per directory: it takes about a second and the web
    tests build a core per test (only POST /api/contacts reads it, to check intents)."""
    return load_catalogue(grammars_dir)


def web_core(settings: Settings) -> WebCore:
    """Real SQL adapters on ``settings``' (migrated) database."""
    engine = make_engine(settings.effective_database_url)
    return WebCore(settings=settings, engine=engine, directory=SqlCustomerDirectory(
            engine, pin_max_failures=settings.pin_max_failures, pin_lock_s=settings.pin_lock_s),
                   knowledge=SqlKnowledgeBase(engine, timezone=settings.timezone),
                   contacts=SpoolingContactLog(SqlContactLog(engine),
                                               settings.spool_file),
                   online=SqlOnlineContacts(engine, ttl_s=settings.online_code_ttl_s),
                   catalogue=_catalogue(settings.grammars_dir))


def add_demo_users(engine: Engine, passwords: Passwords, password: str = DEMO_PASSWORD
                   ) -> None:
    """An agent (with agent profile 1001), a supervisor and an admin, all with ``password``."""
    with engine.begin() as conn:
        if conn.execute(select(agents.c.id).where(agents.c.code == "1001")).first() is None:
            conn.execute(insert(agents).values(code="1001", name="Ann Agent",
                                               interface="PJSIP/agent1001",
                                               updated_at=datetime.now(UTC)))
    store, hashed = SqlUserStore(engine), passwords.hash(password)
    for username, role, code in DEMO_USERS:
        store.add_user(username, hashed, role, code)


# The scenario that ends a call with each outcome without an agent.
SCENARIO_OF = {Outcome.SELF_SERVED: Scenario.ANSWER, Outcome.LINK_SENT: Scenario.SELF_SERVICE,
               Outcome.CHAT: Scenario.CHAT}


@dataclass(frozen=True, slots=True)
class CallScript:
    """One caller's way through the flow, as the events the flow would emit."""

    customer_no: str | None
    question: str
    intent: str
    confidence: float
    skill: str
    outcome: Outcome = Outcome.AGENT
    pin_verified: bool = False
    priority: int = 0
    reason: str = "intent routed to its skill"
    dropped_at: Step | None = None


async def play_call(core: WebCore, script: CallScript) -> str:
    """Emit one call's events through a real ``ContactJournal``; returns the session id."""
    customer = (await core.directory.find_by_customer_no(script.customer_no)
                if script.customer_no else None)
    start = core.clock.now() - timedelta(minutes=2)
    contact = Contact(id=str(uuid.uuid4()), channel=ContactChannel.VOICE,
                      caller=customer.numbers[0] if customer else "+31600000000",
                      started_at=start, language=customer.language if customer else "en")
    journal = ContactJournal(contact, core.observers())
    for event in _events(script, customer, contact.id, start):
        await journal.emit(event)
    return contact.id


def _events(s: CallScript, customer: Customer | None, session: str, at: datetime
            ) -> list[FlowEvent]:
    greeting = "Welcome. In a few words, how can I help you?"
    events: list[FlowEvent] = [StepTaken(Step.GREETING, at), Said(greeting)]
    if customer is not None:
        events += [Identified(customer, "cli"), StepTaken(Step.IDENTIFICATION, at,
                                                          {"method": "cli"})]
    if customer is not None and s.pin_verified:
        events += [Authenticated("pin"),
                   StepTaken(Step.IDENTIFICATION, at, {"method": "pin", "result": "ok"})]
    events += [StepTaken(Step.QUESTION, at), QuestionHeard(s.question), Heard(s.question),
               Understood(s.intent, s.confidence, "matcher"),
               StepTaken(Step.INTENT, at, {"intent": s.intent, "confidence": s.confidence})]
    said = (f"ivr: {greeting}", f"caller: {s.question}")
    if s.outcome in (Outcome.AGENT, Outcome.ERROR_TO_AGENT):
        decision = RouteDecision(Scenario.AGENT, s.skill, f"{s.skill}-queue", s.priority,
                                 s.reason, s.intent, s.question, said, customer, session)
        events += [Decided(decision), StepTaken(Step.HANDOFF, at, {"skill": s.skill}),
                   Said("I'll put you through to a colleague."),
                   ActionTaken(f"handoff:{s.skill}"), Concluded(s.outcome),
                   HandedOff(decision, _screen(decision, customer, session))]
    elif s.outcome in SCENARIO_OF:
        decision = RouteDecision(SCENARIO_OF[s.outcome], s.skill, f"{s.skill}-queue",
                                 intent=s.intent, session_id=session)
        events += [Decided(decision), Concluded(s.outcome)]
    events.append(Ended(s.outcome, at + timedelta(minutes=1), s.dropped_at))
    return events


def _screen(d: RouteDecision, c: Customer | None, session: str) -> dict[str, object]:
    # The same shape as ivr.domain.flow.handoff.screen_context builds for a live call.
    return {
        "session": session, "question": d.question, "intent": d.intent,
        "scenario": d.scenario.value, "skill": d.skill, "priority": d.priority,
        "reason": d.reason, "transcript": list(d.transcript),
        "customer": None if c is None else {
            "id": c.id, "customer_no": c.customer_no, "name": c.name, "tier": c.tier,
            "region": c.region, "language": c.language},
    }


def book_demo_callback(core: WebCore, skill: str, question: str,
                       number: str = "+31302345678", name: str = "") -> None:
    """A callback booked in the next open slot of ``skill`` (nothing dials it): what the
    agent desktop lists under the agent's skills."""
    from dataclasses import replace

    from ivr.app import build_callbacks
    from ivr.domain.callbacks import CallbackDraft, candidate_starts

    desk = build_callbacks(replace(core.settings, callbacks=True, callback_lead_s=0.0),
                           core.engine, core.knowledge)
    assert desk is not None
    start = candidate_starts(datetime.now(UTC), desk.policy, 2)[1]
    desk.book_store.book_sync(CallbackDraft(
        contact_id=f"c-{uuid.uuid4().hex[:8]}", number=number, language="en", skill=skill,
        slot_start=start, slot_end=start + timedelta(seconds=desk.policy.slot_s),
        question=question, customer_name=name), policy=desk.policy, cap=5)
