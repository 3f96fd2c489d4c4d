"""Fuzzing every HTTP route: random path parameters, query strings and bodies.

Whatever arrives, a route answers with a status below 500; an exception escaping a
handler would surface here (the ASGI transport re-raises it). Requests are sent
both signed in (admin bearer, so handlers run past the auth check) and anonymous.
The contact centre's routes are fuzzed on a node with live state (``centre_web``),
the Twilio webhooks with random bodies and signatures, valid and not.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from web_helpers import BASE, LEGACY_TOKEN

from ivr.notify.outbox import OutboxStore
from ivr.testing.web import WebCore
from ivr.web.twilio_routes import twilio_router

FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Values that have broken web handlers elsewhere: numbers where text is expected and
# back, huge and negative numbers, NUL, path tricks, dates, unicode.
ODD = ["", "0", "-1", "1e9", "99999999999999999999", "nan", "null", "true", "[]", "{}",
       "../../etc/passwd", "%00", "\x00", "é", "💥", "2026-02-30", "2026-11-30T10:00:00",
       "1001", "+31612345678", "a" * 500, "<script>", "' OR 1=1 --",
       # ... and values that exist, so draws get past "not found" into the handlers
       "1", "2", "3", "1001", "1002", "billing", "general", "end", "confirm", "resolve",
       "login", "logout", "pause", "unpause", "en", "nl", "agent", "supervisor"]
text = st.one_of(st.sampled_from(ODD), st.text(max_size=30),
                 st.text(alphabet=string.ascii_letters + string.digits + "-_:.", max_size=20))
QUERY_NAMES = ["q", "limit", "offset", "since", "until", "from", "to", "day", "days", "queue",
               "status", "region", "language", "lang", "next", "t", "page", "skill", "agent",
               "outbox_id", "period", "format", "customer", "active", "at", "window"]
query = st.dictionaries(st.one_of(st.sampled_from(QUERY_NAMES), text), text, max_size=4)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text)
BODY_NAMES = [*QUERY_NAMES, "message", "title", "starts_at", "ends_at", "texts", "en", "nl",
              "outcome", "notes", "code", "name", "skills", "result", "username", "password",
              "csrf"]
json_body = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(BODY_NAMES), text), inner, max_size=4)),
    max_leaves=8)
body = st.one_of(
    st.none(),
    st.builds(lambda d: ("json", d), json_body),
    st.builds(lambda d: ("form", d), st.dictionaries(text, text, max_size=4)),
    st.builds(lambda b: ("raw", b), st.binary(max_size=60)),
)
PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def http_routes(web: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every HTTP route of ``web``, included routers too."""
    def walk(routes: list[Any]) -> Iterator[Any]:
        for r in routes:
            if hasattr(r, "effective_route_contexts"):  # FastAPI's included router
                yield from r.effective_route_contexts()
            else:
                yield r
    out = []
    for r in walk(list(web.routes)):
        for method in sorted(getattr(r, "methods", None) or ()):
            if method != "HEAD":
                out.append((method, r.path))
    return sorted(set(out))


def fill(template: str, values: list[str]) -> str:
    it = iter(values)
    return PARAM.sub(lambda _m: quote(next(it, "x"), safe=""), template)


async def send(client: httpx.AsyncClient, method: str, url: str, params: dict[str, str],
               payload: tuple[str, Any] | None, signed_in: bool) -> httpx.Response:
    headers = {"Authorization": f"Bearer {LEGACY_TOKEN}"} if signed_in else {}
    kwargs: dict[str, Any] = {"params": params, "headers": headers}
    if payload is not None and method not in ("GET", "DELETE"):
        kind, data = payload
        if kind == "json":
            kwargs["json"] = data
        elif kind == "form":
            kwargs["data"] = data
        else:
            kwargs["content"] = data
    return await client.request(method, url, **kwargs)


async def fuzz_app(web: FastAPI, data: st.DataObject) -> None:
    routes = http_routes(web)
    method, template = data.draw(st.sampled_from(routes), label="route")
    n = len(PARAM.findall(template))
    values = data.draw(st.lists(text, min_size=n, max_size=n), label="path params")
    url = fill(template, values)
    params = data.draw(query, label="query")
    payload = data.draw(body, label="body")
    signed_in = data.draw(st.sampled_from([True, True, True, False]), label="signed in")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        r = await send(c, method, url, params, payload, signed_in)
    assert r.status_code < 500, (method, url, params, payload, r.status_code, r.text[:300])


@FUZZ
@given(data=st.data())
async def test_every_route_survives_random_requests(web: FastAPI, data: st.DataObject) -> None:
    """Any path parameter, query and body on any route: never a 5xx or a crash."""
    await fuzz_app(web, data)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@FUZZ
@given(data=st.data())
async def test_centre_routes_survive_random_requests(centre_web: FastAPI,
                                                     data: st.DataObject) -> None:
    """The same on a node with live contact-centre state (agents, queues, splits)."""
    await fuzz_app(centre_web, data)


def test_the_route_list_is_complete(web: FastAPI) -> None:
    """The fuzzer reaches the routers it is meant to (not an empty list after a refactor)."""
    paths = {p for _, p in http_routes(web)}
    assert {"/login", "/api/contacts/{session}", "/api/outages/{outage_id}/{action}",
            "/l/{slug}", "/api/links/completed"} <= paths


TWILIO_TOKEN = "twilio-token-for-fuzzing"
TWILIO_FIELDS = ["MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode", "From",
                 "To", "Body", "SmsMessageSid", "OriginalRepliedMessageSid", "AccountSid"]


@pytest.fixture
def twilio_web(core: WebCore) -> FastAPI:
    app = FastAPI()
    app.include_router(twilio_router(store=OutboxStore(core.engine), auth_token=TWILIO_TOKEN,
                                     public_base_url=BASE))
    return app


@FUZZ
@given(path=st.sampled_from(["/twilio/status", "/twilio/inbound"]),
       form=st.dictionaries(st.one_of(st.sampled_from(TWILIO_FIELDS), text),
                            st.one_of(text, st.sampled_from([
                                "whatsapp:+31612345678", "+31612345678", "delivered",
                                "failed", "SM" + "0" * 32, "30008"])), max_size=6),
       outbox_id=st.one_of(st.none(), text),
       signature=st.sampled_from(["valid", "none", "garbage", "other-url"]),
       raw=st.one_of(st.none(), st.binary(max_size=60)))
async def test_twilio_webhooks_survive_random_bodies(
        twilio_web: FastAPI, path: str, form: dict[str, str], outbox_id: str | None,
        signature: str, raw: bytes | None) -> None:
    """Any form, signed or not: 204/200, 400 or 403, never a crash; unsigned is 403."""
    query = "" if outbox_id is None else "?outbox_id=" + quote(outbox_id, safe="")
    url = BASE + path + query
    validator = RequestValidator(TWILIO_TOKEN)
    headers = {}
    if signature == "valid":
        headers["X-Twilio-Signature"] = validator.compute_signature(url, form)
    elif signature == "other-url":
        headers["X-Twilio-Signature"] = validator.compute_signature(url + "x", form)
    elif signature == "garbage":
        headers["X-Twilio-Signature"] = "nonsense=="
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=twilio_web),
                                 base_url=BASE) as c:
        if raw is not None and signature != "valid":
            r = await c.post(path + query, content=raw, headers={
                **headers, "Content-Type": "application/x-www-form-urlencoded"})
        else:
            r = await c.post(path + query, data=form, headers=headers)
    assert r.status_code < 500, (path, form, r.status_code, r.text[:200])
    if signature != "valid":
        assert r.status_code == 403
