"""Security building blocks of the web layer: secrets checks, hashing, rate limits, tickets.

Nothing here touches the database or FastAPI routing; ``ivr.web.auth`` composes these
with the user store into sign-in, sessions and role checks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ivr.config import Settings
from ivr.storage.users import new_secret, sha256_hex

# Values shipped as defaults: anyone who read the README knows them.
DEFAULT_API_TOKENS = frozenset({"", "change-me"})
DEFAULT_LINK_SECRETS = frozenset({"", "change-me-link-secret"})
DEFAULT_ARI_PASSWORDS = frozenset({"", "ivr-secret"})  # dialplan/ari.conf, the rig
DEFAULT_AMI_SECRETS = frozenset({"", "kanaal"})  # dialplan/manager.conf, the rig
MIN_SECRET_LENGTH = 16
ROLE_RANK = {"agent": 1, "supervisor": 2, "admin": 3}


class InsecureServingError(RuntimeError):
    """The node would listen beyond loopback with a default, empty or short secret."""


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, ``localhost``).

    ``0.0.0.0``, ``::`` and an empty host listen on every interface: not loopback.
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve anywhere


def _url_host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def exposed_addresses(settings: Settings) -> list[str]:
    """The settings that make this node, or its Asterisk credentials, leave the machine."""
    out = []
    if not is_loopback_host(settings.web_host):
        out.append(f"IVR_WEB_HOST={settings.web_host!r}")
    if not is_loopback_host(settings.agi_host):
        out.append(f"IVR_AGI_HOST={settings.agi_host!r}")
    if not is_loopback_host(_url_host(settings.ari_url)):
        out.append(f"IVR_ARI_URL host {_url_host(settings.ari_url)!r}")
    if not is_loopback_host(settings.ami_host):
        out.append(f"IVR_AMI_HOST={settings.ami_host!r}")
    return out


def _secret_problem(name: str, value: str, defaults: frozenset[str]) -> str | None:
    if value in defaults:
        return f"{name} is empty or the shipped default"
    if len(value) < MIN_SECRET_LENGTH:
        return f"{name} is shorter than {MIN_SECRET_LENGTH} characters"
    return None


def check_serving_secrets(settings: Settings) -> None:
    """Refuse to serve beyond loopback with a guessable secret.

    On loopback the defaults stay usable (a developer's machine, the demo, the rig).
    Once the web server or the FastAGI server listens on another address, or ARI/AMI
    are reached over the network, every secret must be real: ``IVR_API_TOKEN``,
    ``IVR_LINK_SECRET``, ``IVR_ARI_PASSWORD`` and ``IVR_AMI_SECRET`` (the shipped
    ARI/AMI defaults are in the README, so an Asterisk that still has them lets anyone
    who reaches it take over calls). Raises :class:`InsecureServingError` naming every
    problem.
    """
    exposed = exposed_addresses(settings)
    if not exposed:
        return
    checks = [
        ("IVR_API_TOKEN", settings.api_token, DEFAULT_API_TOKENS),
        ("IVR_LINK_SECRET", settings.link_secret, DEFAULT_LINK_SECRETS),
        ("IVR_ARI_PASSWORD", settings.ari_password, DEFAULT_ARI_PASSWORDS),
        ("IVR_AMI_SECRET", settings.ami_secret, DEFAULT_AMI_SECRETS),
    ]
    problems = [p for p in (_secret_problem(*c) for c in checks) if p]
    if problems:
        raise InsecureServingError(
            f"refusing to serve: reachable from other machines ({', '.join(exposed)}) "
            "while " + "; ".join(problems) + ". Set long random values, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` (the ARI/AMI "
            "ones in Asterisk's ari.conf/manager.conf too), or keep everything on "
            "127.0.0.1.")


def legacy_token_usable(settings: Settings) -> bool:
    """Whether ``IVR_API_TOKEN`` may be used as an admin-scoped integration bearer.

    Empty never; the well-known default only while the web server listens on loopback.
    """
    if not settings.api_token:
        return False
    return settings.api_token not in DEFAULT_API_TOKENS or is_loopback_host(settings.web_host)


def role_allows(role: str, minimum: str) -> bool:
    """Roles are ranked agent < supervisor < admin; a higher role may do what a lower may."""
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[minimum]


class Passwords:
    """argon2id password hashing (argon2-cffi); the hasher's cost is injectable for tests."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; None (no such user) costs the same time."""
        if stored is None:
            # Verify against a throw-away hash so an unknown username takes as long as a
            # wrong password: the timing does not reveal which usernames exist.
            self._dummy = self._dummy or self._hasher.hash(new_secret())
            with contextlib.suppress(VerificationError, InvalidHashError):
                self._hasher.verify(self._dummy, password)
            return False
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


class LoginRateLimiter:
    """At most ``limit`` failed sign-ins per (username, client address) in ``window_s``.

    Kept in this node's memory: a sliding window per key, bounded to ``max_keys`` keys
    (the least recently used key goes first, so a flood of usernames cannot exhaust
    memory). Behind a load balancer each node counts on its own.
    """

    def __init__(self, *, limit: int = 5, window_s: float = 300.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit, self._window, self._max = limit, window_s, max_keys
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self._clock()
        stamps = self._failures.get(key, deque())
        while stamps and stamps[0] <= now - self._window:
            stamps.popleft()
        return stamps

    def retry_after(self, username: str, client: str) -> int:
        """Seconds until another attempt is allowed; 0 when one is allowed now."""
        stamps = self._recent((username.lower(), client))
        if len(stamps) < self._limit:
            return 0
        return max(1, int(stamps[0] + self._window - self._clock()) + 1)

    def failed(self, username: str, client: str) -> None:
        key = (username.lower(), client)
        stamps = self._recent(key)
        stamps.append(self._clock())
        self._failures[key] = stamps
        self._failures.move_to_end(key)
        while len(self._failures) > self._max:
            self._failures.popitem(last=False)

    def succeeded(self, username: str, client: str) -> None:
        self._failures.pop((username.lower(), client), None)


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a WebSocket ticket stands for: the principal that asked for it."""

    principal: Any
    expires_at: float


class TicketBook:
    """Short-lived, single-use WebSocket tickets (``POST /api/ws-ticket``).

    Browsers cannot set an ``Authorization`` header on a WebSocket, and a long-lived
    token in the URL ends up in proxy logs and browser history. A ticket is good for
    ``ttl_s`` seconds and one connection. Held in this node's memory: a client must
    open the socket on the node that issued the ticket (which the same address does,
    unless a balancer spreads a single client's requests).
    """

    def __init__(self, *, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._ttl, self._clock = ttl_s, clock
        self._tickets: dict[str, Ticket] = {}

    @property
    def ttl_s(self) -> float:
        return self._ttl

    def issue(self, principal: Any) -> str:
        now = self._clock()
        for key in [k for k, t in self._tickets.items() if t.expires_at <= now]:
            del self._tickets[key]
        ticket = new_secret()
        self._tickets[sha256_hex(ticket)] = Ticket(principal, now + self._ttl)
        return ticket

    def redeem(self, ticket: str) -> Any | None:
        """The ticket's principal, once; None for an unknown, used or expired ticket."""
        entry = self._tickets.pop(sha256_hex(ticket), None)
        if entry is None or entry.expires_at <= self._clock():
            return None
        return entry.principal
