"""`ivr serve`: the node (ARI Stasis app, FastAGI, web, outbox), built by ``ivr.app``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from ivr.cli.common import settings_from
from ivr.config import Settings
from ivr.domain.ports import Clock, Recognizer
from ivr.testing.rig import Rig, rig_from_env

if TYPE_CHECKING:
    from ivr.telephony.ari.channel import AriCallChannel


def rig_settings(settings: Settings, rig: Rig) -> Settings:
    """Point the settings at a running test rig (ARI, prompt and recording folders)."""
    creds = rig.credentials
    return replace(
        settings,
        ari_url=rig.ari_url, ari_user=creds.ari_user, ari_password=creds.ari_password,
        ari_app=creds.stasis_app, agi_port=rig.ports.agi,
        prompt_dir=rig.host_path("/var/lib/kanaal/prompts"),
        asterisk_prompt_dir="/var/lib/kanaal/prompts",
        record_dir=rig.host_path("/var/spool/asterisk/kanaal"),
        asterisk_record_dir="/var/spool/asterisk/kanaal",
        ami_port=rig.ports.ami, ami_user=creds.ami_user, ami_secret=creds.ami_password,
    )


async def serve_node(settings: Settings, *, ready: asyncio.Event | None = None,
                     recognizer: Recognizer | None = None,
                     on_call_end: Callable[[AriCallChannel], None] | None = None,
                     clock: Clock | None = None,
                     sandbox_log: Callable[[str], None] | None = None) -> None:
    """Run every server of one node until cancelled (the sandbox too, when configured)."""
    from ivr.app import build_node
    from ivr.testing.app import running_app

    async with running_app(settings, clock=clock, sandbox_log=sandbox_log) as app:
        node = build_node(app, recognizer=recognizer, on_call_end=on_call_end)
        await node.run(ready)


def app_name(settings: Settings) -> str:
    """What one node at a time may serve: a Stasis app on an Asterisk (a web-only node
    has an app of its own on the same Asterisk, and must not wait for the caller app's)."""
    return f"{settings.ari_url.rstrip('/')}/{settings.ari_app}"


async def serve_standby(settings: Settings, *, clock: Clock | None = None) -> None:
    """Wait, warm, to serve another node's Asterisk: the app (database, matcher) is
    built now, the telephony (ARI app, AMI, web) only once this node owns that Asterisk,
    so a takeover does not wait for a model to load."""
    from ivr.app import build_node, build_recognizer, turn_judge
    from ivr.storage.ownership import AsteriskOwnership
    from ivr.testing.app import running_app

    async with running_app(settings, clock=clock) as app:
        recognizer = build_recognizer(settings, judge=turn_judge(app))

        async def term() -> None:
            await build_node(app, recognizer=recognizer).run()

        await AsteriskOwnership(settings.effective_database_url, app_name(settings)).serve(term)


async def serve_owned(settings: Settings, *, standby: Sequence[Settings] = (),
                      ready: asyncio.Event | None = None, clock: Clock | None = None,
                      sandbox_log: Callable[[str], None] | None = None) -> None:
    """Several nodes on PostgreSQL: serve this node's Asterisk while owning it, and stand
    by for others' (``standby``: their settings); see ivr.storage.ownership. On SQLite
    there is one node: it serves its Asterisk and cannot stand by for another."""
    url = settings.effective_database_url
    if not url.startswith("postgresql"):
        if standby:
            raise click.ClickException("a standby needs the nodes to share PostgreSQL")
        await serve_node(settings, ready=ready, clock=clock, sandbox_log=sandbox_log)
        return
    from ivr.storage.ownership import AsteriskOwnership

    own = AsteriskOwnership(url, app_name(settings))
    async with asyncio.TaskGroup() as tg:
        tg.create_task(own.serve(lambda: serve_node(settings, ready=ready, clock=clock,
                                                    sandbox_log=sandbox_log)))
        for other in standby:
            if other.effective_database_url != url:
                raise click.ClickException(f"standby for {other.ari_url}: another database")
            tg.create_task(serve_standby(other, clock=clock))


@click.command()
@click.option("--rig", "use_rig", is_flag=True,
              help="start the bundled Asterisk test rig and serve its calls")
@click.option("--standby", "standby_files", multiple=True,
              type=click.Path(dir_okay=False, exists=True),
              help="another node's settings file (.env): serve its Asterisk when that node "
                   "dies (PostgreSQL only; repeatable)")
@click.option("--standby-app", "standby_apps", multiple=True, metavar="APP",
              help="another node's Stasis app on this node's own Asterisk: serve it when "
                   "that node dies (PostgreSQL only; repeatable)")
@click.pass_context
def serve(ctx: click.Context, use_rig: bool, standby_files: tuple[str, ...],
          standby_apps: tuple[str, ...]) -> None:
    """Serve calls: ARI Stasis app + FastAGI + web (screen-pop, webhooks, reports)."""
    settings = settings_from(ctx)
    from ivr.storage.db import upgrade
    from ivr.web.security import InsecureServingError, check_serving_secrets

    try:
        check_serving_secrets(settings)
    except InsecureServingError as exc:
        raise click.ClickException(str(exc)) from exc
    upgrade(settings.effective_database_url)
    if use_rig:
        rig = rig_from_env()  # KANAAL_RIG_* picks a developer's own rig copy
        rig.up()
        settings = rig_settings(settings, rig)
        click.echo(f"rig up: SIP 127.0.0.1:{rig.ports.sip}, ARI {rig.ari_url}", err=True)
    standby = [_standby_settings(path) for path in standby_files]
    standby += [same_asterisk_standby(settings, app) for app in standby_apps]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_owned(settings, standby=standby,
                                sandbox_log=lambda line: click.echo(line, err=True)))


def same_asterisk_standby(settings: Settings, app: str) -> Settings:
    """This node's settings for another node's app on the same Asterisk (one Asterisk,
    two nodes: the docker compose file). Its web server and FastAGI would take this
    node's own ports: port 0 binds a free one nobody is sent to, since this node's own
    web server serves the same database and the dialplan's FastAGI path names the dead
    node's address anyway."""
    if app == settings.ari_app:
        raise click.ClickException(f"--standby-app {app}: that is this node's own app")
    return replace(settings, ari_app=app, web_port=0, agi_port=0)


def _standby_settings(path: str) -> Settings:
    from ivr.config import ConfigError, load_settings

    try:  # only the file: this node's own environment must not leak into the other's
        return load_settings(env_file=path, environ={})
    except ConfigError as exc:
        raise click.ClickException(f"standby settings {path}: {exc}") from exc
