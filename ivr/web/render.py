"""Server-rendered HTML: Jinja2 templates from ``ivr/web/templates`` with safe headers.

Every page is rendered with autoescaping and served with a Content-Security-Policy
that allows scripts, styles and sockets from this origin only: the pages load nothing
from a CDN, and an injected ``<script>`` would not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from ivr.web import i18n

WEB_DIR = Path(__file__).parent
TEMPLATES = WEB_DIR / "templates"
STATIC = WEB_DIR / "static"

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# Swagger UI starts itself from an inline script that FastAPI writes.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


def security_headers(csp: str = PAGE_CSP) -> dict[str, str]:
    """Headers every HTML response gets (no caching: pages show personal data)."""
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


class Pages:
    """The template environment of one web app; every page gets ``t(key)`` and ``lang``
    of the request (``ivr.web.i18n``)."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self._env = Environment(loader=FileSystemLoader(templates),
                                autoescape=select_autoescape(["html"]),
                                trim_blocks=True, lstrip_blocks=True)

    def render(self, name: str, status: int = 200, headers: dict[str, str] | None = None,
               **context: Any) -> HTMLResponse:
        lang = i18n.current()
        html = self._env.get_template(name).render(
            **{"lang": lang, "t": i18n.t, "js_strings": i18n.script_strings(lang), **context})
        return HTMLResponse(html, status_code=status,
                            headers={**security_headers(), **(headers or {})})
