"""The signed-in pages: sign in and out, the dashboard, flows, runs and transfers (thin handlers over
:mod:`.views`; live updates in :mod:`.live`)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from starlette.responses import Response

from beamlink.errors import InvalidCredentials
from beamlink.service.api.deps import State
from beamlink.service.auth import tokens, users
from beamlink.service.flows import runs
from beamlink.service.portal import live, views
from beamlink.service.portal.pages import PortalRoute, render
from beamlink.service.portal.session import (
    CSRF_FIELD,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    OptionalVisitor,
    SignedIn,
    Visitor,
    check_csrf,
    clear_cookie,
    new_prelogin,
    safe_next,
    set_cookie,
)
from beamlink.service.transfer import transfers

__all__ = ["root_router", "router"]

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)
root_router = APIRouter(include_in_schema=False)

PageNumber = Annotated[int, Query(ge=1, le=100_000)]
CsrfField = Annotated[str, Form(alias=CSRF_FIELD)]
_PRELOGIN_MAX_AGE = 3600
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
RUN_STATUSES = ("ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED", "ENDED")
TRANSFER_STATES = ("ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED")


@root_router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


# -- signing in and out --------------------------------------------------------------------------------


def _login_page(
    request: Request,
    found: Visitor,
    *,
    next_url: str,
    reason: str | None,
    error: str | None,
    username: str = "",
) -> Response:
    prelogin = found.prelogin or new_prelogin()
    request.state.visitor = Visitor(None, prelogin=prelogin)
    notice = {
        "expired": "Your session expired — sign in again.",
        "signed-out": "You are signed out.",
    }.get(reason or "")
    if found.expired and notice is None:
        notice = "Your session expired — sign in again."
    response = render(
        request,
        "login.html",
        status_code=401 if error else 200,
        title="Sign in",
        section="login",
        next_url=next_url,
        notice=notice,
        error=error,
        username=username,
    )
    if found.prelogin is None:
        set_cookie(response, request.app.state.beamlink, PRELOGIN_COOKIE, prelogin, max_age=_PRELOGIN_MAX_AGE)
    return response


@router.get("/login")
def login_form(
    request: Request, found: OptionalVisitor, next: str | None = None, reason: str | None = None
) -> Response:
    if found.signed_in:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, found, next_url=safe_next(next), reason=reason, error=None)


@router.post("/login")
def login(
    request: Request,
    state: State,
    found: OptionalVisitor,
    username: Annotated[str, Form(max_length=256)],
    password: Annotated[str, Form(max_length=1024)],
    csrf: CsrfField = "",
    next: Annotated[str, Form()] = "/portal/",
) -> Response:
    check_csrf(state, request.cookies.get(PRELOGIN_COOKIE), csrf)
    try:
        with state.db.transaction() as session:
            user = users.authenticate_password(session, username, password)
            _, raw = tokens.issue_token(
                session, user, name="portal session", ttl_seconds=state.settings.token_ttl_seconds
            )
    except InvalidCredentials as exc:
        return _login_page(
            request, found, next_url=safe_next(next), reason=None, error=exc.message, username=username
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(response, state, SESSION_COOKIE, raw, max_age=state.settings.token_ttl_seconds)
    clear_cookie(response, state, PRELOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(state: State, found: SignedIn, csrf: CsrfField = "") -> Response:
    check_csrf(state, found.session_token, csrf)
    principal = found.principal
    if principal.token_id is not None:
        with state.db.transaction() as session:
            tokens.revoke_token(session, principal, principal.token_id)
    response = RedirectResponse("/portal/login?reason=signed-out", status_code=303)
    clear_cookie(response, state, SESSION_COOKIE)
    return response


# -- dashboard -----------------------------------------------------------------------------------------


@router.get("/")
def dashboard(request: Request, state: State, found: SignedIn) -> Response:
    with state.db.transaction() as session:
        data = views.dashboard(session, found.principal)
    return render(request, "dashboard.html", title="Dashboard", section="dashboard", **data)


@router.get("/status.json")
def dashboard_status(state: State, found: SignedIn) -> JSONResponse:
    with state.db.transaction() as session:
        data = views.agent_states(session, found.principal)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


# -- flows and runs ------------------------------------------------------------------------------------


@router.get("/flows")
def flows(request: Request, state: State, found: SignedIn, page: PageNumber = 1) -> Response:
    with state.db.transaction() as session:
        listing = views.flows_listing(session, found.principal, page)
    return render(request, "flows.html", title="Flows", section="flows", listing=listing)


@router.get("/flows/{flow_id}")
def flow(request: Request, state: State, found: SignedIn, flow_id: str) -> Response:
    with state.db.transaction() as session:
        data = views.flow_page(session, found.principal, flow_id)
    return render(request, "flow.html", title=data["flow"].title, section="flows", **data)


@router.get("/runs")
def runs_list(
    request: Request, state: State, found: SignedIn, page: PageNumber = 1, status: str | None = None
) -> Response:
    chosen = status if status in RUN_STATUSES else None
    with state.db.transaction() as session:
        listing = views.runs_listing(session, found.principal, page, chosen)
    return render(
        request,
        "runs.html",
        title="Runs",
        section="runs",
        listing=listing,
        status=chosen,
        statuses=RUN_STATUSES,
    )


@router.get("/runs/{run_id}")
def run(request: Request, state: State, found: SignedIn, run_id: str) -> Response:
    with state.db.transaction() as session:
        data = views.run_page(session, found.principal, run_id)
    title = data.info.label or data.info.flow_title
    return render(request, "run.html", title=f"Run · {title}", section="runs", page=data)


@router.get("/runs/{run_id}/events")
async def run_events(
    request: Request,
    state: State,
    found: SignedIn,
    run_id: str,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    principal = found.principal

    def check() -> None:
        with state.db.transaction() as session:
            runs.get_run(session, principal, run_id)

    await anyio.to_thread.run_sync(check)  # a run the visitor may not see answers 404 before streaming
    resumed = request.headers.get("last-event-id", "")
    start = int(resumed) if resumed.isdigit() else after
    feed = live.RunFeed(state, principal, run_id, start)
    return StreamingResponse(live.stream(request, feed), media_type="text/event-stream", headers=_SSE_HEADERS)


@router.post("/runs/{run_id}/cancel")
async def cancel_run(state: State, found: SignedIn, run_id: str, csrf: CsrfField = "") -> Response:
    check_csrf(state, found.session_token, csrf)
    await state.flows.cancel_run(found.principal, run_id)
    return RedirectResponse(f"/portal/runs/{run_id}", status_code=303)


# -- transfers -----------------------------------------------------------------------------------------


@router.get("/transfers")
def transfers_list(
    request: Request, state: State, found: SignedIn, page: PageNumber = 1, status: str | None = None
) -> Response:
    chosen = status if status in TRANSFER_STATES else None
    with state.db.transaction() as session:
        listing = views.transfers_listing(session, found.principal, page, chosen)
    return render(
        request,
        "transfers.html",
        title="Transfers",
        section="transfers",
        listing=listing,
        status=chosen,
        statuses=TRANSFER_STATES,
    )


@router.get("/transfers/{transfer_id}")
def transfer(request: Request, state: State, found: SignedIn, transfer_id: str) -> Response:
    with state.db.transaction() as session:
        data = views.transfer_page(session, found.principal, transfer_id)
    return render(request, "transfer.html", title="Transfer", section="transfers", page=data)


@router.get("/transfers/{transfer_id}/events")
async def transfer_events(
    request: Request,
    state: State,
    found: SignedIn,
    transfer_id: str,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    principal = found.principal

    def check() -> None:
        with state.db.transaction() as session:
            transfers.get_transfer(session, principal, transfer_id)

    await anyio.to_thread.run_sync(check)
    resumed = request.headers.get("last-event-id", "")
    start = int(resumed) if resumed.isdigit() else after
    feed = live.TransferFeed(state, principal, transfer_id, start)
    return StreamingResponse(live.stream(request, feed), media_type="text/event-stream", headers=_SSE_HEADERS)
