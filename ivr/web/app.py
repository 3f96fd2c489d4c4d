"""Web app factory: agent screen-pop, supervisor reports, Twilio webhooks, health."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ivr.storage.tables import contacts as contacts_table
from ivr.web.push import ScreenPopHub, push_router
from ivr.web.screenpop import screenpop_router, token_ok


def create_web_app(app: Any) -> FastAPI:
    """Build the FastAPI app for one node from the composition root's ``App``."""
    settings = app.settings
    web = FastAPI(title="Kanaal", version="0.1.0")

    async def customer_card(customer_id: int) -> dict[str, Any] | None:
        c = await app.directory.find_by_id(customer_id)
        if c is None:
            return None
        orders = await app.directory.orders(customer_id)
        history = await app.contacts.history(customer_id=customer_id, limit=6)
        return {
            "id": c.id, "customer_no": c.customer_no, "name": c.name, "tier": c.tier,
            "language": c.language, "region": c.region, "postcode": c.postcode,
            "numbers": list(c.numbers),
            "orders": [{"order_no": o.order_no, "status": o.status,
                        "eta": o.eta.isoformat() if o.eta else None} for o in orders],
            "history": [{"session": h.id, "channel": h.channel.value,
                         "started_at": h.started_at.isoformat(), "intent": h.intent,
                         "scenario": h.scenario.value if h.scenario else None,
                         "outcome": h.outcome.value if h.outcome else None} for h in history],
        }

    web.include_router(screenpop_router(app.contacts, settings.api_token, customer_card))
    if isinstance(app.screenpop, ScreenPopHub):
        web.include_router(push_router(app.screenpop, settings.api_token))
    if app.outbox_store is not None:
        from ivr.web.twilio_routes import twilio_router

        web.include_router(twilio_router(store=app.outbox_store,
                                         auth_token=settings.twilio_auth_token,
                                         public_base_url=settings.public_url))

    @web.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @web.get("/api/reports/contact-reasons")
    async def contact_reasons(request: Request,
                              hours: int = Query(24, ge=1, le=24 * 90)) -> JSONResponse:
        """Contact-reason report for supervisors: intents, scenarios, outcomes, drop-offs."""
        if not token_ok(request, settings.api_token):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        since = datetime.now(UTC) - timedelta(hours=hours)

        def q() -> list[Any]:
            with app.engine.connect() as conn:
                return list(conn.execute(select(
                    contacts_table.c.intent, contacts_table.c.scenario,
                    contacts_table.c.outcome, contacts_table.c.dropped_at,
                    contacts_table.c.channel).where(contacts_table.c.started_at >= since)))

        rows = await asyncio.to_thread(q)
        return JSONResponse({
            "since": since.isoformat(),
            "contacts": len(rows),
            "by_intent": Counter(r.intent or "unknown" for r in rows).most_common(),
            "by_scenario": Counter(r.scenario or "none" for r in rows).most_common(),
            "by_outcome": Counter(r.outcome or "open" for r in rows).most_common(),
            "drop_off_steps": Counter(r.dropped_at for r in rows if r.dropped_at).most_common(),
            "by_channel": Counter(r.channel for r in rows).most_common(),
        })

    return web


@contextlib.asynccontextmanager
async def web_server(web: FastAPI, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``web`` with uvicorn on the running loop; yields the bound port."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(web, host=host, port=port, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(), name="web")
    while not server.started:
        if task.done():
            await task  # re-raise the start-up error
            raise RuntimeError("web server stopped during start-up")
        await asyncio.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await task


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
