"""The `ivr` command. Each sub-command lives in its own module of this package.

Modules are imported lazily by name so that `ivr config check` does not pay for
loading speech models or FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# sub-command name -> "module:attribute" (a click.Command or click.Group)
COMMANDS: dict[str, str] = {
    "config": "ivr.cli.config_cmd:config",
    "db": "ivr.cli.db_cmd:db",
    "call": "ivr.cli.call_cmd:call",
    "demo": "ivr.cli.demo_cmd:demo",
    "serve": "ivr.cli.serve_cmd:serve",
    "queues": "ivr.cli.queues_cmd:queues",
    "intents": "ivr.cli.intents_cmd:intents",
    "transcribe": "ivr.cli.speech_cmd:transcribe",
    "models": "ivr.cli.speech_cmd:models",
    "sounds": "ivr.cli.speech_cmd:sounds",
    "rig": "ivr.cli.rig_cmd:rig",
    "twilio-sandbox": "ivr.cli.twilio_cmd:twilio_sandbox",
    "users": "ivr.cli.users_cmd:users",
    "agents": "ivr.cli.agents_cmd:agents",
    "split": "ivr.cli.split_cmd:split",
    "outages": "ivr.cli.outages_cmd:outages",
    "surge": "ivr.cli.outages_cmd:surge",
    "report": "ivr.cli.report_cmd:report",
    "callbacks": "ivr.cli.callbacks_cmd:callbacks",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd


@click.group(cls=LazyGroup)
@click.option("--env-file", type=click.Path(dir_okay=False), default=".env", show_default=True,
              help="dotenv file with IVR_* settings (missing file is fine)")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="override a setting, e.g. --set database_url=sqlite:///x.db")
@click.pass_context
def cli(ctx: click.Context, env_file: str, overrides: tuple[str, ...]) -> None:
    """Kanaal: speech-routing voice IVR for Asterisk."""
    from ivr.logs import configure_logging

    # Defaults until a sub-command reads the settings (settings_from re-configures with
    # IVR_LOG_LEVEL / IVR_LOG_FORMAT); commands that need no settings keep these.
    configure_logging()
    ctx.obj = {"env_file": env_file, "overrides": overrides}


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="ivr")
