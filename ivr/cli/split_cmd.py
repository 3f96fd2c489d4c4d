"""`ivr split set SKILL own=70 partner=30` and `ivr split show [SKILL]`: own/partner load splits.

Percentages of a skill's calls per side; smart routing alternates sides to match
them (``ivr.domain.smart_routing``). Exit codes: see :mod:`ivr.cli.centre_common`.
"""

from __future__ import annotations

import click

from ivr.cli.centre_common import EXIT_REFUSED, emit, fail, run_centre, with_directory
from ivr.cli.common import settings_from
from ivr.contact_centre.views import split_view
from ivr.domain.centre_errors import BadSplit
from ivr.domain.staffing import SplitSetting
from ivr.storage.agents import SqlAgentDirectory

_json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON document")


@click.group()
def split() -> None:
    """Own/partner load split per skill."""


def _line(s: SplitSetting) -> str:
    return f"{s.skill:<14} own {s.own_pct:>3}%  partner {s.partner_pct:>3}%"


def parse_sides(sides: tuple[str, ...]) -> tuple[int, int]:
    """``("own=70", "partner=30")`` -> (70, 30); both sides, once each, whole numbers."""
    got: dict[str, int] = {}
    for item in sides:
        side, sep, pct = item.partition("=")
        side = side.strip().lower()
        if not sep or side not in ("own", "partner") or side in got:
            raise BadSplit(f"{item!r}: give each side once, as own=N partner=M")
        try:
            got[side] = int(pct)
        except ValueError:
            raise BadSplit(f"{item!r}: {side} must be a whole number of percent") from None
    if set(got) != {"own", "partner"}:
        raise BadSplit("give both sides: own=N partner=M (together 100)")
    return got["own"], got["partner"]


@split.command("set")
@click.argument("skill")
@click.argument("sides", nargs=-1, required=True)
@_json_option
@click.pass_context
def set_cmd(ctx: click.Context, skill: str, sides: tuple[str, ...], as_json: bool) -> None:
    """Set SKILL's split, e.g. `ivr split set general own=70 partner=30`."""
    settings = settings_from(ctx)

    async def work() -> SplitSetting:
        own, partner = parse_sides(sides)

        async def q(d: SqlAgentDirectory) -> SplitSetting:
            return await d.set_split(skill, own, partner)
        return await with_directory(settings, q)

    stored = run_centre(as_json, work)
    emit(as_json, split_view(stored), _line(stored))


@split.command("show")
@click.argument("skill", required=False)
@_json_option
@click.pass_context
def show_cmd(ctx: click.Context, skill: str | None, as_json: bool) -> None:
    """Show every split, or SKILL's (skills without a split route to either side)."""
    settings = settings_from(ctx)

    async def work() -> list[SplitSetting]:
        async def q(d: SqlAgentDirectory) -> list[SplitSetting]:
            if skill is None:
                return list(await d.list_splits())
            one = await d.get_split(skill)
            return [one] if one is not None else []
        return await with_directory(settings, q)

    found = run_centre(as_json, work)
    if skill is not None and not found:
        fail(as_json, EXIT_REFUSED, "not_found", f"no load split for skill {skill!r}")
    emit(as_json, {"splits": [split_view(s) for s in found]},
         "\n".join(_line(s) for s in found) or "no load splits")
