"""Web app factory: sign-in, agent desktop, supervisor console, screen-pop, reports,
Twilio webhooks, health and metrics. Every route but ``/login``, ``/healthz``, the
static files and the (signature-checked) Twilio webhooks needs a role (``ivr.web.auth``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from ivr.domain.ports import PortError
from ivr.storage.desk import SqlDeskStore
from ivr.storage.tables import contacts as contacts_table
from ivr.storage.timeline import SqlTimeline
from ivr.storage.users import SqlUserStore
from ivr.web.auth import Auth, AuthFailure, Principal
from ivr.web.auth_routes import auth_router, install_auth_errors, role
from ivr.web.consoles import consoles_router
from ivr.web.docs import docs_router
from ivr.web.i18n import install_language
from ivr.web.online_routes import online_router
from ivr.web.ops import Links, ops_router
from ivr.web.push import ScreenPopHub, push_router
from ivr.web.render import STATIC, Pages
from ivr.web.report_api import report_api_router
from ivr.web.screenpop import CustomerCard, screenpop_router
from ivr.web.security import Passwords
from ivr.web.timeline_routes import timeline_router

if TYPE_CHECKING:
    from ivr.contact_centre.remote import RemoteCentres
    from ivr.contact_centre.service import ContactCentre
    from ivr.domain.staffing import SplitSetting


log = logging.getLogger(__name__)


def create_web_app(app: Any, *, passwords: Passwords | None = None,
                   centre: ContactCentre | None = None,
                   ari: asyncio.Event | None = None) -> FastAPI:
    """Build the FastAPI app for one node from the composition root's ``App``.

    ``passwords`` swaps the argon2 cost (tests use a cheap one); ``web.state.auth``
    is the app's :class:`~ivr.web.auth.Auth`. ``ari`` is set while the node's ARI
    websocket is connected (``/readyz``, ``/metrics``).
    """
    settings = app.settings
    # FastAPI's own /docs, /redoc and /openapi.json are open and load a CDN: off.
    web = FastAPI(title="Kanaal", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url=None)
    auth = Auth(SqlUserStore(app.engine), settings, passwords=passwords)
    web.state.auth = auth
    desk, pages = SqlDeskStore(app.engine), Pages()
    hub = app.screenpop if isinstance(app.screenpop, ScreenPopHub) else None
    install_auth_errors(web, pages)
    install_language(web)  # English or Dutch per request (cookie, Accept-Language)
    web.mount("/static", StaticFiles(directory=STATIC), name="static")
    web.include_router(auth_router(auth, pages))
    web.include_router(consoles_router(auth, pages, desk, app.metrics, hub,
                                       centre_live=centre is not None))
    links = Links(ari=ari, ami=None if centre is None else centre.ami.connected,
                  centre=None if centre is None else centre.feed.snapshot)
    web.include_router(ops_router(auth, desk, app.telemetry, hub, links=links))

    async def agent_guard(request: Request) -> None:
        await auth.require(request, "agent")  # AuthFailure -> 401/403 by the handler

    async def desktop_allowed(ws: WebSocket) -> bool:
        return await auth.websocket(ws, "agent") is not None

    web.include_router(screenpop_router(app.contacts, agent_guard, customer_card_of(app)))
    if hub is not None:
        web.include_router(push_router(hub, desktop_allowed))
    if app.outbox_store is not None:
        from ivr.web.twilio_routes import twilio_router

        csat = getattr(app, "csat", None)
        web.include_router(twilio_router(store=app.outbox_store,
                                         auth_token=settings.twilio_auth_token,
                                         public_base_url=settings.public_url,
                                         on_reply=csat.on_reply if csat is not None else None))
    web.include_router(reports_router(auth, app.engine))
    web.include_router(report_api_router(auth, app.engine))
    from ivr.web.outages_api import outages_router

    web.include_router(outages_router(auth, app))  # outages, /api/surge, /ws/alerts
    from ivr.web.callbacks_api import callbacks_router

    web.include_router(callbacks_router(auth, app))  # /api/callbacks, /cb/<token>
    from ivr.app import build_links, centre_name  # links the node sends, to verify

    web.include_router(timeline_router(auth, SqlTimeline(app.engine), build_links(settings),
                                       settings.link_secret))
    if centre is not None:
        web.include_router(centre_router(auth, centre, app.engine, settings.timezone,
                                         remote=getattr(app, "remote_centres", None),
                                         own=centre_name(settings)))
    if getattr(app, "online", None) is not None and getattr(app, "catalogue", None) is not None:
        web.include_router(online_router(auth, app.online, app.catalogue,
                                         settings.phone_number,
                                         getattr(app, "callbacks", None)))
    web.include_router(docs_router(web, auth))
    return web


def centre_router(auth: Auth, centre: ContactCentre, engine: Engine, timezone: str, *,
                  remote: RemoteCentres | None = None, own: str | None = None) -> APIRouter:
    """Agents, load splits and live queue and agent state of the node's contact centre."""
    from ivr.contact_centre.views import centre_view
    from ivr.web.agents_api import agents_router

    async def guard(request: Request, code: str | None) -> JSONResponse | None:
        # An agent may read and change their own queue state; the rest is supervisors'.
        try:
            if code is None:
                await auth.require(request, "supervisor")
            else:
                await auth.require_for_agent(request, code)
        except AuthFailure as exc:
            return JSONResponse({"error": exc.code, "message": exc.message},
                                status_code=exc.status)
        return None

    async def split_changed(split: SplitSetting) -> None:
        await centre.refresh()
        await centre.membership.reapply()  # agents join the new side queues

    router = agents_router(centre.directory, centre.membership, guard,
                           on_split_changed=split_changed)

    @router.get("/api/queues")
    async def queues(request: Request) -> JSONResponse:
        if (no := await guard(request, None)) is not None:
            return no
        view = centre_view(centre.feed.snapshot(), stale_s=centre.feed.stale_s)
        # The other Asterisks, as their nodes broadcast them (two Asterisks, one console).
        view["others"] = [] if remote is None else remote.views(exclude=own)
        return JSONResponse(view)

    @router.get("/api/agent-states")
    async def agent_states(request: Request) -> JSONResponse:
        """Each agent's live state (ready/ringing/busy/wrap-up/paused/...) and calls today."""
        if (no := await guard(request, None)) is not None:
            return no
        from ivr.web.agent_states import states_doc

        try:
            records = await centre.directory.list_agents()
            doc = await states_doc(records, centre.feed.snapshot(), engine, timezone,
                                   datetime.now(UTC))
        except (PortError, SQLAlchemyError) as exc:
            log.warning("agent states unavailable: %s", exc)
            return JSONResponse({"error": "unavailable", "message": "database unavailable"},
                                status_code=503)
        return JSONResponse(doc)

    return router


