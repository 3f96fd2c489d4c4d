"""Prometheus metrics of one node (``prometheus-client``), kept out of the domain.

``NodeTelemetry`` is a flow observer (calls active, calls by outcome, scenario and
channel, drop-offs, intents, hand-offs), takes each ARI call's turn timings when the
call ends (turn gap and ASR latency histograms), counts errors by kind from the
``ivr`` loggers, follows queue waits on AMI (``follow_queues``: answered and abandoned
callers), and at scrape time reads what only exists as live state: database and
outbox, ARI/AMI connections, callers waiting and agent states (``exposition``).

Each node has its own registry (not the process-global one), so two apps in one
process (tests, ``ivr demo``) never share or double-register series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ivr.contact_centre.feed import queue_key
from ivr.domain.centre import AgentState, CentreKind, CentreSnapshot
from ivr.domain.flow.events import Ended, FlowEvent, HandedOff
from ivr.domain.model import ContactSnapshot
from ivr.telephony.ami import AmiClient
from ivr.telephony.ami.events import AgentConnect, QueueCallerAbandon

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Turn gap: end of the caller's speech -> our answer starts playing. Target < 1 s.
TURN_GAP_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
ASR_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
QUEUE_WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)  # SL target: 20 s


class TurnTiming(Protocol):
    """One answered turn of a call (``ivr.telephony.ari.channel.ResponseTiming``)."""

    @property
    def asr_ms(self) -> float: ...

    @property
    def response_ms(self) -> float: ...


class CallFigures(Protocol):
    """What an ARI call measured (``ivr.telephony.ari.channel.CallStats``)."""

    @property
    def responses(self) -> Sequence[TurnTiming]: ...

    @property
    def media_errors(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class LiveState:
    """Scrape-time inputs: None means the node has no such part (e.g. no AMI)."""

    database_up: bool
    outbox: Mapping[str, int] | None = None
    ari_connected: bool | None = None
    ami_connected: bool | None = None
    centre: CentreSnapshot | None = None
    desktops: int | None = None


class NodeTelemetry:
    """The node's Prometheus registry and the observers that feed it."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self._open: set[str] = set()
        active = Gauge("kanaal_calls_active", "Calls (and text contacts) in the flow now.",
                       registry=r)
        active.set_function(lambda: len(self._open))
        self.calls = Counter("kanaal_calls", "Contacts ended, by outcome, scenario and channel.",
                             ["outcome", "scenario", "channel"], registry=r)
        self.dropoffs = Counter("kanaal_dropoffs", "Callers who hung up, by the step they left at.",
                                ["step"], registry=r)
        self.intents = Counter("kanaal_intents", "Contacts ended, by recognised intent.",
                               ["intent"], registry=r)
        self.handoffs = Counter("kanaal_handoffs", "Callers handed to an agent queue, by skill.",
                                ["skill"], registry=r)
        self.turn_gap = Histogram(
            "kanaal_turn_gap_seconds",
            "End of the caller's speech to our answer's playback request (ARI calls).",
            buckets=TURN_GAP_BUCKETS, registry=r)
        self.asr = Histogram("kanaal_asr_latency_seconds",
                             "End of the caller's speech to the recogniser's final result.",
                             buckets=ASR_BUCKETS, registry=r)
        self.errors = Counter("kanaal_errors", "Errors by kind (logger or subsystem).",
                              ["kind"], registry=r)
        self.queue_wait = Histogram(
            "kanaal_queue_wait_seconds",
            "How long callers queued before an agent answered (AMI AgentConnect), by queue.",
            ["queue"], buckets=QUEUE_WAIT_BUCKETS, registry=r)
        self.abandoned = Histogram(
            "kanaal_queue_abandoned_wait_seconds",
            "How long callers who hung up in a queue had waited (AMI QueueCallerAbandon).",
            ["queue"], buckets=QUEUE_WAIT_BUCKETS, registry=r)
        self._live = _LiveGauges(r)

    # ------------------------------------------------------------ feeding
    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        """Flow observer: open on the first event of a contact, count on ``Ended``."""
        if isinstance(event, Ended):
            self._open.discard(contact.id)
            scenario = contact.scenario.value if contact.scenario else "none"
            self.calls.labels(event.outcome.value, scenario, contact.channel.value).inc()
            if event.dropped_at is not None:
                self.dropoffs.labels(event.dropped_at.value).inc()
            if contact.intent:
                self.intents.labels(contact.intent).inc()
            return
        self._open.add(contact.id)
        if isinstance(event, HandedOff):
            self.handoffs.labels(event.decision.skill).inc()

    def observe_call(self, figures: CallFigures) -> None:
        """An ARI call ended: its turns into the histograms, its media errors counted."""
        for turn in figures.responses:
            self.turn_gap.observe(turn.response_ms / 1000)
            self.asr.observe(turn.asr_ms / 1000)
        if figures.media_errors:
            self.errors.labels("media").inc(len(figures.media_errors))

    async def follow_queues(self, ami: AmiClient) -> None:
        """Queue waits from AMI as they happen (answered and abandoned), until cancelled."""
        with ami.subscribe(AgentConnect, QueueCallerAbandon) as events:
            async for event in events:
                if isinstance(event, AgentConnect):
                    self.queue_wait.labels(queue_key(event.queue)).observe(event.hold_time)
                elif isinstance(event, QueueCallerAbandon):
                    self.abandoned.labels(queue_key(event.queue)).observe(event.hold_time)

    def log_handler(self) -> logging.Handler:
        """Counts ERROR records of the ``ivr`` loggers by logger (install on ``ivr``)."""
        return _ErrorCounter(self.errors)

    # ------------------------------------------------------------ scraping
    def exposition(self, live: LiveState) -> bytes:
        """The text exposition, with the live gauges set from ``live`` first."""
        self._live.set(live)
        return generate_latest(self.registry)


