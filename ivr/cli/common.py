"""Helpers shared by the sub-commands: settings loading with friendly errors."""

from __future__ import annotations

import logging

import click

from ivr.config import ConfigError, Settings, load_settings, parse_overrides


def settings_from(ctx: click.Context) -> Settings:
    """Load the Settings once per invocation; a bad value exits with code 2 and the reason."""
    root = ctx.find_root()
    obj = root.obj or {}
    cached = obj.get("settings")
    if isinstance(cached, Settings):
        return cached
    try:
        settings = load_settings(env_file=obj.get("env_file", ".env"),
                                 overrides=parse_overrides(obj.get("overrides", ())))
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every migration at INFO; that is noise on a CLI.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    obj["settings"] = settings
    root.obj = obj
    return settings
