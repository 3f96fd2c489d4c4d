"""Ports: what the core needs from the outside world, as Protocols.

Adapters (storage/, speech/, telephony/, notify/, web/) implement these; fakes
for every one live in ``ivr.testing``. All I/O ports are async: an adapter that
wraps blocking work (sync DB drivers, Kaldi decoding) runs it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ivr.domain.model import (
    AgentAvailability,
    Caller,
    ChatStatus,
    ContactSnapshot,
    Customer,
    IntentMatch,
    IntentSpec,
    Language,
    MessageReceipt,
    OnlineContact,
    OpeningStatus,
    Order,
    Outage,
    RouteDecision,
    RouteRequest,
    Utterance,
)

if TYPE_CHECKING:  # the flow package imports this module; only types flow back
    from ivr.domain.callbacks import CallbackDraft, CallbackRecord, Slot
    from ivr.domain.flow.events import FlowEvent


class CallerHungUp(Exception):
    """Raised by a CallChannel operation once the caller has gone."""


class PortError(Exception):
    """An adapter could not do its job (DB down, HTTP error...). The flow fails safe."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """Something to say: a catalogue key (pre-recorded sound) plus its rendered text.

    Channels with audio play ``sounds/<lang>/<key>`` when ``params`` is empty and a
    recording exists, and synthesise ``text`` otherwise (dynamic answers).
    """

    key: str
    text: str
    language: Language
    params: tuple[tuple[str, str], ...] = ()
    # Prompts played right after this one as the same turn (one playback on ARI): the
    # caller may answer over them. The language offer follows the open question this
    # way, so the question itself is not delayed by it.
    then: tuple[Prompt, ...] = ()

    @property
    def parts(self) -> tuple[Prompt, ...]:
        """This prompt, then the ones that follow it in the same turn."""
        return (self, *self.then)


class CallChannel(Protocol):
    """One live conversation (voice or text) as the flow sees it."""

    @property
    def caller(self) -> Caller:
        """Who is calling (number as delivered by the network, parsed)."""

    @property
    def session_id(self) -> str:
        """The call's id: contact record key, screen-pop key, log context."""

    async def say(self, prompt: Prompt) -> None:
        """Play/print a prompt. Audio channels may stop it early on barge-in."""

    async def listen(
        self, prompt: Prompt | None, *, timeout_s: float, phrases: Sequence[str] = (),
        detect_language: bool = False,
    ) -> Utterance | None:
        """Say ``prompt`` (barge-in allowed), then return what the caller said or keyed.

        None means no input within ``timeout_s``. ``phrases`` biases recognition.
        ``detect_language``: the recogniser may hear another language than the prompt's
        (a multilingual model); the utterance then says which (``Utterance.language``).
        """

    async def collect_digits(
        self, prompt: Prompt, *, max_digits: int, timeout_s: float
    ) -> str | None:
        """Say ``prompt`` and collect up to ``max_digits`` DTMF digits ('#' ends early)."""

    async def hand_off(self, decision: RouteDecision) -> None:
        """Transfer the caller to the agent queue the decision names."""

    async def hang_up(self) -> None:
        """End the call (the IVR is done and no agent is needed)."""


@runtime_checkable
class PromptWarmer(Protocol):
    """A channel that can make a prompt's audio ready before it is said (audio
    channels: synthesised into the prompt cache); text channels do not have it."""

    async def prepare(self, prompt: Prompt) -> None:
        """Have ``prompt``'s audio ready; may raise (then it is made when said)."""


@dataclass(frozen=True, slots=True)
class RecognitionResult:
    """Final result of one recognition turn."""

    text: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...] = ()
    words: tuple[tuple[str, float, float], ...] = ()  # (word, start_s, end_s)
    processing_ms: float = 0.0  # decode time after end of speech
    # The language the engine heard, when it was asked to detect it (None: not detected).
    language: str | None = None


@dataclass(frozen=True, slots=True)
class RecognitionEvent:
    """Emitted while audio streams in: partial text and speech start/end."""

    partial: str = ""
    speech_started: bool = False
    endpoint: bool = False  # end of speech detected: call ``finish()``
    # With ``endpoint``: how much quiet after the last speech the endpointer waited for.
    silence_ms: float = 0.0
    # With ``endpoint``: how the turn's end was decided ("adaptive", or "endpoint: " and
    # why the early end did not apply); empty when the recogniser does not say.
    end_of_turn: str = ""
    # With ``endpoint``: wall time of the recogniser's speculative decode of the turn
    # (started during the pause), None when there was none.
    early_decode_ms: float | None = None


