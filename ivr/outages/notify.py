"""News of an outage for the callers who asked for it (SMS/WhatsApp via the outbox).

Messages go into the durable outbox table (``OutboxStore.insert``), not straight to
Twilio: the CLI can end an outage while no node runs, and a node's outbox worker
sends them (with its retries) once one does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from ivr.domain.model import as_language
from ivr.domain.outages import OutageRecord
from ivr.domain.prompts import render
from ivr.notify.outbox import OutboxStore
from ivr.storage.outages import SqlOutageBoard

log = logging.getLogger(__name__)


def subscriber_text(outage: OutageRecord, kind: str, language: str) -> str:
    """The SMS body for ``kind`` ("ended" or "update") in the subscriber's language."""
    lang = as_language(language)
    if kind == "ended":
        return render("sms_outage_ended", lang, region=", ".join(outage.regions)).text
    message = outage.messages.get(lang) or next(iter(outage.messages.values()), "")
    return render("sms_outage_update", lang, message=message).text


def notify_subscribers_sync(board: SqlOutageBoard, store: OutboxStore,
                            senders: Mapping[str, str], outage: OutageRecord,
                            kind: str) -> int:
    """Queue one message per subscriber; returns how many were queued."""
    queued = 0
    for sub in board.subscribers_sync(outage.id):
        sender = senders.get(sub.channel)
        if not sender:
            log.warning("no %s sender: outage %d news not sent", sub.channel, outage.id)
            continue
        store.insert(contact_id=sub.contact_id, channel=sub.channel, to=sub.number,
                     from_=sender, body=subscriber_text(outage, kind, sub.language),
                     language=sub.language)
        queued += 1
    return queued


async def notify_subscribers(board: SqlOutageBoard, store: OutboxStore,
                             senders: Mapping[str, str], outage: OutageRecord,
                             kind: str) -> int:
    return await asyncio.to_thread(notify_subscribers_sync, board, store, senders, outage, kind)
