"""`ivr users add|passwd|disable|enable|token|revoke|list`: web sign-in accounts.

Passwords come from ``--password-stdin`` (one line, for scripts and CI, which have no
TTY) or from a hidden prompt asked twice. Personal API tokens are printed once and
stored only as SHA-256 digests: a lost token is revoked and a new one made.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from ivr.cli.common import settings_from
from ivr.storage.auth_tables import ROLES
from ivr.storage.db import make_engine, upgrade
from ivr.storage.users import SqlUserStore, UserError
from ivr.web.security import Passwords

MIN_PASSWORD = 10


@click.group()
def users() -> None:
    """Users of the agent desktop and supervisor console."""


@contextmanager
def _store(ctx: click.Context) -> Iterator[SqlUserStore]:
    url = settings_from(ctx).effective_database_url
    upgrade(url)  # the users tables come with migration 0004
    engine = make_engine(url)
    try:
        yield SqlUserStore(engine)
    finally:
        engine.dispose()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"password must have at least {MIN_PASSWORD} characters")
    return password


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="what the user may do")
@click.option("--agent", "agent_code", default=None, metavar="CODE",
              help="agent profile (agents.code) this user signs in to queues as")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin (one line)")
@click.pass_context
def add_cmd(ctx: click.Context, username: str, role: str, agent_code: str | None,
            password_stdin: bool) -> None:
    """Create a user."""
    password = _read_password(password_stdin)
    with _store(ctx) as store:
        try:
            user = store.add_user(username, Passwords().hash(password), role, agent_code)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
    suffix = f", agent {user.agent_code}" if user.agent_code else ""
    click.echo(f"user {user.username} added ({user.role}{suffix})")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin (one line)")
@click.pass_context
def passwd_cmd(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a user's password (signs them out everywhere)."""
    password = _read_password(password_stdin)
    with _store(ctx) as store:
        if not store.set_password(username, Passwords().hash(password)):
            raise click.ClickException(f"no user {username!r}")
    click.echo(f"password of {username} changed; their sessions ended")


@users.command("disable")
@click.argument("username")
@click.pass_context
def disable_cmd(ctx: click.Context, username: str) -> None:
    """Disable a user: sign-in, sessions and their API tokens stop working."""
    with _store(ctx) as store:
        if not store.set_active(username, False):
            raise click.ClickException(f"no user {username!r}")
    click.echo(f"user {username} disabled")


@users.command("enable")
@click.argument("username")
@click.pass_context
def enable_cmd(ctx: click.Context, username: str) -> None:
    """Enable a disabled user again."""
    with _store(ctx) as store:
        if not store.set_active(username, True):
            raise click.ClickException(f"no user {username!r}")
    click.echo(f"user {username} enabled")


@users.command("token")
@click.argument("username")
@click.argument("name")
@click.pass_context
def token_cmd(ctx: click.Context, username: str, name: str) -> None:
    """Create a personal API token NAME for USERNAME and print it (once)."""
    with _store(ctx) as store:
        try:
            token = store.create_token(username, name)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"token {name!r} for {username} (shown once; send as "
               "'Authorization: Bearer <token>'):", err=True)
    click.echo(token)


@users.command("revoke")
@click.argument("username")
@click.argument("name")
@click.pass_context
def revoke_cmd(ctx: click.Context, username: str, name: str) -> None:
    """Revoke USERNAME's API token(s) called NAME."""
    with _store(ctx) as store:
        count = store.revoke_token(username, name)
    if not count:
        raise click.ClickException(f"no active token {name!r} for {username!r}")
    click.echo(f"revoked {count} token(s) {name!r} of {username}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List users with role, agent code, state and active API tokens."""
    with _store(ctx) as store:
        found, tokens = store.list_users(), store.token_counts()
    rows = [{"username": u.username, "role": u.role, "agent_code": u.agent_code,
             "active": u.active, "created_at": u.created_at.isoformat(),
             "api_tokens": tokens.get(u.id, 0)} for u in found]
    if as_json:
        click.echo(json.dumps({"users": rows}, indent=2))
        return
    if not rows:
        click.echo("no users (add one: ivr users add NAME --role admin)")
    for r in rows:
        state = "active" if r["active"] else "disabled"
        agent = f" agent={r['agent_code']}" if r["agent_code"] else ""
        click.echo(f"{r['username']:<24} {r['role']:<10} {state:<8}{agent} "
                   f"tokens={r['api_tokens']}")
