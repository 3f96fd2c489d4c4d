"""Helpers shared by the sub-commands: settings loading with friendly errors."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click

from ivr.config import ConfigError, Settings, load_settings, parse_overrides
from ivr.logs import configure_logging


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
    # Re-configure now the settings are known (the group configured defaults).
    configure_logging(settings.log_level, settings.log_format)
    obj["settings"] = settings
    root.obj = obj
    return settings


@contextlib.contextmanager
def stdout_to_stderr(active: bool = True) -> Iterator[None]:
    """While a ``--json`` command works, send stray prints to stderr.

    Its one JSON document is written after the block, so stdout carries nothing else:
    ``serve_node`` builds its app with the sandbox printing every message it receives,
    and the sandbox prints from its own thread (``redirect_stdout`` swaps ``sys.stdout``
    for every thread).
    """
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield
