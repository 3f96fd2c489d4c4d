"""`ivr db upgrade|seed|status`: schema migrations and demo/synthetic data."""

from __future__ import annotations

import time

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from ivr.cli.common import settings_from
from ivr.config import _mask_url
from ivr.storage.db import current_revision, make_engine, upgrade
from ivr.storage.seed import seed_demo, seed_synthetic


@click.group()
def db() -> None:
    """Database schema and data."""


def _url(ctx: click.Context) -> str:
    return settings_from(ctx).effective_database_url


@db.command("upgrade")
@click.pass_context
def upgrade_cmd(ctx: click.Context) -> None:
    """Apply Alembic migrations up to the newest schema."""
    url = _url(ctx)
    try:
        upgrade(url)
    except Exception as exc:
        raise click.ClickException(f"cannot migrate {_mask_url(url)}: {exc}") from exc
    click.echo(f"schema at revision {current_revision(url)} ({_mask_url(url)})")


@db.command("status")
@click.pass_context
def status_cmd(ctx: click.Context) -> None:
    """Show the schema revision."""
    url = _url(ctx)
    click.echo(f"{_mask_url(url)}: revision {current_revision(url) or 'none (run ivr db upgrade)'}")


@db.command("seed")
@click.option("--demo", is_flag=True, help="load the demo contact centre (replaces data)")
@click.option("--synthetic", type=click.IntRange(min=1), default=None, metavar="N",
              help="append N synthetic customers (for benchmarks)")
@click.pass_context
def seed_cmd(ctx: click.Context, demo: bool, synthetic: int | None) -> None:
    """Load demo and/or synthetic data (runs migrations first)."""
    if not demo and synthetic is None:
        raise click.UsageError("choose --demo and/or --synthetic N")
    url = _url(ctx)
    upgrade(url)
    engine = make_engine(url)
    try:
        if demo:
            # The demo centre is staffed: its agents are logged in from the start.
            counts = seed_demo(engine, staffed=True)
            click.echo("demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        if synthetic:
            t0 = time.perf_counter()
            with Progress("[progress.description]{task.description}", BarColumn(),
                          MofNCompleteColumn(), TimeRemainingColumn(), transient=False) as bar:
                task = bar.add_task("synthetic customers", total=synthetic)
                seed_synthetic(engine, synthetic, progress=lambda k: bar.advance(task, k))
            click.echo(f"{synthetic} synthetic customers in {time.perf_counter() - t0:.1f} s")
    finally:
        engine.dispose()
