"""``GET /api/reports/summary``: the full contact report (``ivr report``) for supervisors.

Contacts by channel, containment/deflection/transfer rates, the drop-off funnel per
step, contact reasons per day, service level and wait/handle time per skill, CSAT
and repeat contacts, read through the day/hour rollups of
:class:`~ivr.storage.reports.SqlReportStore`. ``?format=csv`` gives the same figures
as ``section,key,metric,value`` rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from ivr.domain.reports import BadReportWindow, report_csv, report_window
from ivr.storage.reports import SqlReportStore
from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role


def report_api_router(auth: Auth, engine: Engine) -> APIRouter:
    """``GET /api/reports/summary?hours=H | since=D&until=D [&format=csv]``."""
    router = APIRouter()
    supervisor = Depends(role(auth, "supervisor"))
    store = SqlReportStore(engine)

    @router.get("/api/reports/summary", response_model=None)
    async def summary(_: Principal = supervisor, hours: float | None = Query(None, gt=0),
                      since: str | None = None, until: str | None = None,
                      format: Literal["json", "csv"] = "json") -> Response:
        """The contact report; days are UTC and an ``until`` day is included whole."""
        try:
            start, end = report_window(datetime.now(UTC), hours=hours, since=since,
                                       until=until)
        except BadReportWindow as exc:
            return JSONResponse({"error": "bad_window", "message": str(exc)}, status_code=400)
        doc = (await store.report(start, end)).as_dict()
        if format == "csv":
            name = f"kanaal-report-{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}.csv"
            return Response(report_csv(doc), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return JSONResponse(doc)

    return router
