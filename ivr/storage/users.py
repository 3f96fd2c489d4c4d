"""User store of the web sign-in: users, personal API tokens and server-side sessions.

Synchronous methods (the CLI calls them directly); the web layer runs them in worker
threads through :meth:`SqlUserStore.call`, like every other repository. Hashing of
passwords is the caller's business (``ivr.web.security.Passwords``): this module only
stores what it is given, plus SHA-256 digests of the random session ids and tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ivr.storage.auth_tables import ROLES, api_tokens, sessions, users
from ivr.storage.repositories import _SqlAdapter
from ivr.storage.tables import agents

P = ParamSpec("P")
T = TypeVar("T")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
# A token's last_used_at is written at most this often: one write per request would
# turn every API read into a write.
TOUCH_EVERY = timedelta(seconds=60)


TOKEN_PREFIX = "kn_"


def sha256_hex(value: str) -> str:
    """Digest under which session ids and API tokens are stored (never the value itself)."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret() -> str:
    """A random session id, CSRF token or ticket (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    """A personal API token: a recognisable prefix plus 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class UserError(ValueError):
    """A user operation that cannot be done (exists already, unknown agent, bad name)."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as the web layer sees it (never with the password hash)."""

    id: int
    username: str
    role: str
    active: bool
    agent_code: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A live web session: its user, CSRF token and expiry."""

    id_hash: str
    user: UserRecord
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A personal API token's metadata (the token itself is shown once, never stored)."""

    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _user(row: Any) -> UserRecord:
    return UserRecord(id=row.id, username=row.username, role=row.role, active=bool(row.active),
                      agent_code=row.agent_code, created_at=_utc(row.created_at) or row.created_at)


_USER_COLS = (users.c.id, users.c.username, users.c.role, users.c.active, users.c.agent_code,
              users.c.created_at)


def normalise_username(username: str) -> str:
    """Usernames are compared in lower case; raises :class:`UserError` for a bad one."""
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise UserError(f"bad username {username!r}: 1-64 of a-z 0-9 . _ @ -, "
                        "starting with a letter or digit")
    return name


