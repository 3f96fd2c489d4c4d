"""SignedLinkBuilder: per-key URLs with signed, expiring contact tokens."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from ivr.domain.ports import PortError
from ivr.notify.links import (
    LINK_KEYS,
    LinkTokenExpired,
    LinkTokenInvalid,
    SignedLinkBuilder,
    UnknownLinkKey,
)

SECRET = "0123456789abcdef0123456789abcdef"
URLS = {key: f"https://self.example.com/{key}" for key in LINK_KEYS} | {
    "chat": "https://chat.example.com/start?lang=en"
}


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def test_link_round_trip_gives_contact_back() -> None:
    """The token in a link verifies back to the contact id it was made for."""
    links = SignedLinkBuilder(secret=SECRET, urls=URLS)
    url = links.link("address_change", "contact-42")
    assert url.startswith("https://self.example.com/address_change?t=")
    assert links.verify(token_of(url)) == "contact-42"
    assert links.verify(token_of(url), key="address_change") == "contact-42"


def test_existing_query_string_is_kept() -> None:
    """A base URL with its own query gets the token appended with '&'."""
    links = SignedLinkBuilder(secret=SECRET, urls=URLS)
    url = links.link("chat", "c1")
    query = parse_qs(urlsplit(url).query)
    assert query["lang"] == ["en"]
    assert links.verify(query["t"][0]) == "c1"


def test_every_flow_key_has_a_link() -> None:
    """All keys the flow uses produce distinct, verifiable links."""
    links = SignedLinkBuilder(secret=SECRET, urls=URLS)
    urls = {key: links.link(key, "c9") for key in LINK_KEYS}
    assert len(set(urls.values())) == len(LINK_KEYS)
    assert all(links.verify(token_of(u), key=k) == "c9" for k, u in urls.items())


@pytest.mark.parametrize("part", ["payload", "mac"])
def test_tampered_token_is_rejected(part: str) -> None:
    """Changing either half of the token fails verification."""
    links = SignedLinkBuilder(secret=SECRET, urls=URLS)
    other = SignedLinkBuilder(secret=SECRET, urls=URLS).token("address_change", "victim")
    body, mac = token_of(links.link("address_change", "attacker")).split(".")
    forged = f"{other.split('.')[0]}.{mac}" if part == "payload" else f"{body}.{mac[:-2]}AA"
    with pytest.raises(LinkTokenInvalid):
        links.verify(forged)


def test_token_from_other_secret_is_rejected() -> None:
    """A token signed with a different secret is invalid."""
    mine = SignedLinkBuilder(secret=SECRET, urls=URLS)
    theirs = SignedLinkBuilder(secret="another-secret-of-enough-length", urls=URLS)
    with pytest.raises(LinkTokenInvalid):
        mine.verify(theirs.token("chat", "c1"))


@pytest.mark.parametrize("junk", ["", "abc", "a.b.c", "!!!.???", "e30.AAAA"])
def test_garbage_tokens_raise_invalid(junk: str) -> None:
    """Malformed tokens raise LinkTokenInvalid, never another exception."""
    with pytest.raises(LinkTokenInvalid):
        SignedLinkBuilder(secret=SECRET, urls=URLS).verify(junk)


def test_expired_token_is_rejected() -> None:
    """A token is valid until its TTL passes, then raises LinkTokenExpired."""
    clock = FakeClock(1_000_000.0)
    links = SignedLinkBuilder(secret=SECRET, urls=URLS, ttl_s=600, now=clock)
    token = links.token("payment_plan", "c7")
    clock.t += 599
    assert links.verify(token) == "c7"
    clock.t += 1
    with pytest.raises(LinkTokenExpired):
        links.verify(token)


def test_token_for_other_key_is_rejected() -> None:
    """A chat token cannot be used on the password-reset page."""
    links = SignedLinkBuilder(secret=SECRET, urls=URLS)
    with pytest.raises(LinkTokenInvalid):
        links.verify(links.token("chat", "c1"), key="password_reset")


def test_unknown_key_is_a_port_error() -> None:
    """An unconfigured key raises UnknownLinkKey (a PortError the flow fails safe on)."""
    links = SignedLinkBuilder(secret=SECRET, urls={"chat": "https://chat.example.com"})
    with pytest.raises(UnknownLinkKey) as info:
        links.link("payment_plan", "c1")
    assert isinstance(info.value, PortError)


def test_short_secret_refused() -> None:
    """Secrets under 16 bytes are refused at construction."""
    with pytest.raises(ValueError):
        SignedLinkBuilder(secret="short", urls=URLS)
