"""In-memory fakes for every port: fast domain tests, no I/O.

Adapters are tested against real servers elsewhere; these exist so the call
flow's transitions can be exercised exhaustively in milliseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, get_args

from ivr.domain.callbacks import (
    CallbackDraft,
    CallbackRecord,
    CallbackStatus,
    Slot,
    SlotPolicy,
    check_booking,
)
from ivr.domain.callbacks import capacity as cb_capacity
from ivr.domain.callbacks import offer as cb_offer
from ivr.domain.model import (
    AgentAvailability,
    ChatStatus,
    ContactSnapshot,
    Customer,
    IntentMatch,
    IntentScore,
    IntentSpec,
    Language,
    MessageReceipt,
    OnlineContact,
    OpeningStatus,
    Order,
    Outage,
    Scenario,
)
from ivr.domain.ports import PortError

# The tests' known caller: a caller-ID customer with one number, no PIN, in Leeds.
BOB = Customer(id=2, customer_no="1002", name="Bob Smith", language="en", region="Leeds",
               postcode="LS1", tier="standard", numbers=("+447700900123",))

PortName = Literal["directory", "knowledge", "matcher", "agents", "contacts", "messenger",
                   "recognizer"]
PORT_NAMES: frozenset[str] = frozenset(get_args(PortName))


class Faults:
    """One failure switch shared by the fakes: break ports by name, one or all at once.

    Every fake takes ``faults=`` (default: its own fresh ``Faults()``); give several
    fakes the same object and a test can take down the database and the matcher
    together, then heal one. A broken port raises :class:`PortError` on every call,
    the way a dead adapter does.
    """

    def __init__(self) -> None:
        self._down: set[str] = set()
        self._all = False

    @staticmethod
    def _known(port: str) -> str:
        # A typo would silently leave the port working and the test proving nothing.
        if port not in PORT_NAMES:
            raise ValueError(f"unknown port {port!r}; one of {sorted(PORT_NAMES)}")
        return port

    def fail(self, port: PortName) -> None:
        """Make every call to ``port`` raise PortError."""
        self._down.add(self._known(port))

    def heal(self, port: PortName) -> None:
        """Let ``port`` work again (also after :meth:`fail_all`)."""
        self._known(port)
        if self._all:
            self._all = False
            self._down = set(PORT_NAMES - {port})
        else:
            self._down.discard(port)

    def fail_all(self) -> None:
        """Break every port."""
        self._all = True

    def heal_all(self) -> None:
        """Let every port work again."""
        self._all = False
        self._down.clear()

    def is_down(self, port: PortName) -> bool:
        """Whether calls to ``port`` currently fail."""
        return self._all or self._known(port) in self._down

    def check(self, port: PortName) -> None:
        """Raise PortError if ``port`` is broken; fakes call this first in every method."""
        if self.is_down(port):
            raise PortError(f"{port} is down")


@dataclass
class _Breakable:
    """Base of the fakes: ``faults`` (keyword-only) decides whether ``port`` is down."""

    port: ClassVar[PortName]
    faults: Faults = field(default_factory=Faults, kw_only=True)

    def _check(self) -> None:
        self.faults.check(self.port)


@dataclass
class FakeDirectory(_Breakable):
    """CustomerDirectory in memory: customers, their orders and PINs."""

    port: ClassVar[PortName] = "directory"
    customers: list[Customer] = field(default_factory=list)
    order_book: dict[int, list[Order]] = field(default_factory=dict)
    pins: dict[int, str] = field(default_factory=dict)
    # Wrong PINs per customer across calls (the SQL adapter keeps them in a table).
    pin_max_failures: int = 6
    pin_failures: dict[int, int] = field(default_factory=dict)

    async def find_by_number(self, e164: str) -> Customer | None:
        self._check()
        return next((c for c in self.customers if e164 in c.numbers), None)

    async def find_by_customer_no(self, customer_no: str) -> Customer | None:
        self._check()
        return next((c for c in self.customers if c.customer_no == customer_no), None)

    async def orders(self, customer_id: int) -> Sequence[Order]:
        self._check()
        return list(self.order_book.get(customer_id, []))

    async def verify_pin(self, customer_id: int, pin: str) -> bool:
        self._check()
        if await self.pin_locked(customer_id) or customer_id not in self.pins:
            return False
        if self.pins[customer_id] == pin:
            self.pin_failures.pop(customer_id, None)
            return True
        self.pin_failures[customer_id] = self.pin_failures.get(customer_id, 0) + 1
        return False

    async def pin_locked(self, customer_id: int) -> bool:
        self._check()
        return self.pin_failures.get(customer_id, 0) >= self.pin_max_failures


@dataclass
class FakeKnowledge(_Breakable):
    """KnowledgeBase in memory: answers, opening status, outages, chat status."""

    port: ClassVar[PortName] = "knowledge"
    answers: dict[tuple[str, str], str] = field(default_factory=dict)
    voice_open: bool = True
    chat: ChatStatus = field(default_factory=lambda: ChatStatus(True, 5, 1))
    outage_list: list[Outage] = field(default_factory=list)
    subscribed: dict[tuple[int, str], str] = field(default_factory=dict)

    async def answer(self, key: str, language: Language) -> str | None:
        self._check()
        return self.answers.get((key, language)) or self.answers.get((key, "en"))

    async def opening(self, channel: str, at: datetime) -> OpeningStatus:
        self._check()
        if self.voice_open:
            return OpeningStatus(True, closes_at=at.replace(hour=17, minute=0))
        return OpeningStatus(False, next_open=(at + timedelta(days=1)).replace(hour=8, minute=0))

    async def outages(self, region: str | None, at: datetime) -> Sequence[Outage]:
        self._check()
        return [o for o in self.outage_list if region is None or o.region == region]

    async def subscribe_outage(self, outage_id: int, *, number: str, channel: str,
                               language: Language, contact_id: str) -> bool:
        self._check()
        key = (outage_id, number)
        if key in self.subscribed:
            return False
        self.subscribed[key] = channel
        return True

    async def chat_status(self, at: datetime) -> ChatStatus:
        self._check()
        return self.chat


def spec(name: str, scenario: Scenario, skill: str = "general", **kw: Any) -> IntentSpec:
    label = kw.pop("label", {"en": name.replace("_", " "), "nl": name.replace("_", " ")})
    return IntentSpec(name=name, scenario=scenario, skill=skill, label=label, **kw)


DEFAULT_SPECS: tuple[IntentSpec, ...] = (
    spec("order_status", Scenario.ANSWER, "logistics", answer_ref="crm:order_status", keypad="1"),
    spec("opening_hours", Scenario.ANSWER, answer_ref="kb:opening_hours"),
    spec("outage_info", Scenario.ANSWER, "tech", answer_ref="crm:outage", keypad="3"),
    spec("invoice_question", Scenario.AGENT, "billing", keypad="2"),
    spec("address_change", Scenario.SELF_SERVICE, link_key="address_change", keypad="5"),
    spec("tech_support_app", Scenario.CHAT, "tech", link_key="chat"),
    spec("speak_to_agent", Scenario.AGENT, keypad="0"),
    spec("report_death", Scenario.AGENT, "bereavement", sensitive=True, keypad="9"),
    spec("callback_request", Scenario.AGENT),
)


@dataclass
class FakeCatalogue:
    specs: tuple[IntentSpec, ...] = DEFAULT_SPECS

    def spec(self, name: str) -> IntentSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    def keypad_menu(self) -> Sequence[IntentSpec]:
        return sorted((s for s in self.specs if s.keypad), key=lambda s: s.keypad or "")

    def all_specs(self) -> Sequence[IntentSpec]:
        return self.specs

    def phrases(self, language: Language) -> Sequence[str]:
        return ()


@dataclass
class KeywordMatcher(_Breakable):
    """Keyword -> (intent, confidence); anything else is out of scope."""

    port: ClassVar[PortName] = "matcher"
    keywords: dict[str, tuple[str, float]] = field(default_factory=lambda: {
        "order": ("order_status", 0.95),
        "bestelling": ("order_status", 0.95),
        "opening": ("opening_hours", 0.9),
        "outage": ("outage_info", 0.9),
        "invoice": ("invoice_question", 0.9),
        "bill": ("invoice_question", 0.5),  # vague: triggers confirmation
        "address": ("address_change", 0.92),
        "adres": ("address_change", 0.92),
        "app": ("tech_support_app", 0.9),
        "died": ("report_death", 0.7),
        "passed away": ("report_death", 0.9),
        "call me back": ("callback_request", 0.9),
    })

    async def match(self, text: str, language: Language) -> IntentMatch:
        self._check()
        low = text.lower()
        hits = [IntentScore(i, c) for k, (i, c) in self.keywords.items() if k in low]
        hits.sort(key=lambda s: -s.confidence)
        return IntentMatch(ranked=tuple(hits), out_of_scope=not hits)


@dataclass
class FakeAgentPool(_Breakable):
    """AgentPool in memory: agents ready per skill (1 if not listed)."""

    port: ClassVar[PortName] = "agents"
    ready: dict[str, int] = field(default_factory=dict)

    async def availability(self, skill: str) -> AgentAvailability:
        self._check()
        return AgentAvailability(skill=skill, agents_ready=self.ready.get(skill, 1))


@dataclass
class InMemoryContactLog(_Breakable):
    """ContactLog in memory: snapshots by id, and how many saves."""

    port: ClassVar[PortName] = "contacts"
    records: dict[str, ContactSnapshot] = field(default_factory=dict)
    saves: int = 0

    async def save(self, contact: ContactSnapshot) -> None:
        self._check()
        self.saves += 1
        self.records[contact.id] = contact

    async def get(self, contact_id: str) -> ContactSnapshot | None:
        self._check()
        return self.records.get(contact_id)


@dataclass
class FakeMessenger(_Breakable):
    """Messenger that records what it sends; ``error_code`` makes it reject."""

    port: ClassVar[PortName] = "messenger"
    sent: list[dict[str, str]] = field(default_factory=list)
    error_code: str | None = None  # e.g. "21211": permanent failure

    async def send_link(
        self, *, to: str, channel: str, body: str, contact_id: str, language: Language
    ) -> MessageReceipt:
        self._check()
        if self.error_code:
            return MessageReceipt(ok=False, channel=channel, error_code=self.error_code,
                                  error="rejected", permanent=True)
        self.sent.append({"to": to, "channel": channel, "body": body, "contact": contact_id})
        return MessageReceipt(ok=True, message_id=f"SM{len(self.sent):032d}", channel=channel)


class FakeLinks:
    def link(self, key: str, contact_id: str) -> str:
        sig = hashlib.sha256(f"{key}:{contact_id}".encode()).hexdigest()[:12]
        return f"https://self.example.com/{key}?c={contact_id}&s={sig}"


@dataclass
class FakeScreenPop:
    published: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def publish(self, session_id: str, context: dict[str, Any]) -> None:
        self.published[session_id] = context


@dataclass
class FixedClock:
    at: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 10, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.at


@dataclass
class FakeCallbackDesk:
    """CallbackDesk in memory with the real slot rules (``ivr.domain.callbacks``).

    ``steal`` fills the chosen slot just before a booking (another caller was faster).
    """

    policy: SlotPolicy = field(default_factory=lambda: SlotPolicy(capacity={"general": 2,
                                                                            "billing": 2}))
    agents: int = 0
    offer_wait_s: float = 120.0
    booked: dict[tuple[str, datetime], int] = field(default_factory=dict)
    records: list[CallbackRecord] = field(default_factory=list)
    steal: bool = False
    clock: Callable[[], datetime] = field(
        default_factory=lambda: (lambda: datetime(2026, 11, 24, 10, 0, tzinfo=UTC)))

    async def offer(self, skill: str, at: datetime) -> Sequence[Slot]:
        counts = {s: n for (k, s), n in self.booked.items() if k == skill}
        return cb_offer(skill, at, self.policy, booked=counts, agents_logged_in=self.agents)

    async def book(self, draft: CallbackDraft) -> CallbackRecord:
        key = (draft.skill, draft.slot_start)
        cap = cb_capacity(draft.skill, self.policy, self.agents)
        if self.steal:
            self.booked[key] = cap
        check_booking(draft.slot_start, self.clock(), self.policy,
                      booked=self.booked.get(key, 0), cap=cap)
        self.booked[key] = self.booked.get(key, 0) + 1
        rec = CallbackRecord(id=f"cb{len(self.records) + 1}", draft=draft,
                             status=CallbackStatus.BOOKED, attempts=(),
                             next_attempt_at=draft.slot_start, created_at=self.clock())
        self.records.append(rec)
        return rec

    def manage_link(self, callback_id: str) -> str:
        return f"https://kanaal.example/cb/{callback_id}?t=signed"
class FakeSurveyLog:
    """SurveyLog in memory: ``scores`` and ``comments`` per contact."""

    def __init__(self) -> None:
        self.scores: dict[str, int] = {}
        self.comments: dict[str, tuple[str, str | None]] = {}

    async def score(self, contact_id: str, score: int, channel: str) -> None:
        self.scores[contact_id] = score

    async def comment(self, contact_id: str, *, text: str, recording: str | None,
                      channel: str) -> None:
        self.comments[contact_id] = (text, recording)


class FakeOnlineContacts:
    """OnlineContacts in memory: ``waiting`` by number, ``codes`` by code; claims kept."""

    def __init__(self) -> None:
        self.waiting: dict[str, OnlineContact] = {}
        self.codes: dict[str, OnlineContact] = {}
        self.claimed: list[tuple[str, str]] = []

    async def waiting_for(self, number: str) -> OnlineContact | None:
        return self.waiting.get(number)

    async def by_code(self, code: str) -> OnlineContact | None:
        return self.codes.get(code)

    async def claim(self, online: OnlineContact, call_id: str) -> None:
        self.claimed.append((online.contact_id, call_id))
        self.waiting = {k: v for k, v in self.waiting.items() if v is not online}
        self.codes.pop(online.code, None)
