"""`ivr callbacks list|cancel` on a real SQLite file: one JSON document per command, a
second cancel and an unknown id refused with exit code 1, no database exit code 3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from ivr.cli import cli
from ivr.domain.callbacks import CallbackDraft, SlotPolicy, candidate_starts
from ivr.storage.callbacks import SqlCallbackBook
from ivr.storage.db import make_engine, upgrade


def run(base: list[str], *args: str, code: int = 0) -> dict[str, object]:
    done = CliRunner().invoke(cli, [*base, *args])
    assert done.exit_code == code, done.output
    doc = json.loads(done.stdout)
    assert isinstance(doc, dict)
    return doc


def test_list_and_cancel(tmp_path: Path) -> None:
    """Listed with its question; cancelled by its short id; twice -> 1; unknown -> 1."""
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    base = ["--env-file", str(tmp_path / "none.env"), "--set", f"database_url={url}",
            "--set", f"data_dir={tmp_path}"]
    policy = SlotPolicy()
    start = candidate_starts(datetime.now(UTC), policy, 1)[0]
    book = SqlCallbackBook(make_engine(url))
    cb = book.book_sync(CallbackDraft(
        contact_id="c", number="+31302345678", language="nl", skill="billing",
        slot_start=start, slot_end=start + timedelta(minutes=30), question="invoice"),
        policy=policy, cap=1)
    book.engine.dispose()
    listed = run(base, "callbacks", "list", "--json")
    assert listed["count"] == 1
    assert listed["callbacks"][0]["question"] == "invoice"  # type: ignore[index]
    done = run(base, "callbacks", "cancel", cb.id[:8], "--json")
    assert done["status"] == "cancelled" and done["id"] == cb.id
    again = run(base, "callbacks", "cancel", cb.id, "--json", code=1)
    assert again["error"] == "conflict"
    assert run(base, "callbacks", "cancel", "zzzz", "--json", code=1)["error"] == "not_found"
    assert run(base, "callbacks", "list", "--status", "booked", "--json")["count"] == 0
    text = CliRunner().invoke(cli, [*base, "callbacks", "list"]).stdout
    assert "cancelled" in text and "+31302345678" not in text  # number masked


def test_no_database_is_exit_3(tmp_path: Path) -> None:
    """Not migrated: exit code 3 with a hint."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    base = ["--env-file", str(tmp_path / "none.env"), "--set", f"database_url={url}",
            "--set", f"data_dir={tmp_path}"]
    doc = run(base, "callbacks", "list", "--json", code=3)
    assert "ivr db upgrade" in str(doc["message"])