def customer_card_of(app: Any) -> CustomerCard:
    """The customer card of a screen-pop: record, open orders, outages in their region,
    recent cross-channel history and the timeline (calls, messages, links opened)."""
    timeline = SqlTimeline(app.engine)

    async def events_of(customer_id: int) -> list[dict[str, Any]]:
        try:
            return [e.as_dict() for e in await timeline.timeline(customer_id, 12)]
        except PortError as exc:  # the screen-pop goes out without it
            log.warning("timeline of customer %s unavailable: %s", customer_id, exc)
            return []

    async def customer_and_outages(customer_id: int) -> tuple[Any, Sequence[Any]]:
        c = await app.directory.find_by_id(customer_id)
        if c is None:
            return None, ()
        return c, await app.knowledge.outages(c.region, app.clock.now())

    async def customer_card(customer_id: int) -> dict[str, Any] | None:
        # The reads run side by side: one after another they were five thread hops and
        # round-trip chains, and the agent waits for the slowest only (on PostgreSQL at
        # 10 M contacts: screen-pop p99 51.9 ms in sequence). The outages need the
        # customer's region, so they follow the customer read in its own task.
        try:
            async with asyncio.TaskGroup() as tg:
                found = tg.create_task(customer_and_outages(customer_id))
                orders_t = tg.create_task(app.directory.orders(customer_id))
                history_t = tg.create_task(app.contacts.history(customer_id=customer_id,
                                                                limit=6))
                events_t = tg.create_task(events_of(customer_id))
        except ExceptionGroup as group:  # callers handle the port's one named error
            port = group.subgroup(PortError)
            if port is None:
                raise
            raise port.exceptions[0] from group
        c, outages = found.result()
        if c is None:
            return None
        orders, history, events = orders_t.result(), history_t.result(), events_t.result()
        return {
            "id": c.id, "customer_no": c.customer_no, "name": c.name, "tier": c.tier,
            "language": c.language, "region": c.region, "postcode": c.postcode,
            "numbers": list(c.numbers),
            "orders": [{"order_no": o.order_no, "status": o.status,
                        "eta": o.eta.isoformat() if o.eta else None} for o in orders],
            "outages": [{"region": o.region, "message": o.message(c.language),
                         "ends_at": o.ends_at.isoformat() if o.ends_at else None}
                        for o in outages],
            "history": [{"session": h.id, "channel": h.channel.value,
                         "started_at": h.started_at.isoformat(), "intent": h.intent,
                         "scenario": h.scenario.value if h.scenario else None,
                         "outcome": h.outcome.value if h.outcome else None} for h in history],
            "timeline": events,
        }
    return customer_card


def reports_router(auth: Auth, engine: Engine) -> APIRouter:
    """``GET /api/reports/contact-reasons`` for supervisors."""
    router = APIRouter()
    supervisor = Depends(role(auth, "supervisor"))

    @router.get("/api/reports/contact-reasons")
    async def contact_reasons(_: Principal = supervisor,
                              hours: int = Query(24, ge=1, le=24 * 90)) -> JSONResponse:
        """Contact-reason report for supervisors: intents, scenarios, outcomes, drop-offs."""
        since = datetime.now(UTC) - timedelta(hours=hours)

        def q() -> list[Any]:
            with engine.connect() as conn:
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

    return router


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
