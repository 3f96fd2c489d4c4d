"""Helpers of the web tests: filling in forms as a browser does."""

from __future__ import annotations

import re

import httpx

from ivr.testing.web import DEMO_PASSWORD

LEGACY_TOKEN = "legacy-token-for-tests"
BASE = "http://127.0.0.1:8080"


def hidden(html: str, name: str) -> str:
    """The value of a hidden form field or meta tag called ``name``."""
    found = re.search(rf'name="{name}"\s+(?:value|content)="([^"]*)"', html)
    assert found is not None, f"no {name} in page"
    return found.group(1)


async def post_login(client: httpx.AsyncClient, username: str,
                     password: str = DEMO_PASSWORD, next_: str = "") -> httpx.Response:
    """Fill in and send the sign-in form as a browser would (CSRF cookie + field)."""
    client.cookies.clear()  # a fresh browser: /login redirects the signed-in
    page = await client.get("/login")
    return await client.post("/login", data={"username": username, "password": password,
                                             "csrf": hidden(page.text, "csrf"), "next": next_})


async def sign_in(client: httpx.AsyncClient, username: str) -> str:
    """Sign ``client`` in; returns the session's CSRF token (from the landing page)."""
    r = await post_login(client, username)
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"])
    assert page.status_code == 200
    return hidden(page.text, "csrf-token")
