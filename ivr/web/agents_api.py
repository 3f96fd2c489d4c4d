"""Agents and load-split API for supervisors' and agents' desktops.

    GET  /api/agents                      every agent (``?logged_in=true`` to filter)
    GET  /api/agents/{code}
    POST /api/agents/{code}/login         QueueAdd to each skill's queue
    POST /api/agents/{code}/logout        QueueRemove
    POST /api/agents/{code}/pause         body {"reason": "break"} (optional)
    POST /api/agents/{code}/resume
    GET  /api/splits                      every own/partner split
    GET  /api/splits/{skill}
    PUT  /api/splits/{skill}              body {"own_pct": 70, "partner_pct": 30}

Domain errors become HTTP codes here only: 404 unknown agent/skill, 409 state
conflict (already logged in, not logged in, inactive, duplicate), 422 invalid
input (bad split, no queue for any skill), 502 Asterisk refused the action,
503 Asterisk or the database unreachable. Errors are ``{"error", "message"}``
like the screen-pop API. A login that joined some queues but not all answers
200 with ``complete: false`` and the skills left out in ``problems``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import HTTPConnection

from ivr.contact_centre.membership import Membership
from ivr.contact_centre.views import agent_view, error_kind, membership_view, split_view
from ivr.domain.centre_errors import (
    AgentAlreadyLoggedIn,
    AgentInactive,
    AgentNotLoggedIn,
    BadAgentProfile,
    BadSplit,
    CentreError,
    DuplicateAgent,
    MembershipRefused,
    MembershipUnavailable,
    NoQueueForSkills,
    UnknownAgent,
    UnknownSkill,
)
from ivr.domain.ports import PortError
from ivr.domain.staffing import AgentRecord, SplitSetting, StaffingDirectory

TokenCheck = Callable[[HTTPConnection], bool]
# (request, agent code or None for centre-wide calls) -> a refusal, or None to go on.
Guard = Callable[[Request, str | None], Awaitable[JSONResponse | None]]


def token_guard(token_check: TokenCheck) -> Guard:
    """A guard from a bearer-token check (integrations and tests): all or nothing."""

    async def guard(request: Request, code: str | None) -> JSONResponse | None:
        if token_check(request):
            return None
        return _error(401, "unauthorized", "missing or invalid bearer token")

    return guard
SplitHook = Callable[[SplitSetting], Awaitable[object]]
M = TypeVar("M", bound=BaseModel)

_STATUS: tuple[tuple[type[CentreError], int], ...] = (
    (UnknownAgent, 404),
    (UnknownSkill, 404),
    (AgentAlreadyLoggedIn, 409),
    (AgentNotLoggedIn, 409),
    (AgentInactive, 409),
    (DuplicateAgent, 409),
    (BadSplit, 422),
    (BadAgentProfile, 422),
    (NoQueueForSkills, 422),
    (MembershipRefused, 502),
    (MembershipUnavailable, 503),
)


def status_for(exc: CentreError) -> int:
    """HTTP status of a domain error (400 for one not listed)."""
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 400)


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status,
                        headers=headers)


class PauseBody(BaseModel):
    reason: str | None = Field(default=None, max_length=64)


class SplitBody(BaseModel):
    own_pct: int
    partner_pct: int


async def _body(request: Request, model: type[M], *, optional: bool = False,
                ) -> M | JSONResponse:
    """The JSON body as ``model``; parsed after the token check, so a stranger gets 401
    rather than a validation report."""
    raw = await request.body()
    if not raw.strip() and optional:
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        return _error(422, "bad_request", problems)


async def _answer(work: Awaitable[Any], view: Callable[[Any], Any]) -> JSONResponse:
    """Run a directory/membership call and shape its result or error."""
    try:
        result = await work
    except CentreError as exc:
        return _error(status_for(exc), error_kind(exc), str(exc))
    except PortError as exc:
        return _error(503, "unavailable", str(exc))
    return JSONResponse(view(result))


def agents_router(directory: StaffingDirectory, membership: Membership,
                  guard: Guard | TokenCheck, *,
                  on_split_changed: SplitHook | None = None) -> APIRouter:
    """Router for the agents and splits API; every request must pass ``guard``
    (with the agent's code for that agent's own state, None for centre-wide calls;
    a plain token check is wrapped with :func:`token_guard`).

    ``on_split_changed`` runs after a split is stored (e.g. give the SmartRouter the
    new policy and ``membership.reapply()`` so agents join a new side queue); if it
    fails the answer is still 200, with a ``warning``.
    """
    router = APIRouter()
    denied: Guard = guard if inspect.iscoroutinefunction(guard) else token_guard(
        guard)  # type: ignore[arg-type]

    _agent_routes(router, directory, denied)
    _membership_routes(router, membership, denied)
    _split_routes(router, directory, denied, on_split_changed)
    return router


Denied = Guard


def _agent_routes(router: APIRouter, directory: StaffingDirectory, denied: Denied) -> None:
    @router.get("/api/agents")
    async def list_agents(request: Request, logged_in: bool | None = None) -> JSONResponse:
        if (no := await denied(request, None)) is not None:
            return no
        return await _answer(directory.list_agents(logged_in=logged_in),
                             lambda found: {"agents": [agent_view(a) for a in found]})

    @router.get("/api/agents/{code}")
    async def get_agent(code: str, request: Request) -> JSONResponse:
        if (no := await denied(request, code)) is not None:
            return no

        async def one() -> AgentRecord:
            found = await directory.get(code)
            if found is None:
                raise UnknownAgent(code)
            return found
        return await _answer(one(), agent_view)


def _membership_routes(router: APIRouter, membership: Membership, denied: Denied) -> None:
    async def pause(code: str, request: Request) -> JSONResponse:
        body = await _body(request, PauseBody, optional=True)
        if isinstance(body, JSONResponse):
            return body
        return await _answer(membership.pause(code, body.reason), agent_view)

    actions: dict[str, Callable[[str, Request], Awaitable[JSONResponse]]] = {
        "login": lambda code, _: _answer(membership.login(code), membership_view),
        "logout": lambda code, _: _answer(membership.logout(code), membership_view),
        "pause": pause,
        "resume": lambda code, _: _answer(membership.resume(code), agent_view),
    }

    @router.post("/api/agents/{code}/{action}")
    async def membership_action(code: str, action: str, request: Request) -> JSONResponse:
        if (no := await denied(request, code)) is not None:
            return no
        run = actions.get(action)
        if run is None:
            return _error(404, "not_found",
                          f"no action {action!r} ({', '.join(actions)})")
        return await run(code, request)


def _split_routes(router: APIRouter, directory: StaffingDirectory, denied: Denied,
                  on_split_changed: SplitHook | None) -> None:
    @router.get("/api/splits")
    async def list_splits(request: Request) -> JSONResponse:
        if (no := await denied(request, None)) is not None:
            return no
        return await _answer(directory.list_splits(),
                             lambda found: {"splits": [split_view(s) for s in found]})

    @router.get("/api/splits/{skill}")
    async def get_split(skill: str, request: Request) -> JSONResponse:
        if (no := await denied(request, None)) is not None:
            return no
        try:
            found = await directory.get_split(skill)
        except PortError as exc:
            return _error(503, "unavailable", str(exc))
        if found is None:
            return _error(404, "not_found", f"no load split for skill {skill!r}")
        return JSONResponse(split_view(found))

    @router.put("/api/splits/{skill}")
    async def put_split(skill: str, request: Request) -> JSONResponse:
        if (no := await denied(request, None)) is not None:
            return no
        body = await _body(request, SplitBody)
        if isinstance(body, JSONResponse):
            return body
        return await _store_split(directory, skill, body, on_split_changed)


async def _store_split(directory: StaffingDirectory, skill: str, body: SplitBody,
                       on_split_changed: SplitHook | None) -> JSONResponse:
    try:
        stored = await directory.set_split(skill, body.own_pct, body.partner_pct)
    except CentreError as exc:
        return _error(status_for(exc), error_kind(exc), str(exc))
    except PortError as exc:
        return _error(503, "unavailable", str(exc))
    view = split_view(stored)
    if on_split_changed is not None:
        try:
            await on_split_changed(stored)
        except (CentreError, PortError) as exc:
            # Stored either way; say what did not follow (e.g. AMI down for the reapply).
            view["warning"] = f"stored, but applying it failed: {exc}"
    return JSONResponse(view)
