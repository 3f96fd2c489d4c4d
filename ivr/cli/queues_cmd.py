"""`ivr queues status`: the live state of the centre as app_queue reports it over AMI."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import click

from ivr.cli.centre_common import EXIT_UNAVAILABLE, emit, fail, with_directory
from ivr.cli.common import settings_from
from ivr.config import Settings


async def _status(settings: Settings, timeout_s: float) -> dict[str, Any]:
    from ivr.contact_centre.feed import CentreFeed
    from ivr.contact_centre.views import centre_view
    from ivr.storage.agents import SqlAgentDirectory
    from ivr.telephony.ami import AmiClient

    async def run(directory: SqlAgentDirectory) -> dict[str, Any]:
        async def profiles() -> list[Any]:
            return [r.profile for r in await directory.list_agents()]

        client = AmiClient(settings.ami_host, settings.ami_port, username=settings.ami_user,
                           secret=settings.ami_secret)
        feed = CentreFeed(client, profiles=profiles)
        task = asyncio.create_task(feed.run())
        try:
            async with asyncio.timeout(timeout_s):
                await feed.synced.wait()
        except TimeoutError:
            raise ConnectionError(
                f"no answer from AMI at {settings.ami_host}:{settings.ami_port} within "
                f"{timeout_s:g}s ({client.last_error or 'not connected'})") from None
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return centre_view(feed.snapshot(), stale_s=feed.stale_s)

    return await with_directory(settings, run)


def _table(doc: dict[str, Any]) -> str:
    lines = [f"{'skill':<14} {'in':>3} {'ready':>5} {'busy':>4} {'pause':>5} {'wrap':>4} "
             f"{'AHT s':>6}"]
    for name, v in doc["skills"].items():
        aht = "-" if v["aht_s"] is None else f"{v['aht_s']:.0f}"
        lines.append(f"{name:<14} {v['logged_in']:>3} {v['ready']:>5} {v['busy']:>4} "
                     f"{v['paused']:>5} {v['wrap_up']:>4} {aht:>6}")
    for name, q in doc["queues"].items():
        lines.append(f"queue {name}: {q['waiting']} waiting, longest {q['longest_wait_s']:.0f}s")
    return "\n".join(lines)


@click.group()
def queues() -> None:
    """Live queue state (agents per skill, callers waiting) from Asterisk over AMI."""


@queues.command("status")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option("--timeout", "timeout_s", default=10.0, show_default=True,
              help="seconds to wait for AMI")
@click.pass_context
def status(ctx: click.Context, as_json: bool, timeout_s: float) -> None:
    """Agents logged in / ready / busy / paused / in wrap-up per skill, callers waiting."""
    settings = settings_from(ctx)
    t0 = time.monotonic()
    try:
        doc = asyncio.run(_status(settings, timeout_s))
    except (ConnectionError, OSError) as exc:
        fail(as_json, EXIT_UNAVAILABLE, "unavailable", str(exc))
    doc["took_ms"] = round((time.monotonic() - t0) * 1000)
    emit(as_json, doc, _table(doc))
