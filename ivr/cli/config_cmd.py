"""`ivr config check`: print the effective configuration, secrets masked."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ivr.cli.common import settings_from
from ivr.config import describe


@click.group()
def config() -> None:
    """Inspect configuration (defaults < .env < IVR_* environment < --set)."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Validate the configuration and print the effective values (secrets masked)."""
    settings = settings_from(ctx)
    values = settings.masked()
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    table = Table(title="Effective configuration")
    table.add_column("setting")
    table.add_column("value")
    for key, value in values.items():
        table.add_row(escape(key), escape(value))
    Console().print(table)
    click.echo("configuration OK")


@config.command("list")
def list_settings() -> None:
    """List every setting with its environment variable, default and meaning."""
    table = Table(title="Settings")
    for col in ("variable", "default", "meaning"):
        table.add_column(col)
    for row in describe():
        table.add_row(*(escape(c) for c in row))
    Console().print(table)
