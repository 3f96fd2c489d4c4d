"""Domain values shared by the call flow, the router and every adapter.

Everything here is a frozen dataclass or an enum: adapters translate vendor
payloads (ARI JSON, SQL rows, Twilio forms) into these at the edge.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Language = Literal["en", "nl"]
LANGUAGES: tuple[Language, ...] = ("en", "nl")


def known_language(value: str | None) -> Language | None:
    """The supported language of a code such as ``nl``, ``nl_NL`` or ``EN``, else None."""
    code = (value or "").strip().lower()
    return next((lang for lang in LANGUAGES if code.startswith(lang)), None)


def as_language(value: str | None, default: Language = "en") -> Language:
    """A supported language from a code such as ``nl``, ``nl_NL`` or ``EN``; else ``default``."""
    return known_language(value) or default


class Scenario(enum.StrEnum):
    """The four service scenarios of the seeds (plus the explicit end of a call)."""

    ANSWER = "S1"  # automated answer from CRM/knowledge
    SELF_SERVICE = "S2"  # link to a self-service web flow by SMS/WhatsApp
    CHAT = "S3"  # switch to live chat
    AGENT = "S4"  # skilled agent with context attached


class ContactChannel(enum.StrEnum):
    VOICE = "voice"
    TEXT = "text"  # the text test channel (`ivr call --text`)
    SMS = "sms"
    WHATSAPP = "whatsapp"
    CHAT = "chat"
    WEB = "web"


class Presentation(enum.StrEnum):
    """How the caller's number arrived, as far as identification is concerned."""

    VALID = "valid"
    WITHHELD = "withheld"  # CLIR / "anonymous" / empty
    MALFORMED = "malformed"  # not parseable as a phone number


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is on the line before identification.

    ``number`` is E.164 when ``presentation`` is VALID, else None; ``raw`` keeps
    what the network delivered for the contact record.
    """

    raw: str
    number: str | None
    presentation: Presentation
    dialed: str | None = None
    # Where the number is (area code, via the phonenumbers geocoder): an unknown
    # caller from an outage region still hears the announcement.
    region: str | None = None
    # Whether the number came from a trunk trusted to deliver true caller IDs (the
    # dialplan says so, see dialplan/pjsip.conf). Anyone can put any number in a SIP
    # From header: an untrusted number never identifies a customer (no account data).
    cli_trusted: bool = True


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    customer_no: str
    name: str
    language: Language
    region: str
    postcode: str
    tier: str  # "standard" | "gold" | "platinum"
    numbers: tuple[str, ...] = ()
    has_pin: bool = False
    preferred_channel: str = "sms"  # "sms" | "whatsapp"


@dataclass(frozen=True, slots=True)
class Order:
    order_no: str
    status: str  # "processing" | "in_transit" | "delivered" | "cancelled"
    eta: date | None
    carrier: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in ("processing", "in_transit")


@dataclass(frozen=True, slots=True)
class Outage:
    id: int
    region: str
    messages: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None

    def message(self, language: Language) -> str:
        return self.messages.get(language) or next(iter(self.messages.values()), "")


@dataclass(frozen=True, slots=True)
class OpeningStatus:
    """Whether a channel (voice agents, chat) is staffed right now."""

    is_open: bool
    closes_at: datetime | None = None
    next_open: datetime | None = None
    reason: str = ""  # e.g. the holiday's name


@dataclass(frozen=True, slots=True)
class ChatStatus:
    is_open: bool
    capacity: int
    active: int

    @property
    def available(self) -> bool:
        return self.is_open and self.active < self.capacity


@dataclass(frozen=True, slots=True)
class IntentSpec:
    """One entry of the intent catalogue (grammars/<lang>.yaml)."""

    name: str
    scenario: Scenario
    skill: str
    label: dict[str, str]  # short name per language, spoken in confirmations/menus
    answer_ref: str | None = None  # knowledge key or CRM lookup (order_status, outage_info)
    sensitive: bool = False
    keypad: str | None = None  # position in the keypad fallback menu
    link_key: str | None = None  # self-service/chat URL key for S2/S3

    def label_for(self, language: Language) -> str:
        return self.label.get(language) or self.label.get("en") or self.name


@dataclass(frozen=True, slots=True)
class IntentScore:
    intent: str
    confidence: float


@dataclass(frozen=True, slots=True)
class IntentMatch:
    """Ranked intents for one utterance; ``out_of_scope`` when none fits.

    ``unavailable``: the matcher could not answer in time (its bounded queue
    was full or it timed out); the flow offers the keypad menu instead of
    asking the caller to repeat a question that was never matched.
    ``processing_ms``: how long the caller waited for the match (queue included;
    0 when not measured), for turn timings.
    """

    ranked: tuple[IntentScore, ...]
    out_of_scope: bool
    unavailable: bool = False
    processing_ms: float = field(default=0.0, compare=False)  # a timing, not the answer

    @property
    def best(self) -> IntentScore | None:
        return self.ranked[0] if self.ranked else None


@dataclass(frozen=True, slots=True)
class Utterance:
    """What the caller said or keyed in during one listen turn."""

    text: str
    confidence: float = 1.0
    alternatives: tuple[str, ...] = ()
    dtmf: str | None = None
    # The language the recogniser heard when asked to detect it (None: not detected).
    language: Language | None = None


@dataclass(frozen=True, slots=True)
class AgentAvailability:
    skill: str
    agents_ready: int
    queue_length: int = 0
    estimated_wait_s: int | None = None


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """Everything the Router may weigh for one caller at one moment."""

    spec: IntentSpec | None  # None: the intent is unknown (escalations)
    customer: Customer | None
    at: datetime
    language: Language
    session_id: str | None = None
    identified_by: str | None = None  # "cli" | "customer_no"
    authenticated: bool = False
    caller_number: str | None = None  # E.164, for the region of unknown callers


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where the call goes and everything an agent needs to pick it up."""

    scenario: Scenario
    skill: str
    queue: str
    priority: int = 0
    reason: str = ""
    intent: str | None = None
    question: str | None = None
    transcript: tuple[str, ...] = ()
    customer: Customer | None = None
    session_id: str | None = None
    # Smart routing (live centre state); empty for the static plan.
    position: int | None = None  # place in the queue on arrival (1 = next)
    expected_wait_s: float | None = None
    preferred_agent: str | None = None  # interface to offer first (repeat caller)
    side: str | None = None  # own | partner (load split)
    unstaffed: bool = False  # nobody can take this call now: offer alternatives instead
    alternatives: tuple[str, ...] = ()  # callback | chat | self_service, in order
    # The dialplan brings the caller back for the after-call survey (IVR_CSAT).
    survey: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.value,
            "skill": self.skill,
            "queue": self.queue,
            "priority": self.priority,
            "reason": self.reason,
            "intent": self.intent,
            "question": self.question,
            "transcript": list(self.transcript),
            "customer_id": self.customer.id if self.customer else None,
            "session_id": self.session_id,
            "position": self.position,
            "expected_wait_s": self.expected_wait_s,
            "preferred_agent": self.preferred_agent,
            "side": self.side,
            "unstaffed": self.unstaffed,
            "alternatives": list(self.alternatives),
            "survey": self.survey,
        }


