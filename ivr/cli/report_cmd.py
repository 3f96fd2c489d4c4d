"""`ivr report [--hours H | --since D --until D] [--json | --csv]`: the contact report.

Contacts by channel, containment, deflection and transfer rates, the drop-off
funnel per step, contact reasons per day, service level, wait and handle time per
skill, CSAT, repeat contacts within 7 days (``ivr.domain.reports``). Exit code 2
for a bad window, 3 when the database cannot be read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ivr.cli.common import settings_from
from ivr.domain.reports import BadReportWindow, report_csv, report_window

EXIT_DATABASE = 3


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _tables(doc: dict[str, Any]) -> list[Table]:
    head = Table(title=f"Contacts {doc['since'][:16]} .. {doc['until'][:16]} UTC")
    for col in ("contacts", "containment", "deflection", "transfer", "repeat 7d", "CSAT"):
        head.add_column(col, justify="right")
    head.add_row(str(doc["contacts"]), _pct(doc["containment_rate"]),
                 _pct(doc["deflection_rate"]), _pct(doc["transfer_rate"]),
                 _pct(doc["repeat_rate_7d"]), str(doc["csat"]["mean"] or "-"))
    channels = Table(title="By channel and intent")
    channels.add_column("kind")
    channels.add_column("key")
    channels.add_column("contacts", justify="right")
    for kind in ("by_channel", "by_intent", "by_outcome"):
        for key, n in doc[kind]:
            channels.add_row(kind[3:], key, str(n))
    funnel = Table(title="Drop-off funnel")
    for col in ("step", "reached", "dropped", "drop rate"):
        funnel.add_column(col, justify="right" if col != "step" else "left")
    for row in doc["funnel"]:
        funnel.add_row(row["step"], str(row["reached"]), str(row["dropped"]),
                       _pct(row["drop_rate"]))
    skills = Table(title="Per skill")
    for col in ("skill", "offered", "answered", "service level", "wait s", "handle s"):
        skills.add_column(col, justify="right" if col != "skill" else "left")
    for row in doc["skills"]:
        skills.add_row(row["skill"], str(row["offered"]), str(row["answered"]),
                       _pct(row["service_level"]), str(row["mean_wait_s"] or "-"),
                       str(row["mean_handle_s"] or "-"))
    return [head, channels, funnel, skills]


@click.command()
@click.option("--hours", type=float, default=None, help="the last H hours (default 24)")
@click.option("--since", default=None, help="start: YYYY-MM-DD (UTC day) or YYYY-MM-DDTHH:MM")
@click.option("--until", default=None, help="end: a UTC day (included) or a time; default now")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option("--csv", "as_csv", is_flag=True, help="print CSV: section,key,metric,value")
@click.pass_context
def report(ctx: click.Context, hours: float | None, since: str | None, until: str | None,
           as_json: bool, as_csv: bool) -> None:
    """Contact report for supervisors: channels, containment, funnel, skills, CSAT."""
    from ivr.domain.ports import PortError
    from ivr.storage.db import make_engine
    from ivr.storage.reports import SqlReportStore

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    settings = settings_from(ctx)
    try:
        start, end = report_window(datetime.now(UTC), hours=hours, since=since, until=until)
    except BadReportWindow as exc:
        raise click.UsageError(str(exc)) from exc
    engine = make_engine(settings.database_url)
    try:
        store = SqlReportStore(engine)
        try:
            doc = _run(store, start, end)
        except PortError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(EXIT_DATABASE) from exc
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False))
    elif as_csv:
        click.echo(report_csv(doc), nl=False)
    else:
        console = Console()
        for table in _tables(doc):
            console.print(table)


def _run(store: Any, start: datetime, end: datetime) -> dict[str, Any]:
    import asyncio

    result: dict[str, Any] = asyncio.run(store.report(start, end)).as_dict()
    return result
