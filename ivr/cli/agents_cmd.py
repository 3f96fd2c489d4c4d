"""`ivr agents list|add|login|logout|pause|resume`: the agent directory and queue membership.

login/logout/pause/resume connect to Asterisk AMI (``IVR_AMI_*`` settings), act,
and disconnect. See :mod:`ivr.cli.centre_common` for exit codes.
"""

from __future__ import annotations

from typing import Any

import click

from ivr.cli.centre_common import (
    EXIT_REFUSED,
    OnDemandAmi,
    emit,
    run_centre,
    with_directory,
)
from ivr.cli.common import settings_from
from ivr.contact_centre.membership import Membership, MembershipResult
from ivr.contact_centre.views import agent_view, membership_view
from ivr.domain.centre import MAX_PROFICIENCY, MIN_PROFICIENCY, Agent, CentreKind
from ivr.domain.centre_errors import BadAgentProfile
from ivr.domain.staffing import AgentRecord
from ivr.storage.agents import SqlAgentDirectory

_json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON document")


@click.group()
def agents() -> None:
    """Agents: profiles, skills, login and pause (dynamic app_queue membership)."""


def _line(a: AgentRecord) -> str:
    state = "paused" if a.paused else "logged in" if a.logged_in else "logged out"
    if a.paused and a.pause_reason:
        state += f" ({a.pause_reason})"
    skills = ", ".join(f"{s}={p}" for s, p in sorted(a.profile.skills.items()))
    inactive = "" if a.active else " [inactive]"
    return (f"{a.code:<6} {a.name:<20} {a.interface:<16} {a.profile.kind.value:<7} "
            f"{a.profile.site:<12} {state:<20} {skills}{inactive}")


@agents.command("list")
@_json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show every agent with skills and login state."""
    settings = settings_from(ctx)

    async def work() -> list[AgentRecord]:
        async def q(d: SqlAgentDirectory) -> list[AgentRecord]:
            return list(await d.list_agents())
        return await with_directory(settings, q)

    found = run_centre(as_json, work)
    emit(as_json, {"agents": [agent_view(a) for a in found]},
         "\n".join(_line(a) for a in found) or "no agents (ivr agents add ...)")


def _parse_skills(items: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        skill, sep, level = item.partition("=")
        if not sep or not skill.strip() or not level.strip().isdigit():
            raise click.BadParameter(f"{item!r}: use SKILL=PROFICIENCY, e.g. billing=5",
                                     param_hint="--skill")
        out[skill.strip()] = int(level)
    return out


def _profile(code: str, opts: dict[str, Any]) -> Agent:
    try:
        return Agent(
            id=code, name=opts["name"], interface=opts["interface"], site=opts["site"],
            region=opts["region"], centre=opts["centre"], kind=CentreKind(opts["kind"]),
            languages=frozenset(x.strip() for x in opts["languages"].split(",") if x.strip()),
            skills=_parse_skills(opts["skill"]))
    except ValueError as exc:  # proficiency outside 1..5
        raise BadAgentProfile(str(exc)) from exc


@agents.command("add")
@click.argument("code")
@click.option("--name", required=True, help="display name (MemberName in app_queue)")
@click.option("--interface", required=True, help="Asterisk interface, e.g. PJSIP/agent1")
@click.option("--site", default="", help="site, e.g. Amsterdam")
@click.option("--region", default="", help="region, e.g. Noord-Holland")
@click.option("--centre", default="", help="centre name, e.g. Partner BV")
@click.option("--kind", type=click.Choice([k.value for k in CentreKind]), default="own",
              show_default=True, help="own centre or outsourcing partner")
@click.option("--languages", default="", help="comma-separated, e.g. nl,en")
@click.option("--skill", multiple=True, metavar="SKILL=N",
              help=f"skill and proficiency {MIN_PROFICIENCY}..{MAX_PROFICIENCY} (repeatable)")
@click.option("--update", is_flag=True, help="replace the profile of an existing agent")
@click.option("--inactive", is_flag=True, help="store the agent as inactive (cannot log in)")
@_json_option
@click.pass_context
def add_cmd(ctx: click.Context, /, code: str, as_json: bool, update: bool, inactive: bool,
            **opts: Any) -> None:
    """Add an agent (or with --update replace its profile and skills)."""
    settings = settings_from(ctx)

    async def work() -> AgentRecord:
        profile = _profile(code, opts)

        async def q(d: SqlAgentDirectory) -> AgentRecord:
            if update:
                return await d.update_agent(profile, active=not inactive)
            return await d.add_agent(profile, active=not inactive)
        return await with_directory(settings, q)

    record = run_centre(as_json, work)
    emit(as_json, agent_view(record), f"{'updated' if update else 'added'}: {_line(record)}")


def _membership_cmd(ctx: click.Context, as_json: bool, code: str, action: str,
                    reason: str | None = None) -> None:
    """Run one Membership action with an AMI connection made for it."""
    settings = settings_from(ctx)

    async def work() -> MembershipResult | AgentRecord:
        ami = OnDemandAmi(settings)
        try:
            async def q(d: SqlAgentDirectory) -> MembershipResult | AgentRecord:
                m = Membership(d, ami)
                if action == "login":
                    return await m.login(code)
                if action == "logout":
                    return await m.logout(code)
                if action == "pause":
                    return await m.pause(code, reason)
                return await m.resume(code)
            return await with_directory(settings, q)
        finally:
            await ami.close()

    out = run_centre(as_json, work)
    if isinstance(out, AgentRecord):
        emit(as_json, agent_view(out), _line(out))
        return
    emit(as_json, membership_view(out),
         f"{code} {action}: {', '.join(out.queues) or 'no queues'}")
    if not out.complete:
        # Done for the other skills, but an operator must fix the ones listed.
        click.echo(f"error: agent {code}: {out.problem_text()}", err=True)
        ctx.exit(EXIT_REFUSED)


@agents.command("login")
@click.argument("code")
@_json_option
@click.pass_context
def login_cmd(ctx: click.Context, code: str, as_json: bool) -> None:
    """Log an agent in: QueueAdd to each skill's queue (penalty = 5 - proficiency)."""
    _membership_cmd(ctx, as_json, code, "login")


@agents.command("logout")
@click.argument("code")
@_json_option
@click.pass_context
def logout_cmd(ctx: click.Context, code: str, as_json: bool) -> None:
    """Log an agent out: QueueRemove from each skill's queue."""
    _membership_cmd(ctx, as_json, code, "logout")


@agents.command("pause")
@click.argument("code")
@click.option("--reason", default=None, help="pause reason (break, training, ...)")
@_json_option
@click.pass_context
def pause_cmd(ctx: click.Context, code: str, reason: str | None, as_json: bool) -> None:
    """Pause a logged-in agent in every queue."""
    _membership_cmd(ctx, as_json, code, "pause", reason)


@agents.command("resume")
@click.argument("code")
@_json_option
@click.pass_context
def resume_cmd(ctx: click.Context, code: str, as_json: bool) -> None:
    """Unpause a logged-in agent."""
    _membership_cmd(ctx, as_json, code, "resume")

