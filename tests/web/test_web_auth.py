"""Sign-in, sessions, CSRF, rate limiting, API tokens, roles and secure defaults (real HTTP
through the ASGI app, real SQLite, real argon2)."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from web_helpers import BASE, LEGACY_TOKEN, hidden, post_login, sign_in

from ivr.config import Settings, load_settings
from ivr.storage.users import SqlUserStore
from ivr.testing.web import CallScript, WebCore, cheap_passwords, play_call
from ivr.web.app import create_web_app
from ivr.web.security import InsecureServingError, check_serving_secrets

# Routes anyone may call: sign-in, health and readiness, the language choice, static files,
# Twilio (signature-checked).
PUBLIC = {"/login", "/", "/healthz", "/readyz", "/lang/{code}", "/twilio/status",
          "/twilio/inbound",
          # Signed-link landing and the self-service callback carry their own signatures
          # (tests/web/test_customer_timeline.py refuses bad ones).
          "/l/{slug}", "/api/links/completed"}


def _set_cookie(r: httpx.Response, name: str) -> str:
    found = [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[0]


async def test_sign_in_sets_a_hardened_session_cookie(client: httpx.AsyncClient) -> None:
    """A good password gives an HttpOnly, SameSite=Lax session cookie and the role's page."""
    r = await post_login(client, "agent1")
    assert r.status_code == 303 and r.headers["location"] == "/agent"
    cookie = _set_cookie(r, "kanaal_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # public URL is http here
    r = await post_login(client, "super")
    assert r.headers["location"] == "/supervisor"


async def test_cookie_is_secure_when_public_url_is_https(core: WebCore) -> None:
    """Behind https the cookie is Secure and __Host- prefixed (no subdomain can set it)."""
    https = replace(core, settings=replace(core.settings, public_url="https://ivr.example"))
    web = create_web_app(https, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web),
                                 base_url="https://ivr.example") as c:
        r = await post_login(c, "agent1")
    assert r.status_code == 303
    cookie = _set_cookie(r, "__Host-kanaal").lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


async def test_login_form_without_its_csrf_token_is_refused(client: httpx.AsyncClient) -> None:
    """A sign-in posted from elsewhere (no login CSRF cookie/field pair) signs nobody in."""
    r = await client.post("/login", data={"username": "agent1", "password": "x" * 12,
                                          "csrf": "forged"})
    assert r.status_code == 403 and "kanaal_session" not in r.headers.get("set-cookie", "")


async def test_rate_limit_after_five_failures(client: httpx.AsyncClient) -> None:
    """Five wrong passwords for a user from one address: the sixth try gets 429 with
    Retry-After, even with the right password; other users are unaffected."""
    for _ in range(5):
        r = await post_login(client, "agent1", "wrong-password")
        assert r.status_code == 401 and "Wrong username or password" in r.text
    locked = await post_login(client, "agent1")
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 300
    assert "kanaal_session" not in locked.headers.get("set-cookie", "")
    assert (await post_login(client, "super")).status_code == 303


async def test_next_only_goes_to_local_paths(client: httpx.AsyncClient) -> None:
    """?next= may not send a freshly signed-in user to another site."""
    r = await post_login(client, "super", next_="//evil.example/phish")
    assert r.headers["location"] == "/supervisor"
    r = await post_login(client, "super", next_="/agent")
    assert r.headers["location"] == "/agent"


def _api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    # FastAPI >= 0.16x wraps included routers (``original_router``); older ones copy routes.
    found: list[APIRoute] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found += _api_routes(inner.routes)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


async def test_every_route_needs_a_role(web: FastAPI, client: httpx.AsyncClient) -> None:
    """Anonymous calls to every registered HTTP route but the public ones get 401."""
    checked = 0
    for route in _api_routes(web.routes):
        if route.path in PUBLIC:
            continue
        path = route.path.replace("{session}", "s-1").replace("{name}", "swagger-ui.css")
        path = path.replace("{code}", "1001").replace("{action}", "pause")
        path = path.replace("{skill}", "billing").replace("{customer_id}", "1")
        for method in route.methods:
            r = await client.request(method, path, headers={"Accept": "application/json"})
            assert r.status_code == 401, (method, path, r.status_code)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(("username", "path", "status"), [
    ("agent1", "/agent", 200), ("agent1", "/supervisor", 403),
    ("agent1", "/api/reports/contact-reasons", 403), ("agent1", "/metrics", 403),
    ("agent1", "/api/contacts", 403), ("agent1", "/docs", 403),
    ("super", "/supervisor", 200), ("super", "/agent", 200), ("super", "/metrics", 200),
    ("super", "/api/reports/contact-reasons", 200), ("super", "/openapi.json", 403),
    ("admin", "/docs", 200), ("admin", "/openapi.json", 200), ("admin", "/supervisor", 200),
])
async def test_roles_are_enforced(client: httpx.AsyncClient, username: str, path: str,
                                  status: int) -> None:
    """agent < supervisor < admin: each page and API answers by role."""
    await sign_in(client, username)
    r = await client.get(path, headers={"Accept": "application/json"})
    assert r.status_code == status, r.text


