"""``/v1/functions``, ``/v1/endpoints``, ``/v1/tasks``: thin routes over :mod:`beamlink.service.compute`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Response, WebSocket, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from beamlink.errors import AuthenticationFailed, NotFound
from beamlink.protocol.common import Page
from beamlink.protocol.compute import (
    TERMINAL_STATES,
    EndpointInfo,
    EndpointRegister,
    EndpointRegistered,
    FunctionCreate,
    FunctionInfo,
    TaskBatch,
    TaskBatchCreated,
    TaskIds,
    TaskInfo,
    TaskOutput,
    TaskResult,
)
from beamlink.protocol.task_session import CLOSE_AUTH, Refused
from beamlink.service.api.deps import CurrentPrincipal, PageParams, State, principal_of_token
from beamlink.service.api.grants import add_grant_routes
from beamlink.service.api.sockets import pump_frames
from beamlink.service.auth.principal import Principal
from beamlink.service.compute import endpoints, functions, submitters, tasks
from beamlink.service.compute.models import Endpoint, Function, Task
from beamlink.service.db.paging import paginate
from beamlink.service.state import ServiceState

__all__ = ["endpoints_router", "functions_router", "tasks_router"]

T = TypeVar("T")

functions_router = APIRouter(prefix="/v1/functions", tags=["compute"])
endpoints_router = APIRouter(prefix="/v1/endpoints", tags=["compute"])
tasks_router = APIRouter(prefix="/v1/tasks", tags=["compute"])


# -- functions -------------------------------------------------------------------------------------


@functions_router.post(
    "", response_model=FunctionInfo, status_code=status.HTTP_201_CREATED, summary="Register a function."
)
def register_function(state: State, principal: CurrentPrincipal, body: FunctionCreate) -> FunctionInfo:
    with state.db.transaction() as session:
        return functions.function_info(session, functions.create_function(session, principal, body))


@functions_router.get("", response_model=Page[FunctionInfo], summary="Functions you own or may run.")
def list_functions(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    owned: Annotated[bool, Query(description="Only your own.")] = False,
) -> Page[FunctionInfo]:
    with state.db.transaction() as session:
        query = functions.functions_query(principal, owned_only=owned)
        rows, cursor = paginate(session, query, Function, page.limit, page.cursor)
        return Page(items=[functions.function_info(session, f) for f in rows], next_cursor=cursor)


@functions_router.get("/{function_id}", response_model=FunctionInfo, summary="Show a function.")
def get_function(
    state: State,
    principal: CurrentPrincipal,
    function_id: str,
    include_source: Annotated[bool, Query(description="Include the source text.")] = False,
) -> FunctionInfo:
    with state.db.transaction() as session:
        function = functions.get_function(session, principal, function_id)
        return functions.function_info(session, function, with_source=include_source)


@functions_router.delete(
    "/{function_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a function (its owner)."
)
def delete_function(state: State, principal: CurrentPrincipal, function_id: str) -> Response:
    with state.db.transaction() as session:
        functions.delete_function(session, principal, function_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


add_grant_routes(functions_router, functions.FUNCTION_POLICY, functions.get_function, manage_role="owner")


# -- endpoints -------------------------------------------------------------------------------------


@endpoints_router.post(
    "",
    response_model=EndpointRegistered,
    status_code=status.HTTP_201_CREATED,
    summary="Register your endpoint by name (created the first time); returns a fresh agent secret.",
)
def register_endpoint(
    state: State, principal: CurrentPrincipal, body: EndpointRegister
) -> EndpointRegistered:
    with state.db.transaction() as session:
        endpoint, secret = endpoints.register_endpoint(session, principal, body)
        return endpoints.registered_info(endpoint, secret)


@endpoints_router.put(
    "/{endpoint_id}",
    response_model=EndpointRegistered,
    summary="Register an existing endpoint again (each start); only its owner may.",
)
def reregister_endpoint(
    state: State, principal: CurrentPrincipal, endpoint_id: str, body: EndpointRegister
) -> EndpointRegistered:
    with state.db.transaction() as session:
        endpoint, secret = endpoints.register_endpoint(session, principal, body, endpoint_id)
        return endpoints.registered_info(endpoint, secret)


@endpoints_router.get("", response_model=Page[EndpointInfo], summary="Endpoints you own or may use.")
def list_endpoints(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    owned: Annotated[bool, Query(description="Only your own.")] = False,
) -> Page[EndpointInfo]:
    with state.db.transaction() as session:
        query = endpoints.endpoints_query(principal, owned_only=owned)
        rows, cursor = paginate(session, query, Endpoint, page.limit, page.cursor)
        return Page(items=[endpoints.endpoint_info(e) for e in rows], next_cursor=cursor)


@endpoints_router.get(
    "/{endpoint}", response_model=EndpointInfo, summary="An endpoint (by id, or your own by name)."
)
def get_endpoint(state: State, principal: CurrentPrincipal, endpoint: str) -> EndpointInfo:
    with state.db.transaction() as session:
        return endpoints.endpoint_info(endpoints.get_endpoint(session, principal, endpoint))


@endpoints_router.get(
    "/{endpoint}/status", response_model=EndpointInfo, summary="Online or offline, last heartbeat, load."
)
def endpoint_status(state: State, principal: CurrentPrincipal, endpoint: str) -> EndpointInfo:
    return get_endpoint(state, principal, endpoint)


@endpoints_router.delete(
    "/{endpoint}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an endpoint and its tasks (its owner).",
)
def delete_endpoint(
    state: State,
    principal: CurrentPrincipal,
    endpoint: str,
    force: Annotated[bool, Query(description="Delete even while it is online.")] = False,
) -> Response:
    with state.db.transaction() as session:
        endpoints.delete_endpoint(session, principal, endpoint, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


add_grant_routes(endpoints_router, endpoints.ENDPOINT_POLICY, endpoints.get_endpoint, manage_role="owner")


# -- tasks -----------------------------------------------------------------------------------------


@tasks_router.post(
    "",
    response_model=TaskBatchCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Submit a batch of tasks to one endpoint.",
)
async def submit_tasks(state: State, principal: CurrentPrincipal, body: TaskBatch) -> TaskBatchCreated:
    return await submitters.submit(state, principal, body)


@tasks_router.get("", response_model=Page[TaskInfo], summary="Your tasks, newest last.")
def list_tasks(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    task_state: Annotated[str | None, Query(alias="state", description="Only tasks in this state.")] = None,
    endpoint_id: str | None = None,
    task_group_id: str | None = None,
) -> Page[TaskInfo]:
    with state.db.transaction() as session:
        query = tasks.tasks_query(
            principal, state=task_state, endpoint_id=endpoint_id, task_group_id=task_group_id
        )
        rows, cursor = paginate(session, query, Task, page.limit, page.cursor)
        return Page(items=[tasks.task_info(t) for t in rows], next_cursor=cursor)


@tasks_router.post("/status", response_model=list[TaskInfo], summary="Many tasks by id, in one request.")
def tasks_status(state: State, principal: CurrentPrincipal, body: TaskIds) -> list[TaskInfo]:
    with state.db.transaction() as session:
        found = {t.id: t for t in session.scalars(tasks.tasks_query(principal, ids=body.task_ids))}
        missing = [i for i in body.task_ids if i not in found]
        if missing:
            raise NotFound(
                f"task {missing[0]} not found (or you have no access to it)", details={"missing": missing}
            )
        return [tasks.task_info(found[i]) for i in body.task_ids]


@tasks_router.post("/cancel", response_model=list[TaskInfo], summary="Cancel many tasks.")
def cancel_tasks(state: State, principal: CurrentPrincipal, body: TaskIds) -> list[TaskInfo]:
    with state.db.transaction() as session:
        finished, signal = tasks.cancel_tasks(session, principal, body.task_ids, online=state.hub.online())
    state.hub.publish(finished)
    for endpoint_id, ids in signal.items():
        state.hub.cancel_on_agent(endpoint_id, ids)
    return tasks_status(state, principal, body)


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


@tasks_router.get(
    "/stream",
    summary="Server-sent events: the results of a task group as they finish (finished ones first).",
    response_class=StreamingResponse,
)
async def stream_results(state: State, principal: CurrentPrincipal, task_group_id: str) -> StreamingResponse:
    watch = await submitters.watch_group(state, principal, task_group_id)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield _sse("open", json.dumps({"task_group_id": task_group_id}))
            for result in watch.finished:
                yield _sse("result", result.model_dump_json())
            while True:
                try:
                    batch = await asyncio.wait_for(watch.next_batch(), timeout=15.0)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield b"".join(_sse("result", r.model_dump_json()) for r in batch)
        finally:
            watch.close()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@tasks_router.websocket("/session")
async def task_session(websocket: WebSocket) -> None:
    """The submitter WebSocket (protocol/task_session.py): batches in, results pushed back."""
    state: ServiceState = websocket.app.state.beamlink
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    # Accept first, then refuse with a reason: a refused handshake would tell the submitter nothing.
    await websocket.accept()
    try:
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed(
                "this socket needs a bearer token: run `beamlink login`, or send "
                "`Authorization: Bearer <token>`",
                details={"reason": "missing"},
            )
        principal = await principal_of_token(state, token)
    except AuthenticationFailed as exc:
        refused = Refused(status=exc.status, error=exc.to_dict())
        with contextlib.suppress(Exception):
            await websocket.send_text(refused.model_dump_json())
            await websocket.close(CLOSE_AUTH, exc.message[:120])
        return

    async def close(code: int, reason: str) -> None:
        await websocket.close(code, reason)

    session = submitters.TaskSession(state, principal, websocket.send_text, close)
    try:
        await pump_frames(websocket, session.receive)
    finally:
        await session.finish()


@tasks_router.get("/{task_id}", response_model=TaskInfo, summary="A task's state and history.")
def get_task(state: State, principal: CurrentPrincipal, task_id: str) -> TaskInfo:
    with state.db.transaction() as session:
        return tasks.task_info(tasks.get_task(session, principal, task_id))


def _finished(principal: Principal, task_id: str) -> Callable[[Session], TaskResult | None]:
    def read(session: Session) -> TaskResult | None:
        task = tasks.get_task(session, principal, task_id)
        return tasks.task_result(task) if task.state in TERMINAL_STATES else None

    return read


@tasks_router.get(
    "/{task_id}/result",
    response_model=TaskResult,
    summary="A task's result or error; with ?wait=S, waits up to S seconds for it to finish.",
)
async def get_result(
    state: State,
    principal: CurrentPrincipal,
    task_id: str,
    wait: Annotated[float, Query(ge=0, le=600, description="Seconds to wait for the task to finish.")] = 0,
) -> TaskResult:
    read = _finished(principal, task_id)
    if wait > 0:
        result = await state.hub.wait_for(task_id, wait, lambda: state.db.run(read))
    else:
        result = await state.db.run(read)
    if result is None:
        info = await state.db.run(lambda s: tasks.task_info(tasks.get_task(s, principal, task_id)))
        return TaskResult(id=info.id, task_group_id=info.task_group_id, state=info.state)
    if result.state == "success" and result.result is None:
        raise NotFound(
            f"the result of task {task_id} was released or has expired (results are kept "
            f"{state.settings.compute_result_ttl_seconds // 3600} h): run the task again",
            details={"task_id": task_id, "reason": "released"},
        )
    return result


@tasks_router.delete(
    "/{task_id}/result", response_model=TaskInfo, summary="Release a finished task's result."
)
def release_result(state: State, principal: CurrentPrincipal, task_id: str) -> TaskInfo:
    with state.db.transaction() as session:
        return tasks.task_info(tasks.release_result(session, principal, task_id))


@tasks_router.post("/{task_id}/cancel", response_model=TaskInfo, summary="Cancel a task.")
def cancel_task(state: State, principal: CurrentPrincipal, task_id: str) -> TaskInfo:
    return cancel_tasks(state, principal, TaskIds(task_ids=[task_id]))[0]


@tasks_router.get("/{task_id}/output", response_model=TaskOutput, summary="What the task printed (bounded).")
def task_output(state: State, principal: CurrentPrincipal, task_id: str) -> TaskOutput:
    with state.db.transaction() as session:
        task = tasks.get_task(session, principal, task_id)
        return TaskOutput(id=task.id, stdout=task.stdout, stderr=task.stderr)
