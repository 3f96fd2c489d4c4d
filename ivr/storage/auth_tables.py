"""Tables of the web sign-in: users with roles, personal API tokens, server-side sessions.

Sessions live in the database (not in a signed cookie) so that several nodes behind
one address share them, and so that signing out, disabling a user or changing a
password ends every session at once. Secrets are never stored as given: passwords
as argon2 hashes, session ids and API tokens as SHA-256 hex digests (they are long
random strings, so a fast hash is enough; a slow one would cost every request).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
)

from ivr.storage.tables import metadata

ROLES = ("agent", "supervisor", "admin")

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The agent profile (agents.code) an agent user signs in and out of queues as.
    Column("agent_code", String(16), ForeignKey("agents.code", ondelete="SET NULL"),
           nullable=True),
    CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name="role"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked", Boolean, nullable=False, server_default="0"),
    Index("ix_api_tokens_user_id", "user_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie value
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_expires_at", "expires_at"),
)
