"""Helpers shared by the notify tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ivr.notify.outbox import Outbox, OutboxStore
from ivr.notify.twilio_messenger import TwilioMessenger, TwilioTransport, make_twilio_client

ACCOUNT = "AC" + "1" * 32
TOKEN = "test-auth-token-0123456789"
SMS_FROM = "+3197010000001"
WA_FROM = "+3197010000002"


@dataclass
class Sandbox:
    url: str
    lines: list[str]

    def messages(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/_sandbox/messages").json()["messages"])

    def requests(self) -> int:
        return int(httpx.get(f"{self.url}/_sandbox/messages").json()["requests"])

    def fault(self, **spec: Any) -> None:
        httpx.post(f"{self.url}/_sandbox/faults", json=spec).raise_for_status()


def make_transport(sandbox: Sandbox, *, callback: str | None = None, timeout_s: float = 0.6,
                   idempotency: bool = True) -> TwilioTransport:
    client = make_twilio_client(ACCOUNT, TOKEN, base_url=sandbox.url, timeout_s=timeout_s)
    return TwilioTransport(client, status_callback_url=callback,
                           send_idempotency_token=idempotency)


def make_outbox(store: OutboxStore, transport: TwilioTransport, **kw: Any) -> Outbox:
    opts: dict[str, Any] = {"max_attempts": 6, "backoff_base_s": 0.05, "backoff_max_s": 0.3,
                            "lease_s": 0.2, "poll_s": 0.1}
    opts.update(kw)
    return Outbox(store=store, transport=transport, **opts)


def make_messenger(outbox: Outbox, deadline_s: float = 3.0, **kw: Any) -> TwilioMessenger:
    return TwilioMessenger(outbox=outbox, senders={"sms": SMS_FROM, "whatsapp": WA_FROM},
                           first_attempt_deadline_s=deadline_s, **kw)


@contextlib.asynccontextmanager
async def running(outbox: Outbox) -> AsyncIterator[Outbox]:
    """Run the outbox worker for the block, then cancel it (as app shutdown does)."""
    task = asyncio.create_task(outbox.run())
    try:
        yield outbox
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """Poll ``check`` (run in a thread) until it returns a truthy value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {value!r}")
        await asyncio.sleep(0.05)
