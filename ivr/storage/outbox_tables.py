"""Tables of the message outbox and the cross-channel contact history.

``outbox``: one row per outgoing SMS/WhatsApp, written *before* the send. Its
``state`` moves pending -> sending -> accepted | failed (pending again after a
transient error). ``twilio_status`` mirrors Twilio's status callbacks (queued,
sent, delivered, undelivered, failed).

``contact_events``: what was sent and received on text channels, keyed by the
contact it belongs to, so an agent sees the caller's replies next to the call.
No foreign key to ``contacts``: a message may be queued before the flow saved
the contact, and inbound replies may match no contact at all.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from ivr.storage.tables import metadata

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("contact_id", String(36), nullable=True),
    Column("channel", String(16), nullable=False),  # sms | whatsapp
    Column("to_addr", String(48), nullable=False),  # E.164, without the whatsapp: prefix
    Column("from_addr", String(48), nullable=False),
    Column("body", Text, nullable=False),
    Column("content_sid", String(64), nullable=True),
    Column("content_variables", Text, nullable=True),  # JSON text, as Twilio takes it
    Column("language", String(5), nullable=False),
    Column("state", String(16), nullable=False),  # pending | sending | accepted | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    # Set when an attempt may have reached Twilio without us hearing back (timeout,
    # crash while sending): the next attempt first looks for the message at Twilio.
    Column("uncertain", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("message_sid", String(64), nullable=True),
    Column("twilio_status", String(16), nullable=True),
    Column("error_code", String(16), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_outbox_state_next", "state", "next_attempt_at"),
    Index("ix_outbox_message_sid", "message_sid", unique=True),
    Index("ix_outbox_to_addr", "to_addr"),
    Index("ix_outbox_contact_id", "contact_id"),
)

contact_events = Table(
    "contact_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("contact_id", String(36), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("channel", String(16), nullable=False),  # sms | whatsapp
    Column("direction", String(8), nullable=False),  # out | in
    Column("address", String(48), nullable=False),  # the customer's number (E.164)
    Column("body", Text, nullable=False),
    Column("message_sid", String(64), nullable=True),
    Column("outbox_id", String(36), nullable=True),
    # message | link_opened | chat_started | self_service_done (migration 0005)
    Column("kind", String(24), nullable=False, server_default="message"),
    Index("ix_contact_events_contact_id", "contact_id"),
    Index("ix_contact_events_address", "address"),
)
