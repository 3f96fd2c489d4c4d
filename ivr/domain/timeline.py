"""One customer's history across channels, as one list (newest first).

Calls and other contacts, SMS/WhatsApp out (with Twilio's delivery status) and in,
links opened, chats started and self-service completed: each is a
:class:`TimelineEntry`; :func:`merge_timeline` interleaves the sources.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# What an entry records (contact_events.kind for the text/web ones).
CONTACT = "contact"  # a call, chat or web contact (the contacts table)
MESSAGE = "message"  # SMS/WhatsApp, out or in
LINK_OPENED = "link_opened"
CHAT_STARTED = "chat_started"
SELF_SERVICE_DONE = "self_service_done"
CSAT_SCORE = "csat_score"  # the after-call survey's score (voice)
CSAT_COMMENT = "csat_comment"  # its follow-up answer (words, or the recording's name)
EVENT_KINDS = (MESSAGE, LINK_OPENED, CHAT_STARTED, SELF_SERVICE_DONE, CSAT_SCORE,
               CSAT_COMMENT)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened between the customer and us."""

    at: datetime
    kind: str
    channel: str  # voice | text | sms | whatsapp | chat | web
    contact_id: str | None
    direction: str | None = None  # in | out, for messages
    summary: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, "channel": self.channel,
                "contact_id": self.contact_id, "direction": self.direction,
                "summary": self.summary, "detail": self.detail}


def contact_summary(intent: str | None, outcome: str | None, scenario: str | None) -> str:
    """A short line for a contact: ``invoice_question -> agent (S4)``."""
    text = intent or "not understood"
    if outcome:
        text += f" -> {outcome}"
    return f"{text} ({scenario})" if scenario else text


def merge_timeline(*sources: Iterable[TimelineEntry], limit: int = 50) -> list[TimelineEntry]:
    """Entries of every source, newest first, at most ``limit``."""
    return heapq.nlargest(limit, (e for src in sources for e in src), key=lambda e: e.at)