class RecognizerStream(Protocol):
    """One utterance-long recognition session (one per call turn)."""

    async def feed(self, pcm16: bytes) -> RecognitionEvent:
        """Feed 16-bit little-endian mono PCM at the stream's sample rate."""

    async def finish(self) -> RecognitionResult:
        """Decode what was fed so far and return the final result."""

    async def close(self) -> None:
        """Release the stream (idempotent)."""


class Recognizer(Protocol):
    """Speech-to-text engine; model memory is shared across streams."""

    name: str

    def supports(self, language: Language) -> bool:
        """Whether a model for ``language`` is loaded."""

    async def open_stream(
        self, language: Language, *, sample_rate: int, phrases: Sequence[str] = (),
        detect_language: bool = False,
    ) -> RecognizerStream:
        """Start one utterance; ``phrases`` bias recognition (grammar or prompt).

        ``detect_language``: an engine that can tell the languages apart decodes in the
        one it hears and names it in ``RecognitionResult.language``; others ignore it."""


class CustomerDirectory(Protocol):
    """The CRM as the IVR needs it: who is calling, their orders, their PIN."""

    async def find_by_number(self, e164: str) -> Customer | None:
        """The customer with this phone number (E.164), None when unknown."""

    async def find_by_customer_no(self, customer_no: str) -> Customer | None:
        """The customer with this customer number (keyed in), None when unknown."""

    async def orders(self, customer_id: int) -> Sequence[Order]:
        """The customer's orders, newest first."""

    async def verify_pin(self, customer_id: int, pin: str) -> bool:
        """Whether ``pin`` is the customer's PIN (constant time; no PIN: False).

        A wrong PIN counts against the customer across calls; while locked
        (:meth:`pin_locked`) every PIN is refused unchecked."""

    async def pin_locked(self, customer_id: int) -> bool:
        """Whether too many wrong PINs were keyed for this customer recently (any call)."""


class KnowledgeBase(Protocol):
    """Answers, opening hours, outages and chat capacity."""

    async def answer(self, key: str, language: Language) -> str | None:
        """Answer template for a knowledge key, ``{placeholders}`` filled by the flow."""

    async def opening(self, channel: str, at: datetime) -> OpeningStatus:
        """Opening status of ``voice`` (agents) or ``chat`` at a moment, holidays included."""

    async def outages(self, region: str | None, at: datetime) -> Sequence[Outage]:
        """Active outages; region None lists all."""

    async def subscribe_outage(self, outage_id: int, *, number: str, channel: str,
                               language: Language, contact_id: str) -> bool:
        """Text ``number`` when the outage changes or ends; False if already subscribed."""

    async def chat_status(self, at: datetime) -> ChatStatus:
        """Whether live chat is open and has capacity at ``at``."""


class IntentCatalogue(Protocol):
    """The intents the line handles (grammars/<lang>.yaml)."""

    def spec(self, name: str) -> IntentSpec | None:
        """The intent called ``name``, None when the catalogue has none."""

    def keypad_menu(self) -> Sequence[IntentSpec]:
        """Intents in keypad order (the DTMF fallback menu)."""

    def all_specs(self) -> Sequence[IntentSpec]:
        """Every intent, in catalogue order."""

    def phrases(self, language: Language) -> Sequence[str]:
        """Vocabulary hint for the recogniser."""


class IntentMatcher(Protocol):
    """Text -> ranked intents with confidence, or out of scope."""

    async def match(self, text: str, language: Language) -> IntentMatch:
        """Rank the catalogue's intents for ``text`` (what the caller said)."""


class AgentPool(Protocol):
    """Agent availability per skill, as the Router reads it."""

    async def availability(self, skill: str) -> AgentAvailability:
        """Agents ready, callers waiting and expected wait for ``skill``."""


class Router(Protocol):
    """Every "where does this caller go" decision, in one place.

    The flow, the ARI app's safety net and the FastAGI path all ask the Router,
    so a routing engine replaces one object.
    """

    async def route(self, request: RouteRequest) -> RouteDecision:
        """Scenario and destination for an understood intent (``request.spec`` set)."""

    async def escalate(self, request: RouteRequest, reason: str) -> RouteDecision:
        """An agent for a caller the IVR could not serve (``reason`` is recorded)."""

    def needs_identity(self, request: RouteRequest, decision: RouteDecision) -> bool:
        """Whether an unknown caller must say who they are (customer number) first."""

    def needs_pin(self, request: RouteRequest, decision: RouteDecision) -> bool:
        """Whether the caller must key in their PIN before ``decision`` is carried out."""

    def fail_safe(self, reason: str, *, session_id: str | None = None,
                  customer: Customer | None = None, intent: str | None = None
                  ) -> RouteDecision:
        """A human queue when something broke. No I/O: it must work when all else fails."""