async def test_forbidden_page_for_browsers(client: httpx.AsyncClient) -> None:
    """A browser gets a readable 403 page; an anonymous browser is sent to sign in."""
    anonymous = await client.get("/supervisor", headers={"Accept": "text/html"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/supervisor"
    await sign_in(client, "agent1")
    r = await client.get("/supervisor", headers={"Accept": "text/html"})
    assert r.status_code == 403 and "supervisor role" in r.text


async def test_post_without_csrf_token_is_rejected(core: WebCore,
                                                   client: httpx.AsyncClient) -> None:
    """A cookie-authenticated POST needs the session's CSRF token (header or form field)."""
    session = await play_call(core, CallScript("1008", "my invoice is wrong", "invoice_question",
                                               0.9, "billing"))
    csrf = await sign_in(client, "agent1")
    url = f"/api/contacts/{session}/wrapup"
    form = {"code": "resolved", "note": "explained the invoice"}
    assert (await client.post(url, data=form)).status_code == 403
    bad = await client.post(url, data=form, headers={"X-CSRF-Token": "nope"})
    assert bad.status_code == 403 and bad.json()["error"] == "csrf"
    assert (await client.post(url, data={**form, "csrf": csrf})).status_code == 200
    assert (await client.post(url, data=form, headers={"X-CSRF-Token": csrf})).status_code == 200
    assert (await client.post("/logout")).status_code == 403  # logout is CSRF-protected too


async def test_logout_ends_the_session_on_the_server(client: httpx.AsyncClient) -> None:
    """After sign-out the old cookie value is worthless, even if someone kept a copy."""
    csrf = await sign_in(client, "agent1")
    stolen = client.cookies.get("kanaal_session")
    r = await client.post("/logout", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    async with httpx.AsyncClient(transport=client._transport, base_url=BASE,
                                 cookies={"kanaal_session": stolen or ""}) as thief:
        assert (await thief.get("/api/me")).status_code == 401


async def test_password_change_and_disable_end_sessions(core: WebCore,
                                                        client: httpx.AsyncClient) -> None:
    """Changing a password or disabling a user signs them out everywhere."""
    store = SqlUserStore(core.engine)
    await sign_in(client, "agent1")
    assert (await client.get("/api/me")).status_code == 200
    store.set_password("agent1", cheap_passwords().hash("a-new-password"))
    assert (await client.get("/api/me")).status_code == 401
    await sign_in(client, "super")
    store.set_active("super", False)
    assert (await client.get("/api/me")).status_code == 401
    assert (await post_login(client, "super")).status_code == 401


async def test_personal_api_token(core: WebCore, client: httpx.AsyncClient) -> None:
    """A token acts with its user's role, needs no CSRF, and dies when revoked or when
    its user is disabled. Only its SHA-256 digest is stored."""
    store = SqlUserStore(core.engine)
    token = store.create_token("super", "wallboard")
    auth = {"Authorization": f"Bearer {token}"}
    me = (await client.get("/api/me", headers=auth)).json()
    assert me == {"username": "super", "role": "supervisor", "agent_code": None, "via": "token"}
    assert (await client.get("/metrics", headers=auth)).status_code == 200
    assert (await client.get("/docs", headers=auth)).status_code == 403
    assert (await client.post("/api/ws-ticket", headers=auth)).status_code == 200
    with core.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM api_tokens").scalars().all()
    assert token not in stored and len(stored[0]) == 64
    assert store.list_tokens("super")[0].last_used_at is not None
    store.revoke_token("super", "wallboard")
    assert (await client.get("/api/me", headers=auth)).status_code == 401
    second = store.create_token("super", "second")
    store.set_active("super", False)
    assert (await client.get("/api/me",
                             headers={"Authorization": f"Bearer {second}"})).status_code == 401


async def test_legacy_api_token_is_admin_on_loopback_only(core: WebCore,
                                                          client: httpx.AsyncClient) -> None:
    """IVR_API_TOKEN works as an admin bearer; never from the URL; the default value is
    not honoured once the server listens beyond loopback."""
    legacy = {"Authorization": f"Bearer {LEGACY_TOKEN}"}
    assert (await client.get("/api/me", headers=legacy)).json()["role"] == "admin"
    assert (await client.get(f"/api/me?token={LEGACY_TOKEN}")).status_code == 401
    exposed = replace(core, settings=replace(core.settings, web_host="0.0.0.0",
                                             api_token="change-me"))
    web = create_web_app(exposed, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        r = await c.get("/api/me", headers={"Authorization": "Bearer change-me"})
    assert r.status_code == 401


async def test_docs_are_admin_only_and_load_nothing_from_a_cdn(
        client: httpx.AsyncClient) -> None:
    """/docs is Swagger UI from the installed package; /redoc is gone."""
    await sign_in(client, "admin")
    page = await client.get("/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "http" not in page.text.split("<body>")[1]
    js = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert (await client.get("/docs/assets/..%2Fcore.py")).status_code == 404
    schema = (await client.get("/openapi.json")).json()
    assert "/api/contacts/{session}" in schema["paths"]
    assert (await client.get("/redoc")).status_code == 404


def _exposed(**changes: str) -> Settings:
    return replace(load_settings(env_file=None, environ={}), web_host="0.0.0.0", **changes)


def test_serving_on_all_addresses_needs_real_secrets() -> None:
    """Loopback keeps the defaults usable; any other address refuses default, empty or
    short secrets and names each one."""
    check_serving_secrets(load_settings(env_file=None, environ={}))  # 127.0.0.1: fine
    with pytest.raises(InsecureServingError) as err:
        check_serving_secrets(_exposed())
    assert "IVR_API_TOKEN" in str(err.value) and "IVR_LINK_SECRET" in str(err.value)
    real = {"api_token": "t" * 32, "link_secret": "l" * 32, "ari_password": "a" * 32,
            "ami_secret": "m" * 32}
    with pytest.raises(InsecureServingError, match="IVR_API_TOKEN is empty"):
        check_serving_secrets(_exposed(**{**real, "api_token": ""}))
    with pytest.raises(InsecureServingError, match="shorter than 16"):
        check_serving_secrets(_exposed(**{**real, "api_token": "short"}))
    check_serving_secrets(_exposed(**real))
    check_serving_secrets(replace(_exposed(), web_host="::1"))


def test_asterisk_passwords_must_be_real_off_loopback() -> None:
    """The shipped ARI/AMI passwords are refused once the node or Asterisk is remote
    (web or AGI on all addresses, ARI/AMI on another host), each named."""
    real = {"api_token": "t" * 32, "link_secret": "l" * 32}
    base = load_settings(env_file=None, environ={})
    for exposed in ({"web_host": "0.0.0.0"}, {"agi_host": "::"},
                    {"ari_url": "http://10.0.0.5:8088"}, {"ami_host": "pbx.example"}):
        with pytest.raises(InsecureServingError) as err:
            check_serving_secrets(replace(base, **real, **exposed))
        assert "IVR_ARI_PASSWORD" in str(err.value) and "IVR_AMI_SECRET" in str(err.value)
    with pytest.raises(InsecureServingError, match="IVR_AMI_SECRET is empty"):
        check_serving_secrets(replace(base, **real, ari_url="http://10.0.0.5:8088",
                                      ari_password="a" * 20, ami_secret=""))
    check_serving_secrets(replace(base, **real, ari_url="http://10.0.0.5:8088",
                                  ari_password="a" * 20, ami_secret="m" * 20))


async def test_login_page_has_csp_and_no_external_assets(client: httpx.AsyncClient) -> None:
    """Pages forbid foreign scripts (CSP 'self') and reference only local files."""
    r = await client.get("/login")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert "https://" not in r.text and hidden(r.text, "csrf")


async def test_unknown_user_gets_the_same_answer(client: httpx.AsyncClient) -> None:
    """An unknown username is refused exactly like a wrong password (no user enumeration)."""
    unknown = await post_login(client, "nobody", "whatever-password")
    wrong = await post_login(client, "agent1", "whatever-password")
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong username or password." in unknown.text