class _ErrorCounter(logging.Handler):
    def __init__(self, errors: Counter) -> None:
        super().__init__(logging.ERROR)
        self._errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        # "ivr.telephony.ari.channel" -> "telephony.ari.channel": a closed set of modules.
        self._errors.labels(record.name.removeprefix("ivr.")).inc()


class _LiveGauges:
    """Gauges read from live state at scrape time (cleared first: queues come and go)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.database = Gauge("kanaal_database_up", "Whether the database answered the probe.",
                              registry=r)
        self.outbox = Gauge("kanaal_outbox_messages",
                            "SMS/WhatsApp messages not yet accepted by Twilio, by state.",
                            ["state"], registry=r)
        self.links = Gauge("kanaal_connection_up",
                           "Whether the node's link to Asterisk is up (ari, ami).",
                           ["link"], registry=r)
        self.waiting = Gauge("kanaal_queue_waiting", "Callers waiting in each agent queue.",
                             ["queue"], registry=r)
        self.longest = Gauge("kanaal_queue_longest_wait_seconds",
                             "How long the longest-waiting caller of each queue has waited.",
                             ["queue"], registry=r)
        self.agents = Gauge("kanaal_agents", "Agents by skill and state (live, from AMI).",
                            ["skill", "state"], registry=r)
        self.desktops = Gauge("kanaal_screenpop_desktops",
                              "Agent desktops connected to this node.", registry=r)

    def set(self, live: LiveState) -> None:
        self.database.set(int(live.database_up))
        _replace(self.outbox, ((k, v) for k, v in (live.outbox or {}).items()))
        links = {"ari": live.ari_connected, "ami": live.ami_connected}
        _replace(self.links, ((k, int(v)) for k, v in links.items() if v is not None))
        self.desktops.set(live.desktops or 0)
        snap = live.centre
        if snap is None:
            for g in (self.waiting, self.longest, self.agents):
                g.clear()
            return
        _replace(self.waiting, ((q, v.waiting) for q, v in snap.queues.items()))
        _replace(self.longest, ((q, v.longest_wait_s(snap.at)) for q, v in snap.queues.items()))
        _replace(self.agents, ((f"{skill}\x00{state.value}", n)
                               for skill, view in snap.skills.items()
                               for state, n in _states(view.counts).items()))


def _states(counts: Mapping[CentreKind, Mapping[AgentState, int]]) -> dict[AgentState, int]:
    """Agent counts per state, both centre sides added up."""
    total: dict[AgentState, int] = {}
    for by_state in counts.values():
        for state, n in by_state.items():
            total[state] = total.get(state, 0) + n
    return total


def _replace(gauge: Gauge, values: Iterable[tuple[str, float]]) -> None:
    gauge.clear()
    for key, value in values:
        gauge.labels(*key.split("\x00")).set(value)