class FlowObserver(Protocol):
    """Subscribes to a call's flow events (contact log, screen-pop, metrics, features)."""

    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        """Called after ``event`` was folded into the record; must not block the call."""


class ContactLog(Protocol):
    """Where contact records are kept (one row per call, upserted)."""

    async def save(self, contact: ContactSnapshot) -> None:
        """Upsert the whole contact record (called after every step)."""

    async def get(self, contact_id: str) -> ContactSnapshot | None:
        """The stored record, None when unknown."""


class Messenger(Protocol):
    """SMS and WhatsApp (Twilio in production)."""

    async def send_link(
        self,
        *,
        to: str,
        channel: str,
        body: str,
        contact_id: str,
        language: Language,
    ) -> MessageReceipt:
        """Send a text (SMS or WhatsApp); returns once accepted or definitely failed."""


class LinkBuilder(Protocol):
    """Signed links into self-service and chat."""

    def link(self, key: str, contact_id: str) -> str:
        """Signed, expiring URL for a self-service/chat flow that continues this contact."""


class ScreenPop(Protocol):
    """The agent desktop's push channel."""

    async def publish(self, session_id: str, context: dict[str, Any]) -> None:
        """Make the agent-facing context for a session available (desktop pops it)."""


class OnlineContacts(Protocol):
    """Web and chat questions waiting for the customer's call (codes expire)."""

    async def waiting_for(self, number: str) -> OnlineContact | None:
        """The newest unexpired, unclaimed question of the customer this number belongs to."""

    async def by_code(self, code: str) -> OnlineContact | None:
        """The unexpired, unclaimed question with this code; None if unknown or expired."""

    async def claim(self, online: OnlineContact, call_id: str) -> None:
        """The call ``call_id`` took it over (the code stops working)."""


class SurveyLog(Protocol):
    """Where the after-call survey's answers go (on the contact, and its timeline)."""

    async def score(self, contact_id: str, score: int, channel: str) -> None:
        """Record the caller's 1-5 score on the contact."""

    async def comment(self, contact_id: str, *, text: str, recording: str | None,
                      channel: str) -> None:
        """Record the follow-up answer (words heard, and where its recording is)."""


@runtime_checkable
class MessageRecorder(Protocol):
    """A channel that can record the caller's message to a file (ARI); others can only
    transcribe (``listen``)."""

    async def record_message(self, name: str, *, max_s: float, silence_s: float
                             ) -> str | None:
        """Record until silence, ``#`` or ``max_s``; the stored name, None if nothing."""


class Clock(Protocol):
    """Time, injectable so tests and `--at` can pin it."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""


class CallbackDesk(Protocol):
    """Callbacks in time slots as the flow sees them (``ivr.callbacks.desk``)."""

    @property
    def offer_wait_s(self) -> float:
        """An expected wait at least this long makes the flow offer a callback."""

    async def offer(self, skill: str, at: datetime) -> Sequence[Slot]:
        """Up to three bookable slots of ``skill`` after ``at`` (none: no offer)."""

    async def book(self, draft: CallbackDraft) -> CallbackRecord:
        """Book; raises ``CallbackError`` (SlotFull, SlotInPast) when it cannot."""

    def manage_link(self, callback_id: str) -> str:
        """Signed URL where the customer cancels or moves the callback."""


@dataclass(frozen=True, slots=True)
class LegResult:
    """How one outbound leg ended before being connected: answered, or the hang-up cause."""

    answered: bool
    cause: int = 0
    cause_txt: str = ""


class OutboundCalls(Protocol):
    """Outbound calls for the callback dialer (``AriOutboundCalls``: ARI originate)."""

    async def ring(self, channel_id: str, endpoint: str, *, timeout_s: float,
                   variables: dict[str, str]) -> LegResult:
        """Dial ``endpoint`` with our channel id; returns once answered or failed."""

    async def bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        """Connect answered legs."""

    async def to_queue(self, channel_id: str, variables: dict[str, str]) -> None:
        """An answered leg into the hand-off dialplan (a skill queue)."""

    async def until_hangup(self, channel_ids: Sequence[str], bridge_id: str | None,
                           max_s: float) -> None:
        """Wait until one leg hangs up, then hang up the others and tidy the bridge."""

    async def hang_up(self, channel_id: str) -> None:
        """Hang up a leg (no-op when gone)."""

    async def alive(self, channel_id: str) -> bool:
        """Whether a channel with this id exists (an attempt still ringing or talking)."""