class SqlUserStore(_SqlAdapter):
    """Users, API tokens and sessions over the ``users``/``api_tokens``/``sessions`` tables."""

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one of the synchronous methods in a worker thread (errors become PortError)."""
        return await self._run(lambda: fn(*args, **kwargs))

    # --- users ------------------------------------------------------------------------

    def add_user(self, username: str, password_hash: str, role: str,
                 agent_code: str | None = None) -> UserRecord:
        name = normalise_username(username)
        if role not in ROLES:
            raise UserError(f"bad role {role!r}: one of {', '.join(ROLES)}")
        with self._engine.begin() as conn:
            if agent_code is not None and conn.execute(
                    select(agents.c.id).where(agents.c.code == agent_code)).first() is None:
                raise UserError(f"no agent with code {agent_code!r} (see the agents table)")
            try:
                conn.execute(users.insert().values(
                    username=name, password_hash=password_hash, role=role, active=True,
                    created_at=datetime.now(UTC), agent_code=agent_code))
            except IntegrityError as exc:
                raise UserError(f"user {name!r} exists already") from exc
            row = conn.execute(select(*_USER_COLS).where(users.c.username == name)).one()
        return _user(row)

    def get_user(self, username: str) -> UserRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(*_USER_COLS).where(
                users.c.username == username.strip().lower())).first()
        return None if row is None else _user(row)

    def list_users(self) -> list[UserRecord]:
        with self._engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(*_USER_COLS).order_by(users.c.username))]

    def credentials(self, username: str) -> tuple[UserRecord, str] | None:
        """The user and stored password hash, for sign-in; None if unknown."""
        with self._engine.connect() as conn:
            row = conn.execute(select(*_USER_COLS, users.c.password_hash).where(
                users.c.username == username.strip().lower())).first()
        return None if row is None else (_user(row), row.password_hash)

    def set_password(self, username: str, password_hash: str) -> bool:
        """Change the hash; every session of the user ends (a stolen cookie dies with it)."""
        with self._engine.begin() as conn:
            user_id = conn.execute(select(users.c.id).where(
                users.c.username == username.strip().lower())).scalar()
            if user_id is None:
                return False
            conn.execute(update(users).where(users.c.id == user_id)
                         .values(password_hash=password_hash))
            conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        return True

    def rehash(self, user_id: int, password_hash: str) -> None:
        """Store a hash made with newer argon2 parameters (sessions stay)."""
        with self._engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id)
                         .values(password_hash=password_hash))

    def set_active(self, username: str, active: bool) -> bool:
        """Enable or disable a user; disabling ends their sessions (tokens stop working)."""
        with self._engine.begin() as conn:
            user_id = conn.execute(select(users.c.id).where(
                users.c.username == username.strip().lower())).scalar()
            if user_id is None:
                return False
            conn.execute(update(users).where(users.c.id == user_id).values(active=active))
            if not active:
                conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        return True

    # --- sessions ---------------------------------------------------------------------

    def create_session(self, user_id: int, ttl: timedelta) -> tuple[str, str]:
        """A new session; returns (cookie value, CSRF token). Only the value's hash is kept."""
        value, csrf = new_secret(), new_secret()
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(sessions.insert().values(id=sha256_hex(value), user_id=user_id,
                                                  csrf=csrf, created_at=now,
                                                  expires_at=now + ttl))
        return value, csrf

    def session(self, value: str) -> SessionRecord | None:
        """The live session behind a cookie value (expired ones and disabled users: None)."""
        now = datetime.now(UTC)
        with self._engine.connect() as conn:
            row = conn.execute(
                select(*_USER_COLS, sessions.c.id.label("sid"), sessions.c.csrf,
                       sessions.c.expires_at)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.id == sha256_hex(value))).first()
        if row is None or not row.active:
            return None
        expires = _utc(row.expires_at)
        if expires is None or expires <= now:
            return None
        return SessionRecord(id_hash=row.sid, user=_user(row), csrf=row.csrf,
                             expires_at=expires)

    def delete_session(self, value: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id == sha256_hex(value)))

    def purge_expired(self) -> int:
        """Delete expired sessions; returns how many."""
        with self._engine.begin() as conn:
            result = conn.execute(delete(sessions).where(
                sessions.c.expires_at <= datetime.now(UTC)))
        return int(result.rowcount or 0)

    # --- API tokens -------------------------------------------------------------------

    def create_token(self, username: str, name: str) -> str:
        """A new personal API token for ``username``; the plain token is returned once."""
        if not name.strip() or len(name) > 64:
            raise UserError("token name must be 1-64 characters")
        user = self.get_user(username)
        if user is None:
            raise UserError(f"no user {username!r}")
        token = new_api_token()
        with self._engine.begin() as conn:
            conn.execute(api_tokens.insert().values(
                user_id=user.id, name=name.strip(), token_hash=sha256_hex(token),
                created_at=datetime.now(UTC), revoked=False))
        return token

    def revoke_token(self, username: str, name: str) -> int:
        """Revoke the user's tokens called ``name``; returns how many."""
        user = self.get_user(username)
        if user is None:
            return 0
        with self._engine.begin() as conn:
            result = conn.execute(update(api_tokens).where(
                api_tokens.c.user_id == user.id, api_tokens.c.name == name.strip(),
                api_tokens.c.revoked.is_(False)).values(revoked=True))
        return int(result.rowcount or 0)

    def token_user(self, token: str) -> UserRecord | None:
        """The active user behind a (not revoked) API token; records when it was used."""
        digest = sha256_hex(token)
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            row = conn.execute(
                select(*_USER_COLS, api_tokens.c.id.label("tid"), api_tokens.c.revoked,
                       api_tokens.c.last_used_at)
                .join(users, users.c.id == api_tokens.c.user_id)
                .where(api_tokens.c.token_hash == digest)).first()
            if row is None or row.revoked or not row.active:
                return None
            last = _utc(row.last_used_at)
            if last is None or now - last >= TOUCH_EVERY:
                conn.execute(update(api_tokens).where(api_tokens.c.id == row.tid)
                             .values(last_used_at=now))
        return _user(row)

    def list_tokens(self, username: str) -> list[TokenRecord]:
        user = self.get_user(username)
        if user is None:
            return []
        with self._engine.connect() as conn:
            rows = conn.execute(select(api_tokens.c.name, api_tokens.c.created_at,
                                       api_tokens.c.last_used_at, api_tokens.c.revoked)
                                .where(api_tokens.c.user_id == user.id)
                                .order_by(api_tokens.c.id)).all()
        return [TokenRecord(r.name, _utc(r.created_at) or r.created_at, _utc(r.last_used_at),
                            bool(r.revoked)) for r in rows]

    def token_counts(self) -> dict[int, int]:
        """Active (not revoked) tokens per user id."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(api_tokens.c.user_id, func.count())
                                .where(api_tokens.c.revoked.is_(False))
                                .group_by(api_tokens.c.user_id)).all()
        return {int(r[0]): int(r[1]) for r in rows}
