"""`ivr outages ...` and `ivr surge status` on a real SQLite file: one JSON document per
command, clear refusals with exit code 1, subscribers' news queued in the outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from ivr.cli import cli
from ivr.storage.db import make_engine, upgrade
from ivr.storage.outbox_tables import outbox
from ivr.storage.tables import contacts


@pytest.fixture
def base(tmp_path: Path) -> list[str]:
    url = f"sqlite:///{tmp_path / 'kanaal.db'}"
    upgrade(url)
    return ["--env-file", str(tmp_path / "none.env"), "--set", f"database_url={url}",
            "--set", f"data_dir={tmp_path}"]


def run(base: list[str], *args: str, code: int = 0) -> dict[str, object]:
    done = CliRunner().invoke(cli, [*base, *args])
    assert done.exit_code == code, done.output
    doc = json.loads(done.stdout)
    assert isinstance(doc, dict)
    return doc


def test_add_update_end_list(base: list[str]) -> None:
    """Post for two regions, change the Dutch text, end it; list shows it only while on."""
    posted = run(base, "outages", "add", "--region", "Utrecht,Amersfoort", "--en",
                 "No internet.", "--nl", "Geen internet.", "--end", "+4h", "--by", "sam",
                 "--json")
    oid = str(posted["id"])
    assert posted["regions"] == ["Utrecht", "Amersfoort"] and posted["status"] == "active"
    assert posted["created_by"] == "sam"
    updated = run(base, "outages", "update", oid, "--nl", "Morgen opgelost.", "--json")
    assert updated["messages"] == {"en": "No internet.", "nl": "Morgen opgelost."}
    listed = run(base, "outages", "list", "--json")
    assert [o["id"] for o in listed["outages"]] == [posted["id"]]  # type: ignore[index]
    ended = run(base, "outages", "end", oid, "--json")
    assert ended["status"] == "ended"
    assert run(base, "outages", "list", "--json")["outages"] == []
    assert len(run(base, "outages", "list", "--all", "--json")["outages"]) == 1  # type: ignore[arg-type]


def test_refusals_say_why(base: list[str]) -> None:
    """Empty message, end before start, unknown id, ending twice, confirming an active one."""
    bad = run(base, "outages", "add", "--region", "X", "--en", " ", "--json", code=1)
    assert bad["error"] == "bad_outage" and "empty" in str(bad["message"])
    bad = run(base, "outages", "add", "--region", "X", "--en", "x", "--start", "+2h",
              "--end", "+1h", "--json", code=1)
    assert "after the start" in str(bad["message"])
    assert run(base, "outages", "end", "999", "--json", code=1)["error"] == "not_found"
    oid = str(run(base, "outages", "add", "--region", "X", "--en", "x", "--json")["id"])
    run(base, "outages", "end", oid, "--json")
    assert run(base, "outages", "end", oid, "--json", code=1)["error"] == "conflict"
    other = str(run(base, "outages", "add", "--region", "Y", "--en", "y", "--json")["id"])
    assert run(base, "outages", "confirm", other, "--json", code=1)["error"] == "conflict"


def test_ending_queues_news_for_subscribers(base: list[str], tmp_path: Path) -> None:
    """A caller who asked for news gets an SMS in the outbox when the outage ends."""
    oid = int(run(base, "outages", "add", "--region", "Utrecht", "--en", "x", "--json")["id"])
    from ivr.storage.outages import SqlOutageBoard

    engine = make_engine(f"sqlite:///{tmp_path / 'kanaal.db'}")
    SqlOutageBoard(engine).subscribe_sync(oid, number="+31302345678", channel="sms",
                                          language="nl", contact_id="c1")
    assert run(base, "outages", "end", str(oid), "--json")["notified"] == 1
    with engine.connect() as conn:
        row = conn.execute(select(outbox.c.to_addr, outbox.c.body, outbox.c.state)).one()
    assert row.to_addr == "+31302345678" and "verholpen" in row.body and row.state == "pending"
    engine.dispose()


def test_surge_status_learns_from_history(base: list[str], tmp_path: Path) -> None:
    """No history: learning. Then 25 fault calls from Utrecht numbers in the last
    10 minutes of contact history: a surge in region:Utrecht."""
    doc = run(base, "surge", "status", "--json")
    assert doc["learning"] is True and doc["surges"] == []
    engine = make_engine(f"sqlite:///{tmp_path / 'kanaal.db'}")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for i in range(25):
            conn.execute(insert(contacts).values(
                id=f"c{i}", channel="voice", caller=f"+3130234{i:04d}", language="nl",
                started_at=now - timedelta(seconds=300 - i * 10), intent="report_fault",
                transcript=[], steps=[]))
    engine.dispose()
    doc = run(base, "surge", "status", "--json")
    assert doc["history_calls"] == 25
    assert [s["key"] for s in doc["surges"]] == ["region:Utrecht"]  # type: ignore[index]
