"""SMS and WhatsApp through Twilio's official client, behind the durable outbox.

``TwilioMessenger`` implements the ``Messenger`` port: it writes the message to the
outbox, wakes the worker and waits a short deadline for the first attempt so the
call flow can offer an agent when the number is invalid or unsubscribed.
``TwilioTransport`` is the outbox's vendor side (blocking; runs in worker threads).

The ``twilio`` package has no base-URL option (``edge``/``region`` only rewrite
``*.twilio.com`` hosts), so :class:`RewritingHttpClient` rewrites the host of every
request; tests and the demo point it at ``ivr twilio-sandbox``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ivr.domain.model import Language, MessageReceipt
from ivr.notify.outbox import Outbox, OutgoingMessage, SendKind, SendResult

log = logging.getLogger(__name__)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CHANNELS = ("sms", "whatsapp")
MAX_BODY = 1600  # Twilio's limit for one Messages request

# Twilio sends this header on its webhooks; we send the outbox row id under the same
# name so a server that de-duplicates (the sandbox) can drop a repeated request.
# Twilio's Messages API ignores it, which is why the outbox also reconciles.
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
_idempotency_token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "twilio_idempotency_token", default=None
)

# twilio ships no type information (no py.typed), so its base class is Any to mypy.
class RewritingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """``TwilioHttpClient`` that sends every request to ``base_url`` instead of Twilio."""

    def __init__(self, base_url: str | None = None, *, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self._base = urlsplit(base_url.rstrip("/")) if base_url else None
        if self._base is not None and self.session is not None:
            # A local sandbox must not go through HTTP(S)_PROXY from the environment.
            self.session.trust_env = False

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self._base is not None:
            parts = urlsplit(url)
            url = urlunsplit((self._base.scheme, self._base.netloc,
                              self._base.path + parts.path, parts.query, parts.fragment))
        token = _idempotency_token.get()
        if token and method.upper() == "POST":
            headers = {**(headers or {}), IDEMPOTENCY_HEADER: token}
        return super().request(method, url, params=params, data=data, headers=headers,
                               auth=auth, timeout=timeout, allow_redirects=allow_redirects)


def make_twilio_client(
    account_sid: str, auth_token: str, *, base_url: str | None = None, timeout_s: float = 10.0
) -> Client:
    """Official Twilio client; ``base_url`` (e.g. the sandbox) replaces api.twilio.com."""
    return Client(account_sid, auth_token,
                  http_client=RewritingHttpClient(base_url, timeout=timeout_s))


class TwilioTransport:
    """Outbox transport on the Twilio Messages API (blocking; call from a thread).

    ``status_callback_url`` (public URL of ``/twilio/status``) gets ``?outbox_id=`` so
    a callback finds its row even before the SID is recorded.
    """

    def __init__(
        self,
        client: Client,
        *,
        status_callback_url: str | None = None,
        send_idempotency_token: bool = True,
        lookup_window: timedelta = timedelta(minutes=10),
    ) -> None:
        self._client = client
        self._callback = status_callback_url
        self._send_token = send_idempotency_token
        self._window = lookup_window

    @staticmethod
    def _address(channel: str, number: str) -> str:
        return f"whatsapp:{number}" if channel == "whatsapp" else number

    def send(self, message: OutgoingMessage) -> SendResult:
        kwargs: dict[str, Any] = {
            "to": self._address(message.channel, message.to),
            "from_": self._address(message.channel, message.from_),
        }
        if message.content_sid:
            kwargs["content_sid"] = message.content_sid
            if message.content_variables:
                kwargs["content_variables"] = message.content_variables
        else:
            kwargs["body"] = message.body
        if self._callback:
            sep = "&" if "?" in self._callback else "?"
            kwargs["status_callback"] = f"{self._callback}{sep}outbox_id={message.id}"
        reset = _idempotency_token.set(message.id if self._send_token else None)
        try:
            created = self._client.messages.create(**kwargs)
        except TwilioRestException as exc:
            return _classify(exc)
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
            return SendResult(SendKind.TRANSIENT, error=f"connect failed: {exc!r}")
        except requests.exceptions.ConnectionError as exc:
            # Refused before anything was sent is safe to retry; a reset or read
            # timeout after the request went out is not: the message may exist.
            if "NewConnectionError" in repr(exc):
                return SendResult(SendKind.TRANSIENT, error=f"connect failed: {exc!r}")
            return SendResult(SendKind.UNCERTAIN, error=f"connection lost: {exc!r}")
        except requests.exceptions.Timeout as exc:
            return SendResult(SendKind.UNCERTAIN, error=f"timeout: {exc!r}")
        except Exception as exc:  # e.g. a proxy's HTML page that is not JSON
            return SendResult(SendKind.UNCERTAIN, error=f"unexpected: {exc!r}")
        finally:
            _idempotency_token.reset(reset)
        return SendResult(SendKind.ACCEPTED, sid=created.sid, status=created.status)

    def find_existing(self, message: OutgoingMessage) -> SendResult | None:
        """Look for this row's message at Twilio (list by To/From, match the body).

        Template messages are matched by a content variable appearing in the body
        Twilio rendered. A lookup error counts as "not found" only if it is not a
        transport error: we must not resend when we cannot see.
        """
        since = message.created_at - self._window
        try:
            found = self._client.messages.list(
                to=self._address(message.channel, message.to),
                from_=self._address(message.channel, message.from_), limit=50,
            )
        except Exception as exc:
            raise LookupFailed(repr(exc)) from exc
        needles: list[str] = []
        if message.content_sid and message.content_variables:
            try:
                variables = json.loads(message.content_variables)
                needles = [v for v in variables.values() if isinstance(v, str) and len(v) >= 16]
            except ValueError:
                needles = []
        for m in found:
            created = m.date_created
            if created is not None and created < since:
                continue
            body = m.body or ""
            if (not message.content_sid and body == message.body) or any(
                n in body for n in needles
            ):
                return SendResult(SendKind.ACCEPTED, sid=m.sid, status=m.status)
        return None


class LookupFailed(Exception):
    """The provider could not be asked whether a message exists (retry later)."""


def _classify(exc: TwilioRestException) -> SendResult:
    """Map a Twilio API error to retry or final.

    Any other 4xx is final for this row: resending the same request cannot succeed
    (21211 invalid number, 21610 unsubscribed, 21408 region not enabled, 21612
    unreachable, 63016 outside the WhatsApp window ...).
    """
    code = str(exc.code) if exc.code is not None else str(exc.status)
    if exc.status >= 500 or exc.status in (401, 429):
        # 5xx/429: Twilio did not take it; 401: credentials being fixed by an operator.
        return SendResult(SendKind.TRANSIENT, error_code=code, error=exc.msg)
    return SendResult(SendKind.PERMANENT, error_code=code, error=exc.msg)


def default_template_variables(body: str) -> dict[str, str]:
    """Content variables for a WhatsApp template: {1: body, 2: first URL in it}."""
    variables = {"1": body}
    url = re.search(r"https?://\S+", body)
    if url:
        variables["2"] = url.group(0)
    return variables


class TwilioMessenger:
    """Implements the ``Messenger`` port on the outbox + Twilio.

    ``senders`` maps channel (``sms``/``whatsapp``) to the From number (E.164).
    ``whatsapp_templates`` maps language to an approved Content SID; when set,
    WhatsApp messages use the template (business-initiated messages outside the
    24-hour window must), otherwise free-form ``Body``.
    """

    def __init__(
        self,
        *,
        outbox: Outbox,
        senders: Mapping[str, str],
        whatsapp_templates: Mapping[str, str] | None = None,
        template_variables: Callable[[str], dict[str, str]] = default_template_variables,
        first_attempt_deadline_s: float = 3.0,
    ) -> None:
        self._outbox = outbox
        self._senders = dict(senders)
        self._templates = dict(whatsapp_templates or {})
        self._template_variables = template_variables
        self._deadline_s = first_attempt_deadline_s

    async def send_link(
        self, *, to: str, channel: str, body: str, contact_id: str, language: Language
    ) -> MessageReceipt:
        """Queue durably, wait briefly for the first attempt; never raises."""
        number = to.removeprefix("whatsapp:").strip()
        if channel not in CHANNELS:
            return _refused(channel, "bad_channel", f"unsupported channel {channel!r}")
        if not E164.match(number):
            return _refused(channel, "invalid_to", "destination is not an E.164 number")
        sender = self._senders.get(channel)
        if not sender:
            return _refused(channel, "no_sender", f"no sender configured for {channel}")
        if not body.strip() or len(body) > MAX_BODY:
            return _refused(channel, "bad_body", f"body must be 1..{MAX_BODY} characters")
        content_sid = self._templates.get(language) if channel == "whatsapp" else None
        try:
            row_id = await self._outbox.enqueue(
                contact_id=contact_id, channel=channel, to=number, from_=sender, body=body,
                language=language, content_sid=content_sid,
                content_variables=self._template_variables(body) if content_sid else None,
            )
        except Exception as exc:  # DB down: tell the flow it did not happen
            log.exception("outbox write failed")
            return MessageReceipt(ok=False, channel=channel, error_code="outbox_unavailable",
                                  error=repr(exc))
        outcome = await self._outbox.first_outcome(row_id, self._deadline_s)
        if outcome is not None and outcome.kind is SendKind.PERMANENT:
            return MessageReceipt(ok=False, message_id=row_id, channel=channel, permanent=True,
                                  error_code=outcome.error_code, error=outcome.error)
        if outcome is not None and outcome.kind is SendKind.ACCEPTED:
            return MessageReceipt(ok=True, message_id=outcome.sid, channel=channel)
        # Still trying (transient error or slow first attempt): the outbox owns it now.
        # message_id is then the outbox row id (a UUID) rather than a Twilio SID.
        return MessageReceipt(ok=True, message_id=row_id, channel=channel)


def _refused(channel: str, code: str, error: str) -> MessageReceipt:
    return MessageReceipt(ok=False, channel=channel, error_code=code, error=error, permanent=True)
