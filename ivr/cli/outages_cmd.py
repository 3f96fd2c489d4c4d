"""`ivr outages add|update|end|confirm|dismiss|list` and `ivr surge status`.

Outages are what callers from a region hear before they ask (``ivr.domain.outages``).
Exit codes: 0 done, 1 refused (bad input, unknown outage, not allowed in its state),
2 usage (click), 3 the database is unreachable or not migrated.

Ending or updating an outage queues an SMS/WhatsApp for every caller who asked for
news of it (the node's outbox sends them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import click

from ivr.cli.centre_common import EXIT_REFUSED, EXIT_UNAVAILABLE, emit
from ivr.cli.centre_common import fail as _fail
from ivr.cli.common import settings_from
from ivr.config import Settings
from ivr.domain.outages import BadOutage, OutageError, OutageRecord, draft
from ivr.domain.ports import PortError
from ivr.outages.views import outage_view
from ivr.storage.db import make_engine
from ivr.storage.outages import OutageChange, SqlOutageBoard

T = TypeVar("T")

_json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON document")


def _line(o: OutageRecord) -> str:
    end = f"{o.ends_at:%Y-%m-%d %H:%M}" if o.ends_at else "open"
    text = next(iter(o.messages.values()), "")
    short = text if len(text) <= 60 else text[:57] + "..."
    return (f"{o.id:>4}  {o.state_at(datetime.now(UTC)):<9} {o.source.value:<10} "
            f"{', '.join(o.regions):<20} {o.starts_at:%Y-%m-%d %H:%M} -> {end:<16} "
            f"{o.subscribers:>3} subs  {short}")


def fail(as_json: bool, code: int, kind: str, message: str) -> NoReturn:
    _fail(as_json, code, kind, message)


def with_board(settings: Settings, as_json: bool, work: Callable[[SqlOutageBoard], T]) -> T:
    """Run ``work`` on the configured database; errors become exit codes."""
    engine = make_engine(settings.effective_database_url)
    try:
        return work(SqlOutageBoard(engine))
    except OutageError as exc:
        fail(as_json, EXIT_REFUSED, exc.code, str(exc))
    except PortError as exc:
        message = str(exc)
        if "no such table" in message or "does not exist" in message or "no such column" \
                in message:
            message += " (run `ivr db upgrade`)"
        fail(as_json, EXIT_UNAVAILABLE, "unavailable", message)
    finally:
        engine.dispose()


def parse_time(value: str | None, *, name: str, default: datetime | None = None
               ) -> datetime | None:
    """ISO 8601 (a time without a zone is read in UTC), ``now``, or ``+2h``/``+30m``."""
    if value is None:
        return default
    v = value.strip()
    now = datetime.now(UTC)
    if v == "now":
        return now
    if v.startswith("+") and v[-1:] in ("m", "h", "d") and v[1:-1].isdigit():
        unit = {"m": "minutes", "h": "hours", "d": "days"}[v[-1]]
        return now + timedelta(**{unit: int(v[1:-1])})
    try:
        at = datetime.fromisoformat(v)
    except ValueError:
        raise BadOutage(f"--{name} {value!r}: use ISO 8601 (2026-12-01T08:00+01:00), "
                        "'now' or +2h") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _messages(en: str | None, nl: str | None) -> dict[str, str]:
    return {k: v for k, v in (("en", en), ("nl", nl)) if v is not None}


@click.group()
def outages() -> None:
    """Outage announcements callers hear (per region, per language)."""


@outages.command("add")
@click.option("--region", "regions", multiple=True, required=True,
              help="region the outage covers (repeat, or comma-separated)")
@click.option("--en", help="the message in English")
@click.option("--nl", help="the message in Dutch")
@click.option("--start", help="ISO time, 'now' (default) or +30m")
@click.option("--end", help="ISO time or +4h; default: until ended")
@click.option("--by", "by", default="cli", show_default=True, help="who posts it")
@_json_option
@click.pass_context
def add_cmd(ctx: click.Context, regions: tuple[str, ...], en: str | None, nl: str | None,
            start: str | None, end: str | None, by: str, as_json: bool) -> None:
    """Post an outage: callers from REGION hear it (and may ask for SMS news)."""
    settings = settings_from(ctx)

    def work(board: SqlOutageBoard) -> OutageRecord:
        starts = parse_time(start, name="start", default=datetime.now(UTC))
        assert starts is not None
        d = draft(regions=regions, messages=_messages(en, nl), starts_at=starts,
                  ends_at=parse_time(end, name="end"), created_by=by)
        return board.add_sync(d)

    o = with_board(settings, as_json, work)
    emit(as_json, outage_view(o), f"posted outage {o.id}\n{_line(o)}")


@outages.command("update")
@click.argument("outage_id", type=int)
@click.option("--region", "regions", multiple=True, help="replace the regions")
@click.option("--en", help="new English message")
@click.option("--nl", help="new Dutch message")
@click.option("--start", help="new start")
@click.option("--end", help="new end")
@click.option("--no-end", is_flag=True, help="remove the end (until ended)")
@click.option("--notify/--no-notify", default=True, show_default=True,
              help="text the callers who asked for news")
@_json_option
@click.pass_context
def update_cmd(ctx: click.Context, outage_id: int, regions: tuple[str, ...], en: str | None,
               nl: str | None, start: str | None, end: str | None, no_end: bool,
               notify: bool, as_json: bool) -> None:
    """Change an outage's regions, messages or times."""
    settings = settings_from(ctx)

    def work(board: SqlOutageBoard) -> tuple[OutageRecord, int]:
        change = OutageChange(regions=regions or None, messages=_messages(en, nl) or None,
                              starts_at=parse_time(start, name="start"),
                              ends_at=parse_time(end, name="end"), clear_end=no_end)
        if change == OutageChange():
            raise BadOutage("nothing to change: give --region, --en, --nl, --start or --end")
        o = board.update_sync(outage_id, change)
        sent = _news(settings, board, o, "update") if notify and change.messages else 0
        return o, sent

    o, sent = with_board(settings, as_json, work)
    emit(as_json, {**outage_view(o), "notified": sent},
         f"updated outage {o.id} ({sent} subscribers notified)\n{_line(o)}")


