"""Sign-in routes and the mapping of auth failures to HTTP.

``GET/POST /login``, ``POST /logout``, ``GET /`` (to the signed-in user's page),
``GET /api/me`` and ``POST /api/ws-ticket``. The login form carries its own CSRF token
(a double-submit cookie: there is no session yet) so another site cannot sign a
browser in to an account of its choosing.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ivr.storage.users import UserRecord, new_secret
from ivr.web.auth import Auth, AuthFailure, Principal
from ivr.web.forms import read_form
from ivr.web.i18n import t
from ivr.web.render import Pages

MAX_PASSWORD = 1024  # argon2 hashes anything, but megabyte passwords are a cheap DoS
SignedIn = tuple[UserRecord, str]  # the user and their new session cookie's value


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a sign-in was refused: HTTP status, message for the form, extra headers."""

    status: int
    message: str
    headers: dict[str, str] | None = None


def role(auth: Auth, minimum: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller, who must have at least role ``minimum``."""
    async def dependency(request: Request) -> Principal:
        return await auth.require(request, minimum)
    return dependency


def home_of(role_name: str) -> str:
    return "/agent" if role_name == "agent" else "/supervisor"


def safe_next(target: str | None) -> str | None:
    """A local path to go back to after sign-in; anything else (other hosts) is dropped."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def install_auth_errors(web: FastAPI, pages: Pages) -> None:
    """Map :class:`AuthFailure`: browsers get a sign-in redirect or a page, APIs get JSON."""
    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthFailure)
        if _wants_html(request):
            if exc.status == 401 and request.method == "GET":
                return RedirectResponse(f"/login?next={quote(request.url.path)}",
                                        status_code=303)
            return pages.render("error.html", status=exc.status, title=t("error.not_allowed"),
                                message=exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": exc.code, "message": exc.message},
                            status_code=exc.status, headers=headers)

    web.add_exception_handler(AuthFailure, handler)


def auth_router(auth: Auth, pages: Pages) -> APIRouter:
    """Routes of signing in and out."""
    router = APIRouter()
    signed_in = Depends(role(auth, "agent"))
    _login_routes(router, auth, pages)

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request, _: Principal = signed_in) -> Response:
        value = request.cookies.get(auth.cookie_name)
        if value:
            await auth.store.call(auth.store.delete_session, value)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.cookie_name, path="/")
        return response

    @router.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        who = await auth.principal(request)
        return RedirectResponse("/login" if who is None else home_of(who.role),
                                status_code=303)

    @router.get("/api/me")
    async def me(who: Principal = signed_in) -> dict[str, object]:
        """The signed-in user (or token owner) and their role."""
        return {"username": who.username, "role": who.role, "agent_code": who.agent_code,
                "via": who.via}

    @router.post("/api/ws-ticket")
    async def ws_ticket(who: Principal = signed_in) -> dict[str, object]:
        """A single-use ticket for one WebSocket connection (``?ticket=``), valid 30 s."""
        return {"ticket": auth.issue_ticket(who), "expires_in": int(auth.tickets.ttl_s)}

    return router


def _login_routes(router: APIRouter, auth: Auth, pages: Pages) -> None:
    """``GET /login`` (the form) and ``POST /login`` (check, session cookie, redirect)."""
    login_cookie = "__Host-kanaal-login" if auth.secure_cookies else "kanaal_login_csrf"

    def login_page(request: Request, *, status: int = 200, message: str = "",
                   headers: dict[str, str] | None = None, username: str = "",
                   next_: str | None = None) -> Response:
        token = new_secret()
        target = safe_next(next_ or request.query_params.get("next")) or ""
        page = pages.render("login.html", status=status, headers=headers, csrf=token,
                            message=message, username=username, next=target)
        page.set_cookie(login_cookie, token, max_age=3600, path="/", httponly=True,
                        samesite="strict", secure=auth.secure_cookies)
        return page

    @router.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        who = await auth.principal(request)
        if who is not None and who.via == "session":
            return RedirectResponse(home_of(who.role), status_code=303)
        return login_page(request)

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        username = form.get("username", "")[:64]
        outcome = await _check_login(auth, request, form, login_cookie)
        if isinstance(outcome, Refusal):
            return login_page(request, status=outcome.status, username=username,
                              message=outcome.message, headers=outcome.headers,
                              next_=form.get("next"))
        user, value = outcome
        target = safe_next(form.get("next")) or home_of(user.role)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(auth.cookie_name, value, path="/", httponly=True, samesite="lax",
                            secure=auth.secure_cookies,
                            max_age=int(auth.session_ttl.total_seconds()))
        response.delete_cookie(login_cookie, path="/")
        return response


async def _check_login(auth: Auth, request: Request, form: dict[str, str], login_cookie: str
                       ) -> SignedIn | Refusal:
    """The signed-in user and their cookie value, or why the sign-in was refused."""
    cookie = request.cookies.get(login_cookie, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), form.get("csrf", "").encode()):
        return Refusal(403, t("login.expired"))
    client = request.client.host if request.client else "unknown"
    result = await auth.sign_in(form.get("username", "")[:64],
                                form.get("password", "")[:MAX_PASSWORD], client)
    if isinstance(result, int):
        if result:
            return Refusal(429, t("login.locked", s=result),
                           {"Retry-After": str(result)})
        return Refusal(401, t("login.wrong"))
    return result
