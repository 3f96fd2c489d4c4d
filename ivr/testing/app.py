"""A running ``App`` with the built-in Twilio sandbox when the settings ask for it.

``IVR_TWILIO_BASE_URL=sandbox`` (the default) means "no Twilio account: show me
what would be sent". The sandbox is a testing tool, so the core (``ivr.app``)
never starts it; the CLI and tests do, through this function, and hand the
core its URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace

from ivr.app import App, build_app
from ivr.config import Settings
from ivr.domain.ports import Clock
from ivr.testing.twilio_sandbox import ServerThread, create_sandbox_app


@contextlib.contextmanager
def sandboxed(settings: Settings, *, log: Callable[[str], None] | None = None
              ) -> Iterator[Settings]:
    """Start the sandbox if configured; yields settings pointing at it (else unchanged)."""
    if settings.twilio_base_url != "sandbox":
        yield settings
        return
    sandbox = create_sandbox_app(account_sid=settings.twilio_account_sid,
                                 auth_token=settings.twilio_auth_token, log=log)
    with ServerThread(sandbox) as server:
        yield replace(settings, twilio_base_url=server.url)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, *, clock: Clock | None = None,
                      sandbox_log: Callable[[str], None] | None = None) -> AsyncIterator[App]:
    """``build_app`` (entered) behind the sandbox when ``twilio_base_url`` is ``sandbox``."""
    with sandboxed(settings, log=sandbox_log) as effective:
        async with build_app(effective, clock=clock) as app:
            yield app