@dataclass(frozen=True, slots=True)
class MessageReceipt:
    """Result of handing a message to the Messenger."""

    ok: bool
    message_id: str | None = None
    channel: str = "sms"
    error_code: str | None = None
    error: str | None = None
    permanent: bool = False


class Step(enum.StrEnum):
    """Steps of a contact, recorded in order; the last one is where a caller dropped off."""

    GREETING = "greeting"
    IDENTIFICATION = "identification"
    PROACTIVE = "proactive"
    QUESTION = "question"
    INTENT = "intent"
    CONFIRM = "confirm"
    KEYPAD = "keypad"
    SCENARIO = "scenario"
    ACTION = "action"
    FEEDBACK = "feedback"
    HANDOFF = "handoff"
    CLOSE = "close"


class Outcome(enum.StrEnum):
    SELF_SERVED = "self_served"  # S1 answer accepted
    LINK_SENT = "link_sent"  # S2/S3 link sent, caller left
    CHAT = "chat"
    AGENT = "agent"  # handed to an agent queue
    ABANDONED = "abandoned"  # caller hung up
    CLOSED_HOURS = "closed_hours"  # wanted an agent outside opening hours
    ERROR_TO_AGENT = "error_to_agent"  # a system failure sent the caller to a human
    NO_AGENT = "no_agent"  # nobody staffed for the topic and no alternative could serve
    CALLBACK = "callback"  # a callback was booked in a time slot (ivr.domain.callbacks)


@dataclass(frozen=True, slots=True)
class StepRecord:
    step: Step
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Contact:
    """The contact record the flow builds up; saved (upserted) after every step.

    Mutable on purpose: it is the per-call state the flow owns; the ContactLog
    receives snapshots via :meth:`snapshot`.
    """

    id: str
    channel: ContactChannel
    caller: str
    started_at: datetime
    language: Language
    customer_id: int | None = None
    question: str | None = None
    intent: str | None = None
    confidence: float | None = None
    scenario: Scenario | None = None
    skill: str | None = None
    action: str | None = None
    outcome: Outcome | None = None
    dropped_at: Step | None = None
    ended_at: datetime | None = None
    transcript: list[str] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)

    @classmethod
    def resumed(cls, snap: ContactSnapshot) -> Contact:
        """The record again, to go on with (a caller back in the app from the queue).

        The outcome is cleared: the call is open again until the flow concludes it.
        """
        return cls(
            id=snap.id, channel=snap.channel, caller=snap.caller, started_at=snap.started_at,
            language=snap.language, customer_id=snap.customer_id, question=snap.question,
            intent=snap.intent, confidence=snap.confidence, scenario=snap.scenario,
            skill=snap.skill, action=snap.action, outcome=None, dropped_at=None,
            ended_at=None, transcript=list(snap.transcript), steps=list(snap.steps))

    def snapshot(self) -> ContactSnapshot:
        return ContactSnapshot(
            id=self.id,
            channel=self.channel,
            caller=self.caller,
            started_at=self.started_at,
            language=self.language,
            customer_id=self.customer_id,
            question=self.question,
            intent=self.intent,
            confidence=self.confidence,
            scenario=self.scenario,
            skill=self.skill,
            action=self.action,
            outcome=self.outcome,
            dropped_at=self.dropped_at,
            ended_at=self.ended_at,
            transcript=tuple(self.transcript),
            steps=tuple(self.steps),
        )


@dataclass(frozen=True, slots=True)
class ContactSnapshot:
    id: str
    channel: ContactChannel
    caller: str
    started_at: datetime
    language: Language
    customer_id: int | None
    question: str | None
    intent: str | None
    confidence: float | None
    scenario: Scenario | None
    skill: str | None
    action: str | None
    outcome: Outcome | None
    dropped_at: Step | None
    ended_at: datetime | None
    transcript: tuple[str, ...]
    steps: tuple[StepRecord, ...]


@dataclass(frozen=True, slots=True)
class OnlineContact:
    """A question asked on the web or in chat that the customer will follow up by phone
    (``POST /api/contacts``): the caller is put through with it, without being asked."""

    contact_id: str
    code: str
    customer_id: int | None
    intent: str
    text: str
    expires_at: datetime
