"""`ivr callbacks list|cancel [--json]`: callbacks booked in time slots.

Exit codes: 0 done, 1 refused (unknown callback, already cancelled/done, being dialled),
2 usage (click), 3 the database is unreachable or not migrated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from ivr.callbacks.views import callback_view
from ivr.cli.centre_common import EXIT_REFUSED, EXIT_UNAVAILABLE, emit, fail
from ivr.cli.common import settings_from
from ivr.config import Settings
from ivr.domain.callbacks import CallbackError, CallbackRecord, CallbackStatus, UnknownCallback
from ivr.domain.ports import PortError
from ivr.logs import mask_text
from ivr.storage.callbacks import SqlCallbackBook
from ivr.storage.db import make_engine

T = TypeVar("T")
_json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON document")


def _line(cb: CallbackRecord) -> str:
    d = cb.draft
    question = d.question if len(d.question) <= 40 else d.question[:37] + "..."
    return (f"{cb.id[:8]}  {cb.status.value:<9} {d.skill:<10} {d.slot_start:%Y-%m-%d %H:%M} "
            f"{mask_text(d.number):<14} {cb.attempt_count} att  {cb.outcome or '':<17} "
            f"{question}")


def with_book(settings: Settings, as_json: bool, work: Callable[[SqlCallbackBook], T]) -> T:
    """Run ``work`` on the configured database; errors become exit codes."""
    engine = make_engine(settings.effective_database_url)
    try:
        return work(SqlCallbackBook(engine))
    except UnknownCallback as exc:
        fail(as_json, EXIT_REFUSED, "not_found", str(exc))
    except CallbackError as exc:
        fail(as_json, EXIT_REFUSED, "conflict", str(exc))
    except PortError as exc:
        message = str(exc)
        if "no such table" in message or "does not exist" in message:
            message += " (run `ivr db upgrade`)"
        fail(as_json, EXIT_UNAVAILABLE, "unavailable", message)
    finally:
        engine.dispose()


def _resolve(book: SqlCallbackBook, ref: str) -> str:
    """A full id, or the 8-character prefix the list shows."""
    if len(ref) >= 36:
        return ref
    matches = [cb.id for cb in book.list_sync(limit=10_000) if cb.id.startswith(ref)]
    if len(matches) != 1:
        raise UnknownCallback(f"no single callback starts with {ref!r}")
    return matches[0]


@click.group()
def callbacks() -> None:
    """Callbacks booked in time slots, and the dialer's attempts."""


@callbacks.command("list")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice([s.value for s in CallbackStatus]),
              help="only these statuses (repeat); default: all")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10_000))
@_json_option
@click.pass_context
def list_cmd(ctx: click.Context, statuses: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Callbacks, earliest slot first, with attempts and outcome."""
    settings = settings_from(ctx)
    found = with_book(settings, as_json, lambda b: b.list_sync(
        status=[CallbackStatus(s) for s in statuses], limit=limit))
    text = "\n".join(_line(cb) for cb in found) or "no callbacks"
    emit(as_json, {"callbacks": [callback_view(cb) for cb in found], "count": len(found)},
         text)


@callbacks.command("cancel")
@click.argument("callback_id")
@_json_option
@click.pass_context
def cancel_cmd(ctx: click.Context, callback_id: str, as_json: bool) -> None:
    """Cancel a booked callback (frees its place in the slot)."""
    settings = settings_from(ctx)
    cb = with_book(settings, as_json, lambda b: b.cancel_sync(_resolve(b, callback_id)))
    emit(as_json, callback_view(cb), f"cancelled {cb.id}\n{_line(cb)}")
