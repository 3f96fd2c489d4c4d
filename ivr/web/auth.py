"""Who is calling: sessions, API tokens, CSRF and roles for every web route.

A request is authenticated by, in this order:

1. ``Authorization: Bearer <token>``: a personal API token (``ivr users token``), acting
   with its user's role; or ``IVR_API_TOKEN``, an admin-scoped integration token that is
   honoured with its well-known default only while the server listens on loopback.
2. The session cookie set by ``POST /login`` (server-side session in the database).

Cookie-authenticated unsafe requests (POST...) must carry the session's CSRF token, in
the ``csrf`` form field or the ``X-CSRF-Token`` header; bearer requests need none (a
browser never adds a bearer header by itself). WebSockets accept the session cookie
from the same origin, or a single-use ticket from ``POST /api/ws-ticket``.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.websockets import WebSocket

from ivr.config import Settings
from ivr.storage.users import SessionRecord, SqlUserStore, UserRecord
from ivr.web.forms import read_form
from ivr.web.security import (
    LoginRateLimiter,
    Passwords,
    TicketBook,
    legacy_token_usable,
    role_allows,
)

Via = Literal["session", "token", "legacy", "ticket"]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    username: str
    role: str
    via: Via
    user_id: int | None = None
    agent_code: str | None = None
    csrf: str | None = None  # only for cookie sessions: the token forms must echo


class AuthFailure(Exception):
    """Authentication or authorisation failed; ``ivr.web.auth_routes`` maps it to HTTP."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _principal(user: UserRecord, via: Via, csrf: str | None = None) -> Principal:
    return Principal(username=user.username, role=user.role, via=via, user_id=user.id,
                     agent_code=user.agent_code, csrf=csrf)


def bearer(conn: HTTPConnection) -> str | None:
    """The bearer token of the ``Authorization`` header (never from the URL)."""
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class Auth:
    """Resolves principals and enforces roles; one per web app."""

    def __init__(self, store: SqlUserStore, settings: Settings, *,
                 passwords: Passwords | None = None, limiter: LoginRateLimiter | None = None,
                 tickets: TicketBook | None = None,
                 session_ttl: timedelta = timedelta(hours=12)) -> None:
        self.store = store
        self.passwords = passwords or Passwords()
        self.limiter = limiter or LoginRateLimiter()
        self.tickets = tickets or TicketBook()
        self.session_ttl = session_ttl
        self.secure_cookies = settings.public_url.lower().startswith("https://")
        # The __Host- prefix makes browsers refuse the cookie unless it is Secure, for
        # path /, without Domain: no sibling subdomain can plant or overwrite it.
        self.cookie_name = "__Host-kanaal" if self.secure_cookies else "kanaal_session"
        self._legacy = settings.api_token if legacy_token_usable(settings) else ""

    # --- resolving ------------------------------------------------------------------

    async def principal(self, conn: HTTPConnection) -> Principal | None:
        """The caller of ``conn`` by bearer token or session cookie; None if anonymous."""
        token = bearer(conn)
        if token is not None:
            if self._legacy and hmac.compare_digest(token.encode(), self._legacy.encode()):
                return Principal(username="IVR_API_TOKEN", role="admin", via="legacy")
            user = await self.store.call(self.store.token_user, token)
            return None if user is None else _principal(user, "token")
        record = await self.session(conn)
        return None if record is None else _principal(record.user, "session", record.csrf)

    async def session(self, conn: HTTPConnection) -> SessionRecord | None:
        value = conn.cookies.get(self.cookie_name)
        if not value or len(value) > 128:
            return None
        return await self.store.call(self.store.session, value)

    async def require(self, request: Request, minimum: str) -> Principal:
        """The caller, if signed in with at least role ``minimum`` (and CSRF on unsafe calls).

        Raises :class:`AuthFailure` (401 anonymous, 403 wrong role or missing CSRF token).
        """
        who = await self.principal(request)
        if who is None:
            raise AuthFailure(401, "unauthorized", "sign in or send a bearer token")
        if not role_allows(who.role, minimum):
            raise AuthFailure(403, "forbidden", f"needs the {minimum} role or higher")
        if who.via == "session" and request.method not in SAFE_METHODS:
            await self.check_csrf(request, who)
        return who

    async def require_for_agent(self, request: Request, code: str) -> Principal:
        """Like :meth:`require` for an agent's queue state (``/api/agents/{code}/...``):
        agents may act only as themselves, supervisors and admins for anyone."""
        who = await self.require(request, "agent")
        if who.role == "agent" and who.agent_code != code:
            raise AuthFailure(403, "forbidden", "agents may change only their own state")
        return who

    async def check_csrf(self, request: Request, who: Principal) -> None:
        presented = request.headers.get(CSRF_HEADER)
        if presented is None and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            presented = (await read_form(request)).get("csrf")
        if not presented or who.csrf is None or not hmac.compare_digest(
                presented.encode(), who.csrf.encode()):
            raise AuthFailure(403, "csrf", "missing or wrong CSRF token")

    async def websocket(self, ws: WebSocket, minimum: str) -> Principal | None:
        """The caller of a WebSocket: a single-use ``?ticket=`` or a same-origin cookie."""
        ticket = ws.query_params.get("ticket")
        who: Principal | None
        if ticket:
            redeemed = self.tickets.redeem(ticket)
            who = redeemed if isinstance(redeemed, Principal) else None
        else:
            # A cross-site page could open a socket that carries the cookie (browsers
            # send cookies on WebSocket handshakes): only our own pages may use it.
            if not same_origin(ws):
                return None
            record = await self.session(ws)
            who = None if record is None else _principal(record.user, "session")
        if who is None or not role_allows(who.role, minimum):
            return None
        return who

    def issue_ticket(self, who: Principal) -> str:
        return self.tickets.issue(replace(who, via="ticket", csrf=None))

    # --- sign-in ----------------------------------------------------------------------

    async def sign_in(self, username: str, password: str, client: str
                      ) -> tuple[UserRecord, str] | int:
        """Check credentials; (user, cookie value) on success, else seconds to wait (0 = wrong).

        The rate limit is checked first, so a locked-out pair learns nothing from a
        correct password either.
        """
        wait = self.limiter.retry_after(username, client)
        if wait:
            return wait
        found = await self.store.call(self.store.credentials, username)
        stored = found[1] if found is not None else None
        ok = await asyncio.to_thread(self.passwords.verify, stored, password)
        if found is None or not ok or not found[0].active:
            self.limiter.failed(username, client)
            return 0
        user = found[0]
        self.limiter.succeeded(username, client)
        if stored is not None and self.passwords.needs_rehash(stored):
            await self.store.call(self.store.rehash, user.id,
                                  await asyncio.to_thread(self.passwords.hash, password))
        value, _ = await self.store.call(self.store.create_session, user.id, self.session_ttl)
        # Expired sessions are swept here rather than by a timer: sign-ins are rare and
        # every node does them, so the table stays small without a background task.
        await self.store.call(self.store.purge_expired)
        return user, value


def same_origin(conn: HTTPConnection) -> bool:
    """The ``Origin`` header names the host the request was sent to."""
    origin = conn.headers.get("origin")
    host = conn.headers.get("host")
    if not origin or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
