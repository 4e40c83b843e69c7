"""``/actions/<name>/``: our built-in providers over the Globus Action Provider API (introspect, run,
status, cancel, release, log), so a Globus flow, another beamlink or a script can call them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Query, Response, status
from sqlalchemy.orm import Session

from beamlink.protocol.flows import ActionRequest, ActionStatus, ProviderDescription
from beamlink.service.api.deps import CurrentPrincipal, State
from beamlink.service.flows import actions
from beamlink.service.flows.runs import Effects, action_status
from beamlink.service.state import ServiceState

__all__ = ["router"]

T = TypeVar("T")
router = APIRouter(prefix="/actions/{name}", tags=["action providers"])


async def _call(state: ServiceState, fn: Callable[[Session], tuple[T, Effects]]) -> T:
    def work() -> tuple[T, Effects]:
        with state.db.transaction() as session:
            return fn(session)

    result, effects = await anyio.to_thread.run_sync(work)
    await state.flows.after(effects)
    return result


@router.get("/", response_model=ProviderDescription, summary="Introspect: what the provider does and takes.")
@router.get("", response_model=ProviderDescription, include_in_schema=False)
def introspect(state: State, name: str) -> ProviderDescription:
    return actions.describe(state.flows.kit, name)


@router.post(
    "/run", response_model=ActionStatus, status_code=status.HTTP_202_ACCEPTED, summary="Start an action."
)
@router.post(
    "/actions", response_model=ActionStatus, status_code=status.HTTP_202_ACCEPTED, include_in_schema=False
)
async def run_action(
    state: State, principal: CurrentPrincipal, name: str, body: ActionRequest, response: Response
) -> ActionStatus:
    def start(session: Session) -> tuple[tuple[ActionStatus, bool], Effects]:
        row, new, effects = actions.start_action(session, principal, name, body, state.flows.kit)
        session.flush()
        return (action_status(row), new), effects

    info, new = await _call(state, start)
    if not new:
        response.status_code = status.HTTP_200_OK
    return info


@router.get("/{action_id}/status", response_model=ActionStatus, summary="An action's status.")
@router.get("/actions/{action_id}", response_model=ActionStatus, include_in_schema=False)
async def action_status_route(
    state: State, principal: CurrentPrincipal, name: str, action_id: str
) -> ActionStatus:
    def read(session: Session) -> tuple[ActionStatus, Effects]:
        row = actions.get_action(session, principal, name, action_id)
        effects = actions.refresh_action(session, principal, row, state.flows.kit)
        return action_status(row), effects

    return await _call(state, read)


@router.post("/{action_id}/cancel", response_model=ActionStatus, summary="Cancel an action (advisory).")
@router.post("/actions/{action_id}/cancel", response_model=ActionStatus, include_in_schema=False)
async def cancel_action(state: State, principal: CurrentPrincipal, name: str, action_id: str) -> ActionStatus:
    def cancel(session: Session) -> tuple[ActionStatus, Effects]:
        row = actions.get_action(session, principal, name, action_id, manage=True)
        effects = actions.cancel_action(session, principal, row, state.flows.kit)
        return action_status(row), effects

    return await _call(state, cancel)


@router.post("/{action_id}/release", response_model=ActionStatus, summary="Forget a finished action.")
@router.delete("/actions/{action_id}", response_model=ActionStatus, include_in_schema=False)
async def release_action(
    state: State, principal: CurrentPrincipal, name: str, action_id: str
) -> ActionStatus:
    def release(session: Session) -> tuple[ActionStatus, Effects]:
        row = actions.get_action(session, principal, name, action_id, manage=True)
        info = action_status(row)
        return info, actions.release_action(session, principal, row, state.flows.kit)

    return await _call(state, release)


@router.get("/{action_id}/log", summary="An action's log entries.")
@router.get("/actions/{action_id}/log", include_in_schema=False)
def action_log(
    state: State,
    principal: CurrentPrincipal,
    name: str,
    action_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    marker: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    with state.db.transaction() as session:
        row = actions.get_action(session, principal, name, action_id)
        return actions.log_entries(row, limit=limit, marker=marker)
