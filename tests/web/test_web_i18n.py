"""English and Dutch on every page: the catalogue is complete, the language follows the
user's choice or the browser, and the choice cannot redirect off the site."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from web_helpers import post_login, sign_in

from ivr.web.consoles import WRAPUP_CODES
from ivr.web.i18n import TEXT, choose, script_strings

WEB = Path(__file__).parents[2] / "ivr" / "web"


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for page in (WEB / "templates").glob("*.html"):
        keys |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", page.read_text()))
    for script in (WEB / "static").glob("*.js"):
        keys |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", script.read_text()))
    # Families the templates build from a value: t("role." ~ who.role) etc.
    keys |= {f"role.{r}" for r in ("agent", "supervisor", "admin")}
    keys |= {f"wrapup.{c}" for c in WRAPUP_CODES}
    return keys


def test_every_key_in_pages_and_scripts_has_english_and_dutch() -> None:
    used = _used_keys()
    assert len(used) > 100
    missing = sorted(k for k in used if k not in TEXT)
    assert missing == []
    untranslated = sorted(k for k in used if not all(TEXT[k]))
    assert untranslated == []
    # Every string a script asks for is shipped to it.
    scripts = {k for k in used if k.startswith(("js.", "report."))}
    assert scripts <= set(script_strings("nl"))


def test_choice_cookie_then_accept_language_then_english() -> None:
    assert choose("nl", "en-GB,en;q=0.9") == "nl"
    assert choose("en", "nl-NL") == "en"
    assert choose(None, "de-DE,nl;q=0.8,en;q=0.5") == "nl"
    assert choose(None, "en;q=0.4,nl-BE;q=0.9") == "nl"
    assert choose(None, "fr,de") == "en" and choose("xx", None) == "en"


async def test_pages_speak_the_chosen_language(client: httpx.AsyncClient) -> None:
    r = await client.get("/login", headers={"Accept-Language": "nl-NL,nl;q=0.9"})
    assert '<html lang="nl">' in r.text and "Wachtwoord" in r.text
    r = await client.get("/lang/en", params={"next": "/login"})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "kanaal_lang=en" in r.headers["set-cookie"]
    client.cookies.set("kanaal_lang", "en")
    r = await client.get("/login", headers={"Accept-Language": "nl"})
    assert '<html lang="en">' in r.text and "Password" in r.text
    await sign_in(client, "super")
    client.cookies.set("kanaal_lang", "nl")
    page = (await client.get("/supervisor")).text
    assert "Wachtrijen" in page and "Contactredenen" in page and "laatste 7 dagen" in page
    assert '"js.in_sync": "synchroon met Asterisk"' in page  # the scripts' strings


async def test_language_choice_only_redirects_within_the_site(
        client: httpx.AsyncClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"):
        r = await client.get("/lang/nl", params={"next": target})
        assert r.status_code == 303 and r.headers["location"] == "/", target
    r = await client.get("/lang/xx", params={"next": "/agent"})
    assert r.headers["location"] == "/agent" and "set-cookie" not in r.headers


async def test_sign_in_refusals_in_dutch(client: httpx.AsyncClient) -> None:
    client.headers["Accept-Language"] = "nl"
    r = await post_login(client, "agent1", "wrong-password")
    assert r.status_code == 401 and "Verkeerde gebruikersnaam of wachtwoord." in r.text
