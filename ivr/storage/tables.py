"""SQLAlchemy Core tables: the CRM/knowledge data and the contact history.

Core tables rather than ORM classes: the repositories map rows straight into the
domain's frozen dataclasses, and the hot path (CLI -> customer) stays one indexed
primary-key lookup.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
)

# Naming convention so Alembic batch mode (SQLite) can find constraints by name.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_no", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("language", String(5), nullable=False, server_default="en"),
    Column("region", String(64), nullable=False, server_default=""),
    Column("postcode", String(16), nullable=False, server_default=""),
    Column("tier", String(16), nullable=False, server_default="standard"),
    Column("pin_hash", String(200), nullable=True),
    Column("preferred_channel", String(16), nullable=False, server_default="sms"),
)

# Wrong PINs per customer, across calls and nodes: a caller who hangs up after three
# tries and calls again does not get three fresh ones. Rows older than the lock window
# no longer count (and are pruned on the next failure); a correct PIN clears them.
pin_failures = Table(
    "pin_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_pin_failures_customer_at", "customer_id", "at"),
)

# One row per number: the CLI lookup is a primary-key probe on the E.164 string.
customer_numbers = Table(
    "customer_numbers",
    metadata,
    Column("number", String(20), primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False, server_default="mobile"),
    Index("ix_customer_numbers_customer_id", "customer_id"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_no", String(32), nullable=False, unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(32), nullable=False),
    Column("eta", Date, nullable=True),
    Column("carrier", String(64), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Index("ix_orders_customer_id", "customer_id"),
)

outages = Table(
    "outages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("region", String(64), nullable=False),
    Column("messages", JSON, nullable=False),  # {"en": "...", "nl": "..."}
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=True),
    # Managed outages (migration 0006): every region the announcement covers (``region``
    # keeps the first, for older readers), who posted it, and its life cycle.
    Column("regions", JSON, nullable=False),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("source", String(16), nullable=False, server_default="supervisor"),
    Column("created_by", String(64), nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Column("detail", JSON, nullable=True),  # a surge's figures (calls, baseline, intents)
    Index("ix_outages_region", "region"),
    Index("ix_outages_status", "status"),
)

# Callers who asked for an SMS when an outage changes or ends (migration 0005).
outage_subscribers = Table(
    "outage_subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("outage_id", Integer, ForeignKey("outages.id", ondelete="CASCADE"), nullable=False),
    Column("number", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("language", String(5), nullable=False),
    Column("contact_id", String(36), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("outage_id", "number", name="uq_outage_subscribers_outage_number"),
)

knowledge_answers = Table(
    "knowledge_answers",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("language", String(5), primary_key=True),
    Column("template", Text, nullable=False),
)

# weekday: 0 = Monday. Several rows per day allow split shifts.
opening_hours = Table(
    "opening_hours",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(16), nullable=False),  # voice | chat
    Column("weekday", Integer, nullable=False),
    Column("opens", Time, nullable=False),
    Column("closes", Time, nullable=False),
    Index("ix_opening_hours_channel", "channel"),
)

holidays = Table(
    "holidays",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", Date, nullable=False),
    Column("channel", String(16), nullable=True),  # None = every channel
    Column("name", String(100), nullable=False),
    Column("opens", Time, nullable=True),  # reduced hours; None = closed all day
    Column("closes", Time, nullable=True),
    Index("ix_holidays_day", "day"),
)

skills = Table(
    "skills",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("description", String(200), nullable=False, server_default=""),
    Column("queue", String(64), nullable=False),
    Column("overflow_skill", String(32), nullable=True),  # substitute group when nobody is ready
)

agent_groups = Table(
    "agent_groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("skills", JSON, nullable=False),  # ["billing", "general"]
    Column("region", String(64), nullable=True),
    Column("agents", Integer, nullable=False, server_default="0"),
    Column("ready", Integer, nullable=False, server_default="0"),
)

chat_channels = Table(
    "chat_channels",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("capacity", Integer, nullable=False, server_default="0"),
    Column("active_sessions", Integer, nullable=False, server_default="0"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("caller", String(32), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True),
    Column("language", String(5), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("question", Text, nullable=True),
    Column("intent", String(64), nullable=True),
    Column("confidence", Float, nullable=True),
    Column("scenario", String(4), nullable=True),
    Column("skill", String(32), nullable=True),
    Column("action", String(64), nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("dropped_at", String(32), nullable=True),
    Column("transcript", JSON, nullable=False),
    Column("steps", JSON, nullable=False),
    # The agent's wrap-up after the conversation (migration 0004, set from /agent).
    Column("wrapup_code", String(32), nullable=True),
    Column("wrapup_note", Text, nullable=True),
    # Who answered (AgentConnect): repeat callers are offered their previous agent.
    Column("agent_id", Integer, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("agent_interface", String(64), nullable=True),
    # Agent events and the survey (migration 0005): seconds queued before AgentConnect,
    # talk time from AgentComplete, CSAT 1..5 and the follow-up answer.
    Column("queue_wait_s", Integer, nullable=True),
    Column("talk_s", Integer, nullable=True),
    Column("csat", Integer, nullable=True),
    Column("csat_comment", Text, nullable=True),
    Index("ix_contacts_customer_id", "customer_id"),
    Index("ix_contacts_caller", "caller"),
    Index("ix_contacts_started_at", "started_at"),
    Index("ix_contacts_customer_intent", "customer_id", "intent", "started_at"),
    Index("ix_contacts_caller_started", "caller", "started_at"),
)

# --- agents (migration 0003) -----------------------------------------------------------
# Profiles and login state for dynamic app_queue membership (ivr.contact_centre).
agents = Table(
    "agents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(16), nullable=False, unique=True),  # what the agent types: "1001"
    Column("name", String(200), nullable=False),
    Column("interface", String(64), nullable=False, unique=True),  # "PJSIP/agent1"
    Column("site", String(64), nullable=False, server_default=""),
    Column("region", String(64), nullable=False, server_default=""),
    Column("centre", String(64), nullable=False, server_default=""),
    Column("centre_kind", String(8), nullable=False, server_default="own"),
    Column("languages", String(64), nullable=False, server_default=""),  # csv: "nl,en"
    Column("logged_in", Boolean, nullable=False, server_default="0"),
    Column("paused", Boolean, nullable=False, server_default="0"),
    Column("pause_reason", String(64), nullable=True),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("centre_kind IN ('own', 'partner')", name="centre_kind"),
)

agent_skills = Table(
    "agent_skills",
    metadata,
    Column("agent_id", Integer, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("skill", String(32), primary_key=True),  # no FK: a skill may lack a queue yet
    Column("proficiency", Integer, nullable=False),
    CheckConstraint("proficiency >= 1 AND proficiency <= 5", name="proficiency_range"),
)

# Own/partner share of a skill's calls, in percent.
load_splits = Table(
    "load_splits",
    metadata,
    Column("skill", String(32), primary_key=True),
    Column("own_pct", Integer, nullable=False),
    Column("partner_pct", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("own_pct >= 0 AND partner_pct >= 0 AND own_pct + partner_pct = 100",
                    name="sums_to_100"),
)

# --- reports (migration 0005) ----------------------------------------------------------
# Tallies of closed UTC days and hours (ivr.domain.reports): a 30-day report reads
# ~30 small day tallies and today's hours instead of scanning every contact.
# report_buckets marks a bucket as rolled up; a late change to one of its contacts
# (CSAT, talk time) deletes the mark and the tally.
report_rollups = Table(
    "report_rollups",
    metadata,
    Column("start", DateTime(timezone=True), primary_key=True),
    Column("hours", Integer, primary_key=True),  # 24 = a day, 1 = an hour
    Column("kind", String(24), primary_key=True),
    Column("key", String(120), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("total", Float, nullable=False),
)

report_buckets = Table(
    "report_buckets",
    metadata,
    Column("start", DateTime(timezone=True), primary_key=True),
    Column("hours", Integer, primary_key=True),
    Column("contacts", Integer, nullable=False),
    Column("sealed_at", DateTime(timezone=True), nullable=False),
)

# --- callbacks (migration 0007) ------------------------------------------------------
# A caller booked to be called back in a slot, with the whole contact context. The
# dialer claims due rows with a lease (lease_owner/lease_until) and writes each
# attempt (attempts JSON, attempt_count) before it dials.
callbacks = Table(
    "callbacks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("contact_id", String(36), nullable=False),
    Column("number", String(32), nullable=False),
    Column("language", String(5), nullable=False),
    Column("customer_id", Integer, nullable=True),
    Column("customer_name", String(128), nullable=False, server_default=""),
    Column("question", Text, nullable=False, server_default=""),
    Column("intent", String(64), nullable=True),
    Column("transcript", JSON, nullable=False),
    Column("skill", String(32), nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("reason", String(128), nullable=False, server_default=""),
    Column("slot_start", DateTime(timezone=True), nullable=False),
    Column("slot_end", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("attempt_count", Integer, nullable=False, server_default="0"),
    Column("attempts", JSON, nullable=False),
    Column("outcome", String(32), nullable=True),
    Column("cancel_count", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_callbacks_due", "status", "next_attempt_at"),
    Index("ix_callbacks_contact_id", "contact_id"),
    Index("ix_callbacks_skill_slot", "skill", "slot_start"),
)

# Places booked per (skill, slot): a conditional UPDATE (booked < capacity) makes a
# booking atomic on SQLite and PostgreSQL alike, so a slot is never overbooked.
callback_slots = Table(
    "callback_slots",
    metadata,
    Column("skill", String(32), primary_key=True),
    Column("slot_start", DateTime(timezone=True), primary_key=True),
    Column("booked", Integer, nullable=False, server_default="0"),
    CheckConstraint("booked >= 0", name="booked_not_negative"),
)
