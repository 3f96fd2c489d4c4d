"""`ivr twilio-sandbox`: run the local Twilio-compatible Messages server."""

from __future__ import annotations

import click

from ivr.cli.common import settings_from


@click.command("twilio-sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8099, show_default=True, type=int)
@click.option("--account-sid", default=None,
              help="account the client must authenticate as [default: twilio_account_sid]")
@click.option("--auth-token", default=None,
              help="checks basic auth and signs callbacks [default: twilio_auth_token]")
@click.option("--callback-delay", default=0.2, show_default=True, type=float,
              help="seconds between status callbacks (queued -> sent -> delivered)")
@click.pass_context
def twilio_sandbox(ctx: click.Context, host: str, port: int, account_sid: str | None,
                   auth_token: str | None, callback_delay: float) -> None:
    """Serve Twilio's Messages REST API locally; logs every message to stdout.

    Point the app at it with IVR_TWILIO_BASE_URL=http://HOST:PORT. Extra endpoints:
    GET /_sandbox/messages, POST /_sandbox/faults, POST /_sandbox/inbound.
    """
    import uvicorn

    from ivr.testing.twilio_sandbox import create_sandbox_app

    settings = settings_from(ctx)
    account_sid = account_sid or settings.twilio_account_sid
    app = create_sandbox_app(account_sid=account_sid,
                             auth_token=auth_token or settings.twilio_auth_token,
                             callback_delay_s=callback_delay,
                             log=lambda line: click.echo(line))
    click.echo(f"Twilio sandbox on http://{host}:{port} (account {account_sid})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
