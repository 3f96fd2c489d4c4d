"""The surge service of a node: feeds the pure ``SurgeDetector`` from the call flow's
events and acts on what it reports.

- ``SurgeObserver`` (a flow observer) counts each call once, when its intent is
  understood (or when it ends without one), with the caller's region: the CRM's for
  a known customer, else the number's area code.
- On a region surge the service posts an outage announcement for the region
  (``source=surge``; active at once or pending a supervisor's confirmation, as
  ``IVR_SURGE_AUTO_ACTIVATE`` says), pushes an alert to supervisors' consoles, and
  sends a webhook and an SMS to the configured supervisors. When the rate falls
  back it ends the announcement it made and tells the callers who asked for news.
- Intent surges (one topic from everywhere) alert only.

Acting (database, webhook, SMS) happens in the service's own task, never in the
call's: ``record_call`` only updates the detector (microseconds) and queues changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ivr.domain.flow.events import Ended, FlowEvent, Identified, Understood
from ivr.domain.model import ContactSnapshot
from ivr.domain.outages import OutageRecord, OutageSource, OutageStatus, draft
from ivr.domain.ports import Clock, Messenger
from ivr.domain.surge import SurgeChange, SurgeDetector, SurgeEnded, SurgeStarted
from ivr.outages.alerts import SupervisorAlerts
from ivr.storage.outages import SqlOutageBoard

log = logging.getLogger(__name__)

# What callers hear when the detector posts on its own: no cause is known yet.
SURGE_MESSAGES = {
    "en": "We are receiving many calls from the {region} area about a possible fault. "
          "Our engineers are looking into it.",
    "nl": "We krijgen veel telefoontjes uit de regio {region} over een mogelijke storing. "
          "Onze monteurs zoeken het uit.",
}

Webhook = Callable[[dict[str, Any]], Awaitable[None]]
SubscriberNews = Callable[[OutageRecord, str], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class SurgeSettings:
    """What the service does on a surge (``IVR_SURGE_*``)."""

    auto_activate: bool = False
    sms_to: tuple[str, ...] = ()
    tick_s: float = 30.0


class SurgeService:
    """See the module docstring."""

    def __init__(self, detector: SurgeDetector, board: SqlOutageBoard,
                 settings: SurgeSettings | None = None, *,
                 alerts: SupervisorAlerts | None = None, messenger: Messenger | None = None,
                 webhook: Webhook | None = None, subscriber_news: SubscriberNews | None = None,
                 clock: Clock | None = None) -> None:
        self.detector = detector
        self.board = board
        self.settings = settings or SurgeSettings()
        self.alerts = alerts
        self._messenger = messenger
        self._webhook = webhook
        self._news = subscriber_news
        self._clock = clock
        self._pending: asyncio.Queue[SurgeChange] = asyncio.Queue()
        self.on_change: list[Callable[[SurgeChange], None]] = []
        self.outage_of: dict[str, int] = {}  # surge key -> the outage it posted
        self.history_calls = 0

    # ------------------------------------------------------------- feeding

    async def record_call(self, at: datetime, region: str | None, intent: str | None) -> None:
        """Count one call; surges found are acted on by ``run`` (or ``drain``)."""
        for change in self.detector.observe(at, region, intent):
            self._pending.put_nowait(change)

    def tick(self, at: datetime) -> None:
        for change in self.detector.tick(at):
            self._pending.put_nowait(change)

    async def drain(self) -> int:
        """Act on every queued change now (tests, bench); returns how many."""
        n = 0
        while not self._pending.empty():
            await self._act(self._pending.get_nowait())
            n += 1
        return n

    async def run(self) -> None:
        """Act on changes as they come; tick the detector so surges end in quiet times."""
        while True:
            change: SurgeChange | None = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.tick_s):
                    change = await self._pending.get()
            if change is None:
                self.tick(self._now())
                continue
            try:
                await self._act(change)
            except Exception:  # a dead database must not stop detection
                log.exception("acting on %s failed", type(change).__name__)

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)

    async def learn(self, load: Callable[[datetime], list[
            tuple[datetime, str, str | None, str | None]]],
            region_of: Callable[[str], str | None], *, now: datetime,
            weeks: int = 8) -> int:
        """Replay the contact history of the last ``weeks`` weeks into the detector,
        then bring it to ``now``. Changes found in the replay are history; surges still
        running at ``now`` are acted on like new ones (``_announce`` reuses an outage
        it posted before a restart)."""
        rows = await asyncio.to_thread(load, now - timedelta(weeks=weeks))
        calls = await asyncio.to_thread(history_rows, rows, region_of)
        self.detector.learn(calls)
        self.detector.tick(now)
        self.history_calls = len(calls)
        while not self._pending.empty():
            self._pending.get_nowait()
        for s in self.detector.active():
            self._pending.put_nowait(s)
        return len(calls)

    # -------------------------------------------------------------- acting

    async def _act(self, change: SurgeChange) -> None:
        for hook in self.on_change:
            hook(change)
        if isinstance(change, SurgeStarted):
            outage = await self._announce(change) if change.region else None
            await self._notify(_started_alert(change, outage), sms=True)
        else:
            outage = await self._end(change) if change.region else None
            await self._notify(_ended_alert(change, outage), sms=outage is not None)

    async def _announce(self, s: SurgeStarted) -> OutageRecord:
        region = s.region
        assert region is not None
        for o in await self.board.listing():
            if o.source is OutageSource.SURGE and o.covers(region):
                self.outage_of[s.key] = o.id
                return o  # already announced (e.g. found again after a restart)
        status = OutageStatus.ACTIVE if self.settings.auto_activate else OutageStatus.PENDING
        record = await self.board.add(draft(
            regions=[region], messages={k: v.format(region=region)
                                        for k, v in SURGE_MESSAGES.items()},
            starts_at=s.at, ends_at=None, created_by="surge-detector",
            source=OutageSource.SURGE, status=status,
            detail={"calls": s.calls, "expected": s.expected, "fault_share": s.fault_share,
                    "intents": [list(x) for x in s.intents], "learning": s.learning}))
        self.outage_of[s.key] = record.id
        log.warning("surge in %s: %d calls (expected %.1f); outage %d %s", region, s.calls,
                    s.expected, record.id, status.value)
        return record

    async def _end(self, e: SurgeEnded) -> OutageRecord | None:
        outage_id = self.outage_of.pop(e.key, None)
        if outage_id is None:
            return None
        current = await self.board.get(outage_id)
        if current.state_at(self._now()) not in ("pending", "active", "scheduled"):
            return None  # a supervisor already ended or dismissed it
        ended = await self.board.end(outage_id)
        if self._news is not None:
            await self._news(ended, "ended")
        return ended

    async def _notify(self, alert: dict[str, Any], *, sms: bool) -> None:
        if self.alerts is not None:
            self.alerts.publish(alert)
        if self._webhook is not None:
            try:
                await self._webhook(alert)
            except Exception:
                log.exception("surge webhook failed")
        if sms and self._messenger is not None:
            for to in self.settings.sms_to:
                receipt = await self._messenger.send_link(
                    to=to, channel="sms", body=alert["text"][:300],
                    contact_id=f"surge-{alert.get('outage') or 0}", language="en")
                if not receipt.ok:
                    log.warning("surge SMS not sent: %s", receipt.error_code)

    # -------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """What ``ivr surge status`` and ``GET /api/surge`` show."""
        d = self.detector
        now = d.now()
        return {
            "at": now.isoformat() if now else None,
            "learning": d.learning() if now else True,
            "learned_share": round(d.learned_share(), 3),
            "history_calls": self.history_calls,
            "events": d.events,
            "auto_activate": self.settings.auto_activate,
            "config": {"window_s": d.cfg.window_s, "ratio": d.cfg.ratio,
                       "min_calls": d.cfg.min_calls, "fault_share": d.cfg.fault_share,
                       "learning_threshold": d.cfg.learning_threshold,
                       "min_weeks": d.cfg.min_weeks},
            "surges": [{"key": s.key, "region": s.region, "since": s.at.isoformat(),
                        "calls": s.calls, "expected": s.expected,
                        "outage": self.outage_of.get(s.key)} for s in d.active()],
            "windows": [{"key": k.key, "calls": k.calls, "expected": k.expected,
                         "threshold": k.threshold, "surging": k.surging,
                         "intents": [list(x) for x in k.intents]} for k in d.status()],
        }


def _started_alert(s: SurgeStarted, outage: OutageRecord | None) -> dict[str, Any]:
    what = f"region {s.region}" if s.region else f"intent {s.key.split(':', 1)[1]}"
    text = (f"Kanaal surge: {s.calls} calls from {what} in the last minutes "
            f"(expected {s.expected:.1f}).")
    if outage is not None:
        text += (f" Outage {outage.id} is {outage.status.value}"
                 + (": confirm or dismiss it on the console." if outage.status
                    is OutageStatus.PENDING else "; callers hear it now."))
    return {"type": "surge", "state": "started", "key": s.key, "region": s.region,
            "at": s.at.isoformat(), "calls": s.calls, "expected": s.expected,
            "fault_share": s.fault_share, "intents": [list(x) for x in s.intents],
            "learning": s.learning, "outage": outage.id if outage else None,
            "status": outage.status.value if outage else None, "text": text}


def _ended_alert(e: SurgeEnded, outage: OutageRecord | None) -> dict[str, Any]:
    text = f"Kanaal: the surge in {e.region or e.key} is over (peak {e.peak_calls} calls)."
    if outage is not None:
        text += f" Outage {outage.id} ended."
    return {"type": "surge", "state": "ended", "key": e.key, "region": e.region,
            "at": e.at.isoformat(), "since": e.started_at.isoformat(),
            "peak_calls": e.peak_calls, "outage": outage.id if outage else None,
            "text": text}


class SurgeObserver:
    """A node-wide flow observer: one count per call, with its region and intent."""

    def __init__(self, service: SurgeService, region_of: Callable[[str], str | None],
                 clock: Clock) -> None:
        self._service = service
        self._region_of = region_of
        self._clock = clock
        self._regions: dict[str, str | None] = {}  # session -> customer's region
        self._counted: set[str] = set()

    async def on_event(self, event: FlowEvent, contact: ContactSnapshot) -> None:
        sid = contact.id
        if isinstance(event, Identified):
            self._regions[sid] = event.customer.region
        elif isinstance(event, Understood) and sid not in self._counted:
            self._counted.add(sid)
            await self._count(contact, event.intent)
        elif isinstance(event, Ended):
            if sid not in self._counted:
                await self._count(contact, contact.intent)
            self._counted.discard(sid)
            self._regions.pop(sid, None)

    async def _count(self, contact: ContactSnapshot, intent: str | None) -> None:
        region = self._regions.get(contact.id)
        if region is None and contact.caller.startswith("+"):
            region = self._region_of(contact.caller)
        await self._service.record_call(self._clock.now(), region, intent)


def http_webhook(url: str, *, timeout_s: float = 5.0) -> Webhook:
    """POST each alert as JSON to ``url`` (``IVR_SURGE_WEBHOOK_URL``)."""
    import httpx

    async def post(alert: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(url, json=alert)
            response.raise_for_status()
    return post


def history_rows(rows: list[tuple[datetime, str, str | None, str | None]],
                 region_of: Callable[[str], str | None]
                 ) -> list[tuple[datetime, str | None, str | None]]:
    """Contact-history rows (started_at, caller, customer's region, intent) as the
    detector's (time, region, intent), the region from the number when the CRM has none."""
    memo: dict[str, str | None] = {}
    out = []
    for at, caller, crm_region, intent in rows:
        region = crm_region
        if region is None and caller.startswith("+"):
            if caller not in memo:
                memo[caller] = region_of(caller)
            region = memo[caller]
        out.append((at if at.tzinfo else at.replace(tzinfo=UTC), region, intent))
    return out


def senders_of(sms_from: str, whatsapp_from: str) -> Mapping[str, str]:
    return {"sms": sms_from, "whatsapp": whatsapp_from.removeprefix("whatsapp:")}
