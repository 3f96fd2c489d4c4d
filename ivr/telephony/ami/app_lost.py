"""Contact records of calls the lease saved: closed from what Asterisk noted.

A node that dies (``kill -9``, a crash, the host gone) cannot write the outcome of its
calls: their contact records keep every step up to the death and no outcome. Its
callers are not lost: the call's lease runs out, Asterisk leaves ``Stasis()`` to the
dialplan's ``T`` extension and queues them for a human (``X-IVR-Fallback: app_lost``).
That ``T`` path is the one witness left, so it leaves a note in AstDB
(``kanaal/lost/<session> = <epoch> <queue>``; AstDB is on disk and outlives an
Asterisk restart) and raises a ``UserEvent(KanaalAppLost)``.

Any node on that Asterisk closes those records: a standby that takes over, the dead
node once restarted, or a second node that was up all along. It reads the notes on
every AMI login, whenever the event arrives, and every ``every_s`` (a note whose
record is not in the database yet, e.g. still in a dead node's spool, waits for a
later sweep). A record with no outcome is closed as handed to a human after a system
failure (``error_to_agent``, a hand-off step with reason ``app_lost``, ended when the
dialplan noted it); a record that has an outcome is left as it is; then the note is
deleted. A note whose session is a live call of this node (its lease ran out while it
was stalled, not dead) is skipped: that call's flow writes its own outcome.

Why not the AMI ``QueueCallerJoin`` of those callers alone: with a single node there is
nobody listening when it happens, and a node started later never sees it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ivr.domain.flow.handoff import saved_screen
from ivr.domain.model import ContactSnapshot, Outcome, Scenario, Step, StepRecord
from ivr.domain.ports import Clock, ContactLog, PortError, ScreenPop
from ivr.telephony.ami.client import AmiActionError, AmiClient, AmiSubscription
from ivr.telephony.ami.events import AmiEvent, UnknownEvent

log = logging.getLogger(__name__)

FAMILY = "kanaal/lost"  # AstDB family the dialplan's T extensions write (extensions.conf)
EVENT = "KanaalAppLost"  # their UserEvent
REASON = "app_lost"
_SESSION = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # session ids are uuid4 hex here


@dataclass(frozen=True, slots=True)
class LostNote:
    """One AstDB note: the session whose node stopped serving it, when, and its queue."""

    session_id: str
    at: datetime | None
    queue: str


def parse_note(key: str, value: str) -> LostNote | None:
    """A note from DBGetTree's ``Key`` (``/kanaal/lost/<session>`` or the bare session)
    and ``Val`` (``<epoch> <queue>``); None for anything else."""
    session = key.strip().rsplit("/", 1)[-1]
    if not _SESSION.fullmatch(session):
        return None
    parts = value.split()
    at = None
    if parts and parts[0].isdigit():
        at = datetime.fromtimestamp(int(parts[0]), UTC)
    return LostNote(session, at, parts[1] if len(parts) > 1 else "")


def is_lost_event(event: AmiEvent) -> bool:
    return event.name == "UserEvent" and event.fields.get("UserEvent") == EVENT


def closed(contact: ContactSnapshot, note: LostNote, now: datetime) -> ContactSnapshot:
    """The record as a hand-off after a system failure leaves it (see ari.adopt)."""
    at = note.at or now
    detail = {"reason": REASON, "skill": contact.skill, "queue": note.queue or None}
    return replace(contact, outcome=Outcome.ERROR_TO_AGENT, ended_at=at, dropped_at=None,
                   steps=(*contact.steps, StepRecord(Step.HANDOFF, at, detail)))


class AppLostCloser:
    """Closes the contact records of calls Asterisk noted as lost by their node."""

    def __init__(self, ami: AmiClient, contacts: ContactLog, *, clock: Clock,
                 screenpop: ScreenPop | None = None,
                 is_live: Callable[[str], bool] = lambda _session: False,
                 every_s: float = 60.0, keep_unknown_s: float = 86400.0) -> None:
        self._ami = ami
        self._contacts = contacts
        self._screenpop = screenpop
        self._clock = clock
        self._is_live = is_live
        self._every_s = every_s
        self._keep_unknown_s = keep_unknown_s
        self.closed: list[str] = []  # session ids closed here (logs and tests)

    async def run(self) -> None:
        """Sweep on every AMI login, on each KanaalAppLost event and every ``every_s``."""
        with self._ami.subscribe(UnknownEvent, maxsize=256) as events:
            while True:
                await self._ami.connected.wait()
                connects = self._ami.connects
                try:
                    await self.sweep()
                except PortError as exc:  # AMI or the database away: the next sweep
                    log.warning("closing app-lost contacts postponed: %s", exc)
                await self._next_reason(events, connects)

    async def _next_reason(self, events: AmiSubscription, connects: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._every_s
        while (left := deadline - loop.time()) > 0:
            event = await events.get(within_s=min(1.0, left))
            if event is not None and is_lost_event(event):
                return
            if self._ami.connects != connects:  # a new login: events may have been missed
                return

    async def notes(self) -> list[LostNote]:
        """Every note in AstDB (an empty family is an error to some Asterisk versions)."""
        try:
            result = await self._ami.list_action("DBGetTree", {"Family": FAMILY})
        except AmiActionError as exc:
            if "not found" in exc.response.message.lower():
                return []
            raise
        found = (parse_note(e.fields.get("Key", ""), e.fields.get("Val", ""))
                 for e in result.events if e.name == "DBGetTreeResponse")
        return [n for n in found if n is not None]

    async def sweep(self) -> list[str]:
        """Close what the notes say; returns the sessions closed by this sweep."""
        done = []
        for note in await self.notes():
            if self._is_live(note.session_id):
                continue
            contact = await self._contacts.get(note.session_id)
            if contact is None:
                if not self._stale(note):
                    continue  # not written yet (a spool not replayed): a later sweep
                log.error("no contact %s for an app-lost note; note dropped", note.session_id)
            elif contact.outcome is None:
                await self._close(contact, note)
                done.append(note.session_id)
                log.warning("contact %s closed: its node stopped serving it (%s)",
                            note.session_id, REASON)
            await self._ami.action("DBDel", {"Family": FAMILY, "Key": note.session_id},
                                   check=False)
        self.closed.extend(done)
        return done

    async def _close(self, contact: ContactSnapshot, note: LostNote) -> None:
        """Save the closed record, then pop it on the desktops: the caller is on their
        way to an agent, who should see the question and transcript, not a bare call.
        The pop reaches every node's desktops (the hub is broadcast over PostgreSQL)."""
        done = closed(contact, note, self._clock.now())
        await self._contacts.save(done)
        if self._screenpop is not None:
            await self._screenpop.publish(contact.id, saved_screen(
                done, reason=REASON, scenario=contact.scenario or Scenario.AGENT,
                skill=contact.skill, priority=0))

    def _stale(self, note: LostNote) -> bool:
        if note.at is None:
            return True
        return (self._clock.now() - note.at).total_seconds() > self._keep_unknown_s
