"""A local server that speaks Twilio's REST wire format for the Messages resource.

Tests and the demo point the official ``twilio`` client at it (see
``RewritingHttpClient``). It implements what Kanaal uses, the way Twilio does:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form: To, From, Body,
  ContentSid, ContentVariables, StatusCallback, MessagingServiceSid; HTTP basic
  auth) -> 201 with Twilio's message JSON (``sid`` "SM...", ``status`` "queued");
* ``GET .../Messages/{Sid}.json`` (fetch) and ``GET .../Messages.json`` (list, To/From
  filters, newest first, Twilio's paging envelope);
* Twilio's error bodies ``{"code", "message", "more_info", "status"}``;
* signed (``X-Twilio-Signature``) status callbacks queued -> sent -> delivered;
* the magic numbers of Twilio's test credentials (To +15005550001 -> 21211,
  ...0002 -> 21612, ...0003 -> 21408, ...0004 -> 21610, ...0009 -> 21614,
  From +15005550001 -> 21212).

Sandbox-only endpoints (not Twilio): ``GET/DELETE /_sandbox/messages`` (the log),
``POST/DELETE /_sandbox/faults`` (fault injection) and ``POST /_sandbox/inbound``
(deliver a signed inbound SMS/WhatsApp webhook, like a customer replying).

A create request carrying ``I-Twilio-Idempotency-Token`` that was seen before
returns the earlier message instead of a new one (Kanaal sends the outbox row id).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from twilio.request_validator import RequestValidator

from ivr.web.forms import read_form

API = "/2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    21211: (400, "Invalid 'To' Phone Number"),
    21212: (400, "Invalid 'From' Phone Number"),
    21408: (400, "Permission to send an SMS has not been enabled for the region "
                 "indicated by the 'To' number"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The 'To' phone number is not currently reachable via SMS"),
    21614: (400, "'To' number is not a valid mobile number"),
    63016: (400, "Failed to send freeform message because you are outside the allowed "
                 "window. Please use a Template."),
}
MAGIC_TO = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MAGIC_FROM = {"+15005550001": 21212}


def mask(number: str) -> str:
    """Mask the middle of a phone number for logs (keeps prefix and last two digits)."""
    prefix = "whatsapp:" if number.startswith("whatsapp:") else ""
    digits = number.removeprefix("whatsapp:")
    if len(digits) <= 6:
        return prefix + "***"
    return prefix + digits[:4] + "*" * (len(digits) - 6) + digits[-2:]


def twilio_error(code: int, detail: str = "", status: int | None = None) -> JSONResponse:
    """Twilio's error JSON body."""
    http_status, message = ERRORS.get(code, (status or 400, "Error"))
    body = {
        "code": code,
        "message": f"{message}: {detail}" if detail else message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status or http_status,
    }
    return JSONResponse(body, status_code=status or http_status)


@dataclass
class Fault:
    """One injected fault. ``count`` None means until cleared."""

    status: int | None = None  # answer with this HTTP status (Twilio error body)
    code: int | None = None  # Twilio error code to answer with
    hang_s: float = 0.0  # sleep before answering (client timeouts)
    after_create: bool = False  # create the message first, then hang/fail (lost response)
    number: str | None = None  # only for this To number (without whatsapp:)
    async_failure: bool = False  # accept, then report status "failed" with ``code``
    count: int | None = 1