def _news(settings: Settings, board: SqlOutageBoard, o: OutageRecord, kind: str) -> int:
    from ivr.notify.outbox import OutboxStore
    from ivr.outages.notify import notify_subscribers_sync
    from ivr.outages.surge import senders_of

    store = OutboxStore(board.engine)
    return notify_subscribers_sync(board, store,
                                   senders_of(settings.sms_from, settings.whatsapp_from),
                                   o, kind)


def _move(name: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("outage_id", type=int)
    @click.option("--by", "by", default="cli", show_default=True)
    @_json_option
    @click.pass_context
    def cmd(ctx: click.Context, outage_id: int, by: str, as_json: bool) -> None:
        settings = settings_from(ctx)

        def work(board: SqlOutageBoard) -> tuple[OutageRecord, int]:
            if name == "end":
                o = board.end_sync(outage_id)
                return o, _news(settings, board, o, "ended")
            if name == "confirm":
                return board.confirm_sync(outage_id, by=by), 0
            return board.dismiss_sync(outage_id, by=by), 0

        o, sent = with_board(settings, as_json, work)
        note = f" ({sent} subscribers notified)" if name == "end" else ""
        emit(as_json, {**outage_view(o), "notified": sent},
             f"{name}: outage {o.id} is {o.state_at(datetime.now(UTC))}{note}")
    return cmd


outages.add_command(_move("end", "End an outage now (callers stop hearing it)."))
outages.add_command(_move("confirm", "Confirm a surge's pending announcement: heard now."))
outages.add_command(_move("dismiss", "Dismiss a surge's pending announcement."))


@outages.command("list")
@click.option("--all", "include_ended", is_flag=True, help="ended and dismissed ones too")
@_json_option
@click.pass_context
def list_cmd(ctx: click.Context, include_ended: bool, as_json: bool) -> None:
    """Pending, scheduled and active outages (newest first)."""
    settings = settings_from(ctx)
    found = with_board(settings, as_json,
                       lambda board: board.list_sync(include_ended=include_ended))
    emit(as_json, {"outages": [outage_view(o) for o in found]},
         "\n".join(_line(o) for o in found) or "no outages")


@click.group()
def surge() -> None:
    """Surge detection: calls per region and intent against the learned baseline."""


@surge.command("status")
@_json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Replay the contact history into a detector and show where it stands now.

    The same learning a node does at start-up, from the shared database, so it works
    without a node; a running node's own view is `GET /api/surge`."""
    import asyncio

    from ivr.app import surge_config
    from ivr.domain.surge import SurgeDetector
    from ivr.outages.surge import SurgeService, SurgeSettings
    from ivr.telephony.callerid import region_of

    settings = settings_from(ctx)

    def work(board: SqlOutageBoard) -> dict[str, Any]:
        service = SurgeService(SurgeDetector(surge_config(settings)), board,
                               SurgeSettings(auto_activate=settings.surge_auto_activate))
        asyncio.run(service.learn(board.contact_history_sync, region_of,
                                  now=datetime.now(UTC),
                                  weeks=settings.surge_history_weeks))
        return service.status()

    doc = with_board(settings, as_json, work)
    emit(as_json, doc, _status_text(doc))


def _status_text(doc: dict[str, Any]) -> str:
    c = doc["config"]
    lines = [
        f"history: {doc['history_calls']} contacts; baseline trusted for "
        f"{doc['learned_share'] * 100:.0f}% of the week's hours",
        ("LEARNING: the baseline for this hour needs more history; a surge is "
         f"{c['learning_threshold']} calls in {c['window_s'] / 60:.0f} min (supervisor "
         "threshold)") if doc["learning"] else
        (f"a surge: >= {c['ratio']}x the baseline and >= {c['min_calls']} calls in "
         f"{c['window_s'] / 60:.0f} min, >= {c['fault_share'] * 100:.0f}% about faults"),
        f"announcements: {'active at once' if doc['auto_activate'] else 'pending a supervisor'}",
    ]
    for s in doc["surges"]:
        lines.append(f"SURGE {s['key']} since {s['since']}: {s['calls']} calls "
                     f"(expected {s['expected']})")
    if not doc["surges"]:
        lines.append("no surge now")
    for w in doc["windows"][:10]:
        lines.append(f"  {w['key']:<32} {w['calls']:>4} calls  expected {w['expected']:>6}  "
                     f"surge at {w['threshold']:>6}")
    return "\n".join(lines)
