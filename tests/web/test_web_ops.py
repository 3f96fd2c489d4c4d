"""/healthz is liveness; /readyz reports the real database, ARI and AMI state; /metrics speaks
Prometheus text (parsed here with prometheus_client's own parser)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert
from web_helpers import BASE, sign_in

from ivr.contact_centre.service import ContactCentre
from ivr.domain.model import Outcome, Step
from ivr.metrics import LiveState, NodeTelemetry
from ivr.storage.db import make_engine
from ivr.storage.outbox_tables import outbox
from ivr.telephony.ari.channel import CallStats, ResponseTiming
from ivr.testing.fake_ami import FakeAmiServer
from ivr.testing.web import CallScript, WebCore, cheap_passwords, play_call
from ivr.web.app import create_web_app


def _queue_message(core: WebCore) -> None:
    now = datetime.now(UTC)
    with core.engine.begin() as conn:
        conn.execute(insert(outbox).values(
            id="m-1", channel="sms", to_addr="+31612345678", from_addr="+3197010200300",
            body="your link", language="en", state="pending", next_attempt_at=now,
            created_at=now, updated_at=now))


async def test_healthz_is_liveness_only(core: WebCore, client: httpx.AsyncClient,
                                        tmp_path: Path) -> None:
    """Liveness answers while the process does, even with the database gone (a restart
    would not bring the database back and would drop the node's calls)."""
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "alive"
    broken_dir = tmp_path / "not-a-file.db"
    broken_dir.mkdir()
    broken = replace(core, engine=make_engine(f"sqlite:///{broken_dir}"))
    web = create_web_app(broken, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).status_code == 503
    broken.engine.dispose()


async def test_readyz_reports_schema_and_outbox_backlog(core: WebCore,
                                                         client: httpx.AsyncClient) -> None:
    """Open to probes: the schema revision the database answered with, and the backlog."""
    r = await client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready" and body["checks"]["database"] == "ok"
    assert body["schema"] and body["outbox_backlog"] == 0
    _queue_message(core)
    assert (await client.get("/readyz")).json()["outbox_backlog"] == 1


async def test_readyz_is_503_when_the_database_is_unreachable(core: WebCore,
                                                              tmp_path: Path) -> None:
    """A database that cannot be opened makes the node not ready (no error text leaks)."""
    # A directory where the database file should be: SQLite cannot open it.
    broken_dir = tmp_path / "not-a-file.db"
    broken_dir.mkdir()
    broken = replace(core, engine=make_engine(f"sqlite:///{broken_dir}"))
    web = create_web_app(broken, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "not_ready", "checks": {"database": "down"},
                        "schema": None, "outbox_backlog": None,
                        "reasons": ["database not reachable or not migrated"]}
    broken.engine.dispose()


async def test_readyz_is_503_when_the_schema_is_gone(core: WebCore, tmp_path: Path) -> None:
    """An empty database (the file replaced, never migrated) is not ready either."""
    empty = replace(core, engine=make_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    web = create_web_app(empty, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        assert (await c.get("/readyz")).status_code == 503
    empty.engine.dispose()


async def _until(pred: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll live state that changes on AMI events (there is nothing to await)."""
    async with asyncio.timeout(timeout_s):
        for _ in itertools.count():  # a for loop: ruff's ASYNC110 wants no sleep-while
            if pred():
                return
            await asyncio.sleep(0.02)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the exposition with prometheus_client's own parser (a scraper's view)."""
    return {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
            for fam in text_string_to_metric_families(text) for smp in fam.samples}


async def test_metrics_in_prometheus_text_format(core: WebCore,
                                                 client: httpx.AsyncClient) -> None:
    """Supervisors scrape calls by outcome/scenario, drop-offs, hand-offs, outbox, errors."""
    await play_call(core, CallScript("1008", "my invoice is wrong", "invoice_question", 0.91,
                                     "billing"))
    await play_call(core, CallScript(None, "uh", "unknown", 0.2, "general",
                                     outcome=Outcome.ABANDONED, dropped_at=Step.QUESTION))
    _queue_message(core)
    await sign_in(client, "super")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    m = _samples(r.text)
    assert m[("kanaal_calls_total", (("channel", "voice"), ("outcome", "agent"),
                                     ("scenario", "S4")))] == 1
    assert m[("kanaal_calls_total", (("channel", "voice"), ("outcome", "abandoned"),
                                     ("scenario", "none")))] == 1
    assert m[("kanaal_dropoffs_total", (("step", "question"),))] == 1
    assert m[("kanaal_handoffs_total", (("skill", "billing"),))] == 1
    assert m[("kanaal_outbox_messages", (("state", "pending"),))] == 1
    assert m[("kanaal_calls_active", ())] == 0  # both calls ended
    assert m[("kanaal_database_up", ())] == 1 and m[("kanaal_screenpop_desktops", ())] == 0
    # No ARI or AMI on this app: the links are absent, not reported down.
    assert not any(name == "kanaal_connection_up" for name, _ in m)
    assert "# TYPE kanaal_turn_gap_seconds histogram" in r.text


async def test_metrics_need_a_supervisor(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 401
    await sign_in(client, "agent1")
    assert (await client.get("/metrics")).status_code == 403


def test_turn_gaps_asr_latency_and_errors_by_kind() -> None:
    """An ARI call's turns land in the histograms; ERROR logs of ``ivr`` count by module."""
    t = NodeTelemetry()
    stats = CallStats(responses=[ResponseTiming(600, 120, 450, "silence"),
                                 ResponseTiming(600, 900, 1400, "silence")],
                      media_errors=["rtp gone"])
    t.observe_call(stats)
    logger = logging.getLogger("ivr.telephony.ari.channel")
    handler = t.log_handler()
    logging.getLogger("ivr").addHandler(handler)
    try:
        logger.error("boom")
        logger.warning("not an error")
    finally:
        logging.getLogger("ivr").removeHandler(handler)
    m = _samples(t.exposition(LiveState(database_up=True)).decode())
    assert m[("kanaal_turn_gap_seconds_bucket", (("le", "0.5"),))] == 1
    assert m[("kanaal_turn_gap_seconds_bucket", (("le", "1.5"),))] == 2
    assert m[("kanaal_asr_latency_seconds_bucket", (("le", "0.2"),))] == 1
    assert m[("kanaal_asr_latency_seconds_count", ())] == 2
    assert m[("kanaal_errors_total", (("kind", "telephony.ari.channel"),))] == 1
    assert m[("kanaal_errors_total", (("kind", "media"),))] == 1


async def test_readyz_checks_database_ari_and_ami(core: WebCore,
                                                  live: tuple[ContactCentre, FakeAmiServer],
                                                  tmp_path: Path) -> None:
    """Ready only with every link up; 503 names what is down. Metrics show the links."""
    centre, ami = live
    ari = asyncio.Event()
    web = create_web_app(core, passwords=cheap_passwords(), centre=centre, ari=ari)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"] == {"database": "ok", "ari": "down", "ami": "ok"}
        assert r.json()["reasons"] == ["ARI websocket not connected"]
        ari.set()
        r = await c.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        await ami.caller_join("ivr-billing", "1700.1")
        await _until(lambda: centre.feed.snapshot().queue("billing").waiting == 1)
        await sign_in(c, "super")
        m = _samples((await c.get("/metrics")).text)
        assert m[("kanaal_connection_up", (("link", "ari"),))] == 1
        assert m[("kanaal_connection_up", (("link", "ami"),))] == 1
        assert m[("kanaal_queue_waiting", (("queue", "billing"),))] == 1
        await ami.stop()  # Asterisk gone for good: no reconnect can race the probe
        await _until(lambda: not centre.ami.connected.is_set())
        r = await c.get("/readyz")
        assert r.status_code == 503 and r.json()["reasons"] == ["AMI not connected"]
    broken_dir = tmp_path / "not-a-file.db"
    broken_dir.mkdir()
    broken = replace(core, engine=make_engine(f"sqlite:///{broken_dir}"))
    web = create_web_app(broken, passwords=cheap_passwords())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE) as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["reasons"] == ["database not reachable or not migrated"]
    broken.engine.dispose()


def test_grafana_dashboard_queries_only_series_the_node_exports() -> None:
    """Every ``kanaal_*`` series the sample dashboard plots exists in the exposition."""
    dashboard = json.loads((Path(__file__).parents[2] / "docker" / "grafana"
                            / "kanaal-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    wanted = {name for e in exprs for name in re.findall(r"kanaal_\w+", e)}
    t = NodeTelemetry()
    text = t.exposition(LiveState(database_up=True, outbox={"pending": 0}, ari_connected=True,
                                  ami_connected=True)).decode()
    exported = set(re.findall(r"^# TYPE (kanaal_\w+) (\w+)", text, re.M))
    names = {n for n, _ in exported}
    names |= {f"{n}_total" for n, kind in exported if kind == "counter"}
    names |= {f"{n}_{part}" for n, kind in exported if kind == "histogram"
              for part in ("bucket", "count", "sum")}
    assert len(wanted) >= 12 and wanted <= names, wanted - names


async def test_queue_waits_follow_ami(core: WebCore,
                                      live: tuple[ContactCentre, FakeAmiServer]) -> None:
    """Answered (AgentConnect HoldTime) and abandoned callers' waits, per queue."""
    centre, ami = live
    t = NodeTelemetry()
    task = asyncio.create_task(t.follow_queues(centre.ami))
    try:
        await asyncio.sleep(0.05)  # subscribed before the events
        await ami.emit("AgentConnect", [("Queue", "ivr-billing"), ("Interface", "PJSIP/agent1"),
                                        ("MemberName", "Sanne"), ("Uniqueid", "1700.1"),
                                        ("HoldTime", 14), ("RingTime", 2)])
        await ami.emit("QueueCallerAbandon", [("Queue", "ivr-billing"), ("Uniqueid", "1700.2"),
                                              ("Position", 1), ("OriginalPosition", 1),
                                              ("HoldTime", 70)])

        def seen() -> bool:
            m = _samples(t.exposition(LiveState(database_up=True)).decode())
            return m.get(("kanaal_queue_abandoned_wait_seconds_count",
                          (("queue", "billing"),)), 0) == 1

        await _until(seen)
    finally:
        task.cancel()
    m = _samples(t.exposition(LiveState(database_up=True)).decode())
    assert m[("kanaal_queue_wait_seconds_bucket", (("le", "10.0"), ("queue", "billing")))] == 0
    assert m[("kanaal_queue_wait_seconds_bucket", (("le", "20.0"), ("queue", "billing")))] == 1
    assert m[("kanaal_queue_abandoned_wait_seconds_sum", (("queue", "billing"),))] == 70
