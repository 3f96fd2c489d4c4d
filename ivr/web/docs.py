"""API documentation for admins: ``/docs`` (Swagger UI) and ``/openapi.json``.

FastAPI's built-in pages are open to everyone and load Swagger UI from a CDN. Here
both are admin-only, and Swagger UI's files come from the ``fastapi-offline`` package
(installed with Kanaal), so the page works without internet access and the
Content-Security-Policy can stay ``'self'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from ivr.web.auth import Auth, Principal
from ivr.web.auth_routes import role
from ivr.web.render import DOCS_CSP, security_headers

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSET_NAMES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"})


def docs_router(web: FastAPI, auth: Auth) -> APIRouter:
    """Admin-only Swagger UI and OpenAPI schema of ``web`` (built with docs turned off)."""
    router = APIRouter(include_in_schema=False)
    admin = Depends(role(auth, "admin"))

    @router.get("/openapi.json")
    async def openapi(_: Principal = admin) -> JSONResponse:
        schema: dict[str, Any] = web.openapi()
        return JSONResponse(schema)

    @router.get("/docs")
    async def swagger(_: Principal = admin) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{web.title} API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png")
        page.headers.update(security_headers(DOCS_CSP))
        return page

    @router.get("/docs/assets/{name}")
    async def asset(name: str, _: Principal = admin) -> Response:
        if name not in ASSET_NAMES:  # a fixed list: no path from the URL reaches the disk
            return JSONResponse({"error": "not_found"}, status_code=404)
        return FileResponse(ASSETS / name, headers={"Cache-Control": "private, max-age=3600"})

    return router
