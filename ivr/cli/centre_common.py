"""Helpers of the contact-centre commands (`ivr agents`, `ivr split`).

Exit codes: 0 done, 1 refused (unknown agent, bad split, already logged in,
partial login ...), 2 usage/configuration error (click), 3 unavailable (database
or Asterisk AMI unreachable: worth retrying).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click

from ivr.config import Settings
from ivr.contact_centre.views import error_kind
from ivr.domain.centre_errors import CentreError, MembershipUnavailable
from ivr.domain.ports import PortError
from ivr.storage.agents import SqlAgentDirectory
from ivr.storage.db import make_engine
from ivr.telephony.ami import AmiAuthError, AmiClient, AmiNotConnected, AmiResponse, Backoff

T = TypeVar("T")

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3


class OnDemandAmi:
    """An AMI connection opened on the first action, so a command that fails on the
    database (unknown agent ...) never waits for Asterisk. Implements QueueControl."""

    def __init__(self, settings: Settings, *, timeout_s: float = 5.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._client: AmiClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def _connected(self) -> AmiClient:
        if self._client is None:
            s = self._settings
            # Events off: a one-shot command reads answers only. No retry on a refused
            # login: the secret is wrong, waiting will not fix it.
            self._client = AmiClient(
                s.ami_host, s.ami_port, username=s.ami_user, secret=s.ami_secret,
                events="off", retry_auth_failures=False, connect_timeout_s=self._timeout_s,
                action_timeout_s=self._timeout_s,
                backoff=Backoff(initial_s=0.2, cap_s=1.0))
            self._task = asyncio.create_task(self._client.run(), name="ami-cli")
        await self._wait(self._client)
        return self._client

    async def _wait(self, client: AmiClient) -> None:
        """Until logged in; fails on the first failed attempt (refused, bad secret)."""
        # run() retries forever and signals no failed attempt: a one-shot command
        # should report "connection refused" at once, not sit out the timeout.
        try:
            async with asyncio.timeout(self._timeout_s):
                while not client.connected.is_set():
                    if isinstance(client.last_error, AmiAuthError):
                        raise client.last_error
                    if client.last_error is not None:
                        raise AmiNotConnected(
                            f"AMI {client.host}:{client.port}: {client.last_error}")
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AmiNotConnected(
                f"AMI {client.host}:{client.port}: not connected after {self._timeout_s} s"
            ) from None

    async def queue_add(
        self, queue: str, interface: str, *, penalty: int = 0, paused: bool = False,
        member_name: str | None = None, state_interface: str | None = None,
    ) -> AmiResponse:
        client = await self._connected()
        return await client.queue_add(queue, interface, penalty=penalty, paused=paused,
                                      member_name=member_name, state_interface=state_interface)

    async def queue_remove(self, queue: str, interface: str) -> AmiResponse:
        return await (await self._connected()).queue_remove(queue, interface)

    async def queue_pause(
        self, interface: str, paused: bool, *, queue: str | None = None,
        reason: str | None = None,
    ) -> AmiResponse:
        client = await self._connected()
        return await client.queue_pause(interface, paused, queue=queue, reason=reason)

    async def close(self) -> None:
        """Log off politely (if connected) and stop the connection task."""
        if self._client is not None and self._client.connected.is_set():
            with contextlib.suppress(PortError):
                await self._client.action("Logoff", timeout_s=1.0, check=False)
        if self._task is not None:
            self._task.cancel()
            # return_exceptions: a refused login ends run() with AmiAuthError, already
            # reported through wait_connected.
            await asyncio.gather(self._task, return_exceptions=True)


async def with_directory(settings: Settings,
                         work: Callable[[SqlAgentDirectory], Awaitable[T]]) -> T:
    """Run ``work`` with a directory on the configured database, then dispose the engine."""
    engine = make_engine(settings.effective_database_url)
    try:
        return await work(SqlAgentDirectory(engine))
    finally:
        engine.dispose()


def emit(as_json: bool, doc: Any, text: str) -> None:
    """One JSON document, or the human text, on stdout."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False) if as_json else text)


def fail(as_json: bool, code: int, kind: str, message: str) -> NoReturn:
    """Report an error (stderr, plus one JSON document on stdout with --json) and exit."""
    click.echo(f"error: {message}", err=True)
    if as_json:
        click.echo(json.dumps({"error": kind, "message": message}, ensure_ascii=False))
    sys.exit(code)


def run_centre(as_json: bool, work: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(work())`` with domain and port errors turned into exit codes."""
    async def main() -> T:
        return await work()

    try:
        return asyncio.run(main())
    except MembershipUnavailable as exc:
        fail(as_json, EXIT_UNAVAILABLE, "unavailable", str(exc))
    except CentreError as exc:
        fail(as_json, EXIT_REFUSED, error_kind(exc), str(exc))
    except PortError as exc:
        message = str(exc)
        if "no such table" in message or "does not exist" in message:
            message += " (run `ivr db upgrade`)"
        fail(as_json, EXIT_UNAVAILABLE, "unavailable", message)
