"""``/v1/flows`` (store, validate, run) and ``/v1/runs`` (status, log, cancel, resume, release).

Thin routes over :mod:`beamlink.service.flows`; starting, canceling and resuming go through the flow
engine, which carries out what each committed step asks for.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from beamlink.protocol.common import Page
from beamlink.protocol.flows import (
    FlowCreate,
    FlowInfo,
    FlowUpdate,
    FlowValidate,
    FlowValidation,
    LogPage,
    RunCreate,
    RunInfo,
    RunUpdate,
)
from beamlink.service.api.deps import CurrentPrincipal, PageParams, State
from beamlink.service.api.grants import add_grant_routes
from beamlink.service.db.paging import paginate
from beamlink.service.flows import runs, store
from beamlink.service.flows.models import Flow, Run
from beamlink.service.flows.roles import FLOW_POLICY, RUN_POLICY

__all__ = ["flows_router", "runs_router"]

flows_router = APIRouter(prefix="/v1/flows", tags=["flows"])
runs_router = APIRouter(prefix="/v1/runs", tags=["flows"])


@flows_router.post("", response_model=FlowInfo, status_code=status.HTTP_201_CREATED, summary="Store a flow.")
def create_flow(state: State, principal: CurrentPrincipal, body: FlowCreate) -> FlowInfo:
    with state.db.transaction() as session:
        flow = store.create_flow(session, principal, body, state.flows.kit.registry)
        return store.flow_info(session, principal, flow)


@flows_router.post(
    "/validate",
    response_model=FlowValidation,
    summary="Check a definition (and input schema): every problem with its JSON pointer and a hint.",
)
def validate_flow(state: State, principal: CurrentPrincipal, body: FlowValidate) -> FlowValidation:
    return store.validation_report(body.definition, body.input_schema, state.flows.kit.registry)


@flows_router.get("", response_model=Page[FlowInfo], summary="Flows you can see.")
def list_flows(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    owned: Annotated[bool, Query(description="Only flows you own.")] = False,
) -> Page[FlowInfo]:
    with state.db.transaction() as session:
        query = store.flows_query(principal, owned_only=owned)
        rows, cursor = paginate(session, query, Flow, page.limit, page.cursor)
        return Page(items=[store.flow_info(session, principal, f) for f in rows], next_cursor=cursor)


@flows_router.get("/{flow_id}", response_model=FlowInfo, summary="One flow.")
def get_flow(state: State, principal: CurrentPrincipal, flow_id: str) -> FlowInfo:
    with state.db.transaction() as session:
        return store.flow_info(session, principal, store.get_flow(session, principal, flow_id))


@flows_router.put("/{flow_id}", response_model=FlowInfo, summary="Change a flow (administrators).")
def update_flow(state: State, principal: CurrentPrincipal, flow_id: str, body: FlowUpdate) -> FlowInfo:
    with state.db.transaction() as session:
        flow = store.update_flow(session, principal, flow_id, body, state.flows.kit.registry)
        return store.flow_info(session, principal, flow)


@flows_router.delete(
    "/{flow_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a flow (no active runs)."
)
def delete_flow(state: State, principal: CurrentPrincipal, flow_id: str) -> Response:
    with state.db.transaction() as session:
        store.delete_flow(session, principal, flow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@flows_router.post(
    "/{flow_id}/run",
    response_model=RunInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Start a run (starters); the same request_id again returns the first run (200).",
)
async def run_flow(
    state: State, principal: CurrentPrincipal, flow_id: str, body: RunCreate, response: Response
) -> RunInfo:
    info, new = await state.flows.start_run_new(principal, flow_id, body)
    if not new:
        response.status_code = status.HTTP_200_OK
    return info


add_grant_routes(flows_router, FLOW_POLICY, store.get_flow, manage_role="administrator")


@runs_router.get("", response_model=Page[RunInfo], summary="Runs you can see, newest last.")
def list_runs(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    run_status: Annotated[
        str | None, Query(alias="status", description="ACTIVE, INACTIVE, SUCCEEDED, FAILED, ENDED (commas).")
    ] = None,
    flow_id: str | None = None,
) -> Page[RunInfo]:
    with state.db.transaction() as session:
        query = runs.runs_query(principal, status=run_status, flow_id=flow_id)
        rows, cursor = paginate(session, query, Run, page.limit, page.cursor)
        return Page(items=[runs.run_info(session, principal, r) for r in rows], next_cursor=cursor)


@runs_router.get("/{run_id}", response_model=RunInfo, summary="A run's status, current states and output.")
def get_run(state: State, principal: CurrentPrincipal, run_id: str) -> RunInfo:
    with state.db.transaction() as session:
        return runs.run_info(session, principal, runs.get_run(session, principal, run_id))


@runs_router.get("/{run_id}/log", response_model=LogPage, summary="A run's event log (secrets hidden).")
def run_log(
    state: State,
    principal: CurrentPrincipal,
    run_id: str,
    after: Annotated[int, Query(ge=0, description="Only entries after this sequence number.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LogPage:
    with state.db.transaction() as session:
        return runs.run_log(session, principal, run_id, after=after, limit=limit)


@runs_router.put("/{run_id}", response_model=RunInfo, summary="Relabel, retag or reshare a run (managers).")
def update_run(state: State, principal: CurrentPrincipal, run_id: str, body: RunUpdate) -> RunInfo:
    with state.db.transaction() as session:
        return runs.run_info(session, principal, runs.update_run(session, principal, run_id, body))


@runs_router.post(
    "/{run_id}/cancel", response_model=RunInfo, summary="Cancel a run and what it has in flight (managers)."
)
async def cancel_run(state: State, principal: CurrentPrincipal, run_id: str) -> RunInfo:
    return await state.flows.cancel_run(principal, run_id)


@runs_router.post("/{run_id}/resume", response_model=RunInfo, summary="Resume an INACTIVE run (managers).")
async def resume_run(state: State, principal: CurrentPrincipal, run_id: str) -> RunInfo:
    return await state.flows.resume_run(principal, run_id)


@runs_router.post(
    "/{run_id}/release", response_model=RunInfo, summary="Forget a finished run and its log (managers)."
)
def release_run(state: State, principal: CurrentPrincipal, run_id: str) -> RunInfo:
    with state.db.transaction() as session:
        run = runs.get_run(session, principal, run_id, "manager")
        info = runs.run_info(session, principal, run)
        runs.release_run(session, principal, run_id)
        return info


add_grant_routes(runs_router, RUN_POLICY, runs.get_run, manage_role="manager")