@dataclass
class SandboxState:
    """Everything the sandbox remembers; only touched from the server's loop."""

    account_sid: str
    auth_token: str
    callback_delay_s: float
    log: Callable[[str], None] | None
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def emit(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def take_fault(self, to: str) -> Fault | None:
        """First matching fault, consuming one use of it."""
        bare = to.removeprefix("whatsapp:")
        for fault in self.faults:
            if fault.number is not None and fault.number != bare:
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
            return fault
        return None


def _now_rfc2822() -> str:
    return format_datetime(datetime.now(UTC), usegmt=True)


def create_sandbox_app(
    *,
    account_sid: str = "AC" + "0" * 32,
    auth_token: str = "sandbox-auth-token",
    callback_delay_s: float = 0.05,
    log: Callable[[str], None] | None = print,
) -> FastAPI:
    """The sandbox as an ASGI app (serve it with uvicorn or :class:`ServerThread`)."""
    state = SandboxState(account_sid, auth_token, callback_delay_s, log)
    sandbox = _Sandbox(state)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # Status callbacks still pending must not outlive the server.
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)

    app = FastAPI(title="Kanaal Twilio sandbox", lifespan=lifespan)
    app.state.sandbox = state
    _add_message_routes(app, sandbox)
    _add_sandbox_routes(app, sandbox)
    return app


def _public(msg: dict[str, Any]) -> dict[str, Any]:
    """A stored message as Twilio shows it (without the sandbox's ``_`` bookkeeping)."""
    return {k: v for k, v in msg.items() if not k.startswith("_")}


def _reject_invalid(form: dict[str, str]) -> JSONResponse | None:
    """Twilio's validation of a create request, in Twilio's order; None if it passes."""
    to, from_ = form.get("To") or "", form.get("From") or ""
    if not to:
        return twilio_error(21604)
    if not from_ and not form.get("MessagingServiceSid"):
        return twilio_error(21603)
    if not form.get("Body") and not form.get("ContentSid"):
        return twilio_error(21602)
    bare_to, bare_from = to.removeprefix("whatsapp:"), from_.removeprefix("whatsapp:")
    if not E164.match(bare_to):
        return twilio_error(21211, to)
    if bare_to in MAGIC_TO:
        return twilio_error(MAGIC_TO[bare_to], to)
    if bare_from in MAGIC_FROM:
        return twilio_error(MAGIC_FROM[bare_from], from_)
    return None


