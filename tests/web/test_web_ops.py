"""/healthz reports the real database and outbox state; /metrics speaks Prometheus text."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import insert
from web_helpers import BASE, sign_in

from ivr.domain.model import Outcome, Step
from ivr.storage.db import make_engine
from ivr.storage.outbox_tables import outbox
from ivr.testing.web import CallScript, WebCore, cheap_passwords, play_call
from ivr.web.app import create_web_app
from ivr.web.ops import Health, exposition


def _queue_message(core: WebCore) -> None:
    now = datetime.now(UTC)
    with core.engine.begin() as conn:
        conn.execute(insert(outbox).values(
            id="m-1", channel="sms", to_addr="+31612345678", from_addr="+3197010200300",
            body="your link", language="en", state="pending", next_attempt_at=now,
            created_at=now, updated_at=now))


async def test_healthz_reports_database_and_outbox_backlog(core: WebCore,
                                                           client: httpx.AsyncClient) -> None:
    """Open to probes: the schema revision the database answered with, and the backlog."""
    r = await client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["schema"] and body["outbox_backlog"] == 0
    _queue_message(core)
    assert (await client.get("/healthz")).json()["outbox_backlog"] == 1


async def test_healthz_is_503_when_the_database_is_unreachable(core: WebCore,
                                                               tmp_path: Path) -> None:
    """A database that cannot be opened makes the node unhealthy (no error text leaks)."""
    # A directory where the database file should be: SQLite cannot open it.
    broken_dir = tmp_path / "not-a-file.db"
    broken_dir.mkdir()
    broken = replace(core, engine=make_engine(f"sqlite:///{broken_dir}"))
    web = create_web_app(broken, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        r = await c.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "database": "down", "schema": None,
                        "outbox_backlog": None}
    broken.engine.dispose()


async def test_healthz_is_503_when_the_schema_is_gone(core: WebCore, tmp_path: Path) -> None:
    """An empty database (the file replaced, never migrated) is not healthy either."""
    empty = replace(core, engine=make_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    web = create_web_app(empty, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        assert (await c.get("/healthz")).status_code == 503
    empty.engine.dispose()


async def test_metrics_in_prometheus_text_format(core: WebCore,
                                                 client: httpx.AsyncClient) -> None:
    """Supervisors scrape calls by outcome, drop-offs, hand-offs per skill, outbox backlog."""
    await play_call(core, CallScript("1008", "my invoice is wrong", "invoice_question", 0.91,
                                     "billing"))
    await play_call(core, CallScript(None, "uh", "unknown", 0.2, "general",
                                     outcome=Outcome.ABANDONED, dropped_at=Step.QUESTION))
    _queue_message(core)
    await sign_in(client, "super")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(r.text.splitlines())
    assert 'kanaal_calls_total{outcome="agent"} 1' in lines
    assert 'kanaal_calls_total{outcome="abandoned"} 1' in lines
    assert 'kanaal_dropoffs_total{step="question"} 1' in lines
    assert 'kanaal_handoffs_total{skill="billing"} 1' in lines
    assert 'kanaal_outbox_messages{state="pending"} 1' in lines
    assert "kanaal_database_up 1" in lines and "kanaal_screenpop_desktops 0" in lines
    assert "# TYPE kanaal_calls_total counter" in lines


def test_exposition_escapes_label_values() -> None:
    """Label values with quotes, backslashes or newlines cannot break the format."""
    text = exposition({"intents": {'say "hi"\\\n': 2}}, Health(False, None, None), None)
    assert 'kanaal_intents_total{intent="say \\"hi\\"\\\\\\n"} 2' in text
    assert "kanaal_database_up 0" in text and "kanaal_outbox_messages" not in text
