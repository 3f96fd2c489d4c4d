"""`ivr rig up|down|status`: the Asterisk + SIPp test rig (see ivr.testing.rig)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _rig_options(f: Any) -> Any:
    options = [
        # envvar: the same KANAAL_RIG_* that rig_from_env reads (tests, `ivr call`),
        # so a developer's own rig copy is never confused with the default one.
        click.option("--root", envvar="KANAAL_RIG_ROOT",
                     type=click.Path(file_okay=False, path_type=Path),
                     default="/var/cache/kanaal/rig", show_default=True,
                     help="cached sid root (built on first use, outside the repo)"),
        click.option("--sip-port", envvar="KANAAL_RIG_SIP_PORT", type=int, default=5070,
                     show_default=True),
        click.option("--http-port", envvar="KANAAL_RIG_HTTP_PORT", type=int, default=8088,
                     show_default=True, help="Asterisk HTTP server (ARI)"),
        click.option("--ami-port", envvar="KANAAL_RIG_AMI_PORT", type=int, default=5039,
                     show_default=True),
        click.option("--agi-port", envvar="KANAAL_RIG_AGI_PORT", type=int, default=4573,
                     show_default=True,
                     help="FastAGI server the dialplan's AGI() connects to"),
        click.option("--agent-base-port", envvar="KANAAL_RIG_AGENT_BASE_PORT", type=int,
                     default=5081, show_default=True,
                     help="agentN is reached at this port + N - 1"),
        click.option("--ari-user", default="ivr", show_default=True),
        click.option("--ari-password", default="ivr-secret", show_default=True),
        click.option("--asterisks", type=click.IntRange(1, 2), default=1, show_default=True,
                     help="2: a second Asterisk in its own root (KANAAL_RIG2_ROOT, default "
                          "ROOT-2, cloned from ROOT) on ports +200 (KANAAL_RIG2_*_PORT)"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _make_rigs(kw: dict[str, Any]) -> list[Any]:
    """The rig, and with ``--asterisks 2`` its second Asterisk."""
    from ivr.testing.rig import second_rig_of

    first = _make_rig(kw)
    return [first] if kw["asterisks"] == 1 else [first, second_rig_of(first)]


def _make_rig(kw: dict[str, Any]) -> Any:
    # imported here: `ivr --help` must not pay for httpx
    from ivr.testing.rig import Rig, RigCredentials, RigPorts

    return Rig(
        root=kw["root"],
        ports=RigPorts(
            sip=kw["sip_port"], http=kw["http_port"], ami=kw["ami_port"],
            agi=kw["agi_port"], agent_base=kw["agent_base_port"],
        ),
        credentials=RigCredentials(ari_user=kw["ari_user"], ari_password=kw["ari_password"]),
        log=lambda msg: click.echo(msg, err=True),
    )


@click.group()
def rig() -> None:
    """Asterisk 22 + SIPp test rig in a cached Debian sid chroot (needs root)."""


@rig.command()
@_rig_options
def up(**kw: Any) -> None:
    """Build the rig if needed, start Asterisk and wait until ARI answers."""
    from ivr.testing.rig import RigError

    try:
        statuses = [r.up() for r in _make_rigs(kw)]
    except RigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("\n".join(st.describe() for st in statuses))


@rig.command()
@_rig_options
def down(**kw: Any) -> None:
    """Stop Asterisk and unmount the rig's /proc."""
    from ivr.testing.rig import RigError

    try:
        for r in reversed(_make_rigs(kw)):
            r.down()
    except RigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("rig stopped")


@rig.command()
@_rig_options
def status(**kw: Any) -> None:
    """Show whether the rig is built, running and answering ARI (exit 1 if not up)."""
    statuses = [r.status() for r in _make_rigs(kw)]
    click.echo("\n".join(st.describe() for st in statuses))
    if not all(st.running and st.ari_ok for st in statuses):
        raise SystemExit(1)
