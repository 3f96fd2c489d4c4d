"""Signed, expiring self-service and chat links that continue the caller's contact.

A link is the configured URL for a key (``address_change``, ``chat`` ...) plus a
``t=<token>`` query parameter. The token is ``base64url(payload).base64url(mac)``
where the payload is compact JSON ``{"c": contact_id, "k": key, "e": expiry}``
and the MAC is HMAC-SHA256 over the encoded payload with a server secret. The web
or chat side calls :meth:`SignedLinkBuilder.verify` to get the contact id back, so
the self-service session is written to the same contact as the phone call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ivr.domain.ports import PortError

LINK_KEYS: tuple[str, ...] = (
    "address_change",
    "activate_account",
    "deactivate_account",
    "password_reset",
    "payment_plan",
    "chat",
)


def link_slug(key: str) -> str:
    """The key as it appears in a landing URL: ``address_change`` -> ``address-change``."""
    return key.replace("_", "-")


def key_of_slug(slug: str) -> str | None:
    """The link key of a landing URL's slug, or None."""
    key = slug.replace("-", "_")
    return key if key in LINK_KEYS else None


class UnknownLinkKey(PortError):
    """No URL is configured for the requested link key."""


class LinkTokenError(Exception):
    """A link token could not be accepted (base class: tampered, expired, malformed)."""


class LinkTokenInvalid(LinkTokenError):
    """The token is malformed or its signature does not match (tampered or foreign)."""


class LinkTokenExpired(LinkTokenError):
    """The token's signature is fine but its lifetime is over."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a verified token says."""

    contact_id: str
    key: str
    expires_at: int


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SignedLinkBuilder:
    """Implements the ``LinkBuilder`` port with HMAC-SHA256 signed, expiring tokens.

    ``urls`` maps link keys to base URLs (they may already carry a query string).
    ``now`` returns Unix seconds; injectable so expiry is testable.
    """

    def __init__(
        self,
        *,
        secret: str | bytes,
        urls: Mapping[str, str],
        ttl_s: int = 24 * 3600,
        param: str = "t",
        now: Callable[[], float] = time.time,
        landing: str | None = None,
    ) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        # A short secret makes tokens forgeable by brute force; refuse at start-up
        # rather than hand out weak links.
        if len(key) < 16:
            raise ValueError("link secret must be at least 16 bytes")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._secret = key
        self._urls = dict(urls)
        self._ttl_s = ttl_s
        self._param = param
        self._now = now
        # With a landing base the caller gets <landing>/l/<key>?t=..., a Kanaal route
        # that verifies the token, records the open on the contact and redirects to
        # the configured URL (destination()).
        self._landing = landing.rstrip("/") if landing else None

    @property
    def keys(self) -> tuple[str, ...]:
        """Link keys with a configured URL."""
        return tuple(self._urls)

    def token(self, key: str, contact_id: str) -> str:
        """Signed token for ``contact_id`` valid for the builder's TTL."""
        payload = {"c": contact_id, "k": key, "e": int(self._now()) + self._ttl_s}
        body = _b64e(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(body)}"

    def link(self, key: str, contact_id: str) -> str:
        """URL for ``key`` carrying a signed token for ``contact_id`` (the landing route
        when one is configured, else the destination itself)."""
        if key not in self._urls:
            raise UnknownLinkKey(f"no URL configured for link key {key!r}")
        token = self.token(key, contact_id)
        if self._landing is not None:
            return f"{self._landing}/l/{link_slug(key)}?{self._param}={token}"
        return self.destination(key, token)

    def destination(self, key: str, token: str) -> str:
        """The configured URL for ``key`` with ``token`` appended."""
        base = self._urls.get(key)
        if base is None:
            raise UnknownLinkKey(f"no URL configured for link key {key!r}")
        parts = urlsplit(base)
        extra = f"{self._param}={token}"
        query = f"{parts.query}&{extra}" if parts.query else extra
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

    def claims(self, token: str, *, key: str | None = None) -> LinkClaims:
        """Verify ``token`` and return its claims; raises a LinkTokenError subclass."""
        if not isinstance(token, str) or token.count(".") != 1:
            raise LinkTokenInvalid("malformed link token")
        body, mac = token.split(".")
        # compare_digest: constant time, so the MAC cannot be guessed byte by byte.
        if not hmac.compare_digest(self._mac(body), mac):
            raise LinkTokenInvalid("link token signature mismatch")
        try:
            payload = json.loads(_b64d(body))
            claims = LinkClaims(
                contact_id=str(payload["c"]), key=str(payload["k"]), expires_at=int(payload["e"])
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise LinkTokenInvalid("malformed link token payload") from exc
        if key is not None and claims.key != key:
            raise LinkTokenInvalid(f"token is for {claims.key!r}, not {key!r}")
        if self._now() >= claims.expires_at:
            raise LinkTokenExpired("link token expired")
        return claims

    def verify(self, token: str, *, key: str | None = None) -> str:
        """Contact id carried by a valid token; raises LinkTokenInvalid/LinkTokenExpired."""
        return self.claims(token, key=key).contact_id

    def _mac(self, body: str) -> str:
        return _b64e(hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest())