class _Sandbox:
    """What the routes do: Twilio's Messages behaviour on a :class:`SandboxState`."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.validator = RequestValidator(state.auth_token)

    def authorised(self, request: Request, account: str) -> bool:
        """HTTP basic auth with the account SID and auth token, as Twilio checks it."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == account == self.state.account_sid and password == self.state.auth_token

    def message_uri(self, sid: str) -> str:
        return f"{API}/Accounts/{self.state.account_sid}/Messages/{sid}.json"

    async def post_signed(self, url: str, params: dict[str, str]) -> int | None:
        """POST a webhook signed like Twilio does; its HTTP status, None if unreachable."""
        signature = self.validator.compute_signature(url, params)
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                resp = await client.post(url, data=params,
                                         headers={"X-Twilio-Signature": signature})
            return resp.status_code
        except httpx.HTTPError as exc:
            self.state.emit(f"[sandbox] webhook {url} failed: {exc!r}")
            return None

    async def run_callbacks(self, sid: str, fail_code: int | None) -> None:
        """Walk a message through its statuses, posting each to its StatusCallback."""
        msg = self.state.messages[sid]
        statuses = ["queued", "sent", "delivered"] if fail_code is None else ["queued", "failed"]
        for status in statuses:
            await asyncio.sleep(self.state.callback_delay_s)
            self._set_status(msg, status, fail_code)
            self.state.emit(f"[sandbox] {sid} -> {status}")
            url = msg["_status_callback"]
            if not url:
                continue
            params = {
                "AccountSid": self.state.account_sid, "ApiVersion": "2010-04-01",
                "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                "From": msg["from"], "To": msg["to"],
            }
            if status == "failed" and fail_code is not None:
                params["ErrorCode"] = str(fail_code)
            code = await self.post_signed(url, params)
            msg["_callbacks"].append({"status": status, "http": code})

    @staticmethod
    def _set_status(msg: dict[str, Any], status: str, fail_code: int | None) -> None:
        msg["status"] = status
        msg["date_updated"] = _now_rfc2822()
        if status == "sent":
            msg["date_sent"] = msg["date_updated"]
        if status == "failed":
            msg["error_code"] = fail_code
            msg["error_message"] = ERRORS.get(fail_code or 0, (0, "failed"))[1]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, tracked so the lifespan can cancel it."""
        task = asyncio.get_running_loop().create_task(coro)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    async def create_message(self, account: str, request: Request) -> Response:
        """``POST .../Messages.json``: idempotency, injected faults, validation, then 201."""
        state = self.state
        state.requests += 1
        if not self.authorised(request, account):
            return twilio_error(20003)
        form = await read_form(request)
        to = form.get("To") or ""
        token = request.headers.get("i-twilio-idempotency-token")
        if token and token in state.idempotency:
            # Same logical request again (a retry after a lost response): no duplicate.
            sid = state.idempotency[token]
            state.emit(f"[sandbox] duplicate request for {sid} (idempotency token) ignored")
            return JSONResponse(_public(state.messages[sid]), status_code=201)
        fault = state.take_fault(to)
        if fault is not None and not fault.after_create and not fault.async_failure:
            if fault.hang_s:
                await asyncio.sleep(fault.hang_s)
            state.emit(f"[sandbox] injected fault for {mask(to)}: {fault}")
            return twilio_error(fault.code or 20500, status=fault.status)
        rejected = _reject_invalid(form)
        if rejected is not None:
            return rejected
        msg = self._store_message(form, token)
        self.spawn(self.run_callbacks(
            msg["sid"], fault.code if fault is not None and fault.async_failure else None))
        if fault is not None and fault.after_create:
            # The message exists but the client never hears about it (or hears a 5xx).
            if fault.hang_s:
                await asyncio.sleep(fault.hang_s)
            if fault.status or fault.code:
                return twilio_error(fault.code or 20500, status=fault.status)
        return JSONResponse(_public(msg), status_code=201)

    def _store_message(self, form: dict[str, str], token: str | None) -> dict[str, Any]:
        """Record a new queued message (Twilio's JSON plus ``_`` bookkeeping fields)."""
        state = self.state
        to, from_ = form.get("To") or "", form.get("From") or ""
        body, content_sid = form.get("Body") or "", form.get("ContentSid") or ""
        sid = "SM" + secrets.token_hex(16)
        now = _now_rfc2822()
        msg: dict[str, Any] = {
            "account_sid": state.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": from_, "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD",
            "sid": sid, "status": "queued", "to": to, "uri": self.message_uri(sid),
            "subresource_uris": {"media": self.message_uri(sid).replace(".json", "/Media.json")},
            "_content_sid": content_sid or None,
            "_content_variables": form.get("ContentVariables"),
            "_status_callback": form.get("StatusCallback"),
            "_idempotency_token": token, "_callbacks": [],
        }
        state.messages[sid] = msg
        if token:
            state.idempotency[token] = sid
        shown = body if body else f"<template {content_sid} {msg['_content_variables']}>"
        state.emit(f"[sandbox] {sid} {mask(from_)} -> {mask(to)}: {shown}")
        return msg

    def list_messages(self, account: str, q: Mapping[str, str]) -> dict[str, Any]:
        """Twilio's paging envelope of the messages, newest first, To/From filtered."""
        page_size = int(q.get("PageSize") or 50)
        found = [
            _public(m) for m in reversed(self.state.messages.values())
            if (not q.get("To") or m["to"] == q["To"])
            and (not q.get("From") or m["from"] == q["From"])
        ][:page_size]
        uri = f"{API}/Accounts/{account}/Messages.json"
        return {
            "messages": found, "page": 0, "page_size": page_size, "start": 0,
            "end": max(len(found) - 1, 0), "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
            "next_page_uri": None, "previous_page_uri": None, "uri": uri,
        }

    async def inbound(self, spec: Any) -> Response:
        """Deliver a customer's reply: JSON {url, from, to, body, channel?, replied_to?}."""
        try:
            url, from_, to, body = spec["url"], spec["from"], spec["to"], spec["body"]
        except (KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad inbound: {exc!r}"}, status_code=400)
        if spec.get("channel") == "whatsapp":
            from_, to = "whatsapp:" + from_, "whatsapp:" + to
        sid = "SM" + secrets.token_hex(16)
        params = {
            "AccountSid": self.state.account_sid, "ApiVersion": "2010-04-01", "MessageSid": sid,
            "SmsMessageSid": sid, "SmsSid": sid, "From": from_, "To": to, "Body": body,
            "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
        }
        if spec.get("replied_to"):
            params["OriginalRepliedMessageSid"] = spec["replied_to"]
        self.state.emit(f"[sandbox] inbound {sid} {mask(from_)}: {body}")
        code = await self.post_signed(url, params)
        return JSONResponse({"sid": sid, "webhook_status": code})


def _add_message_routes(app: FastAPI, sandbox: _Sandbox) -> None:
    """Twilio's Messages resource: create, fetch, list."""
    state = sandbox.state

    @app.post(API + "/Accounts/{account}/Messages.json")
    async def create_message(account: str, request: Request) -> Response:
        return await sandbox.create_message(account, request)

    @app.get(API + "/Accounts/{account}/Messages/{sid}.json")
    async def fetch_message(account: str, sid: str, request: Request) -> Response:
        if not sandbox.authorised(request, account):
            return twilio_error(20003)
        msg = state.messages.get(sid)
        if msg is None:
            return twilio_error(20404, f"/Accounts/{account}/Messages/{sid}.json")
        return JSONResponse(_public(msg))

    @app.get(API + "/Accounts/{account}/Messages.json")
    async def list_messages(account: str, request: Request) -> Response:
        if not sandbox.authorised(request, account):
            return twilio_error(20003)
        return JSONResponse(sandbox.list_messages(account, request.query_params))


def _add_sandbox_routes(app: FastAPI, sandbox: _Sandbox) -> None:
    """Sandbox-only endpoints (not Twilio): the message log, faults, inbound replies."""
    state = sandbox.state

    @app.get("/_sandbox/messages")
    async def sandbox_messages() -> Response:
        out = []
        for m in state.messages.values():
            item = _public(m)
            item.update(
                content_sid=m["_content_sid"], content_variables=m["_content_variables"],
                status_callback=m["_status_callback"], callbacks=m["_callbacks"],
            )
            out.append(item)
        return JSONResponse({"messages": out, "requests": state.requests})

    @app.delete("/_sandbox/messages")
    async def sandbox_clear() -> Response:
        state.messages.clear()
        state.idempotency.clear()
        state.requests = 0
        return Response(status_code=204)

    @app.post("/_sandbox/faults")
    async def add_fault(request: Request) -> Response:
        try:
            spec = await request.json()
            fault = Fault(**spec)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad fault: {exc}"}, status_code=400)
        if fault.number is not None:
            fault.number = fault.number.removeprefix("whatsapp:")
        state.faults.append(fault)
        return JSONResponse({"faults": len(state.faults)}, status_code=201)

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> Response:
        state.faults.clear()
        return Response(status_code=204)

    @app.post("/_sandbox/inbound")
    async def inbound(request: Request) -> Response:
        """Simulate a customer's reply: JSON {url, from, to, body, channel?, replied_to?}."""
        try:
            spec = await request.json()
        except ValueError as exc:
            return JSONResponse({"error": f"bad inbound: {exc!r}"}, status_code=400)
        return await sandbox.inbound(spec)


class ServerThread:
    """Run an ASGI app with uvicorn in a background thread on a (free) local port.

    For tests and the demo: ``with ServerThread(app) as srv: srv.url``.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True,
                                        name="uvicorn-thread")
        self._host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ServerThread:
        """Start serving; returns once the socket listens."""
        import time

        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server thread failed to start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
