"""``/v1/transfers`` and ``/v1/deletes``: submit, follow, cancel. Thin routes over
:mod:`beamlink.service.transfer.transfers`; a delete is a task of the same table (``kind: delete``), so
its status, events and cancel are the transfer routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Query, Response, status
from sqlalchemy.orm import Session

from beamlink.protocol.common import Page
from beamlink.protocol.transfers import DeleteCreate, TransferCreate, TransferEvent, TransferInfo
from beamlink.service.api.deps import CurrentPrincipal, PageParams, State
from beamlink.service.db.paging import paginate
from beamlink.service.state import ServiceState
from beamlink.service.transfer import transfers
from beamlink.service.transfer.models import Transfer

__all__ = ["deletes_router", "transfers_router"]

T = TypeVar("T")
transfers_router = APIRouter(prefix="/v1/transfers", tags=["transfer"])
deletes_router = APIRouter(prefix="/v1/deletes", tags=["transfer"])


async def _in_thread(state: ServiceState, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with state.db.transaction() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(run)


async def _submitted(
    state: ServiceState, response: Response, result: tuple[TransferInfo, bool]
) -> TransferInfo:
    info, new = result
    response.status_code = status.HTTP_201_CREATED if new else status.HTTP_200_OK
    if new and info.state == "ACTIVE":
        await state.collections.send_jobs([info.destination_collection_id])
    return info


@transfers_router.post(
    "",
    response_model=TransferInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Submit a transfer (201); the same submission_id again returns the first one (200).",
)
async def submit_transfer(
    state: State, principal: CurrentPrincipal, body: TransferCreate, response: Response
) -> TransferInfo:
    def submit(session: Session) -> tuple[TransferInfo, bool]:
        transfer, new = transfers.submit_transfer(session, principal, body, online=state.collections.online)
        return transfers.transfer_info(session, transfer), new

    return await _submitted(state, response, await _in_thread(state, submit))


@deletes_router.post(
    "",
    response_model=TransferInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Delete paths in a collection, asynchronously (follow it at /v1/transfers/{id}).",
)
async def submit_delete(
    state: State, principal: CurrentPrincipal, body: DeleteCreate, response: Response
) -> TransferInfo:
    def submit(session: Session) -> tuple[TransferInfo, bool]:
        transfer, new = transfers.submit_delete(session, principal, body, online=state.collections.online)
        return transfers.transfer_info(session, transfer), new

    return await _submitted(state, response, await _in_thread(state, submit))


@transfers_router.get("", response_model=Page[TransferInfo], summary="Your transfer and delete tasks.")
def list_transfers(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    task_state: Annotated[
        str | None, Query(alias="state", description="ACTIVE, INACTIVE, SUCCEEDED, FAILED.")
    ] = None,
    kind: Annotated[str | None, Query(description="transfer or delete.")] = None,
) -> Page[TransferInfo]:
    with state.db.transaction() as session:
        query = transfers.transfers_query(principal, state=task_state, kind=kind)
        rows, cursor = paginate(session, query, Transfer, page.limit, page.cursor)
        return Page(items=[transfers.transfer_info(session, t) for t in rows], next_cursor=cursor)


@transfers_router.get("/{transfer_id}", response_model=TransferInfo, summary="A task's state and counts.")
def get_transfer(state: State, principal: CurrentPrincipal, transfer_id: str) -> TransferInfo:
    with state.db.transaction() as session:
        return transfers.transfer_info(session, transfers.get_transfer(session, principal, transfer_id))


@deletes_router.get(
    "/{transfer_id}", response_model=TransferInfo, summary="A delete task (as /v1/transfers)."
)
def get_delete(state: State, principal: CurrentPrincipal, transfer_id: str) -> TransferInfo:
    return get_transfer(state, principal, transfer_id)


@transfers_router.get("/{transfer_id}/events", response_model=list[TransferEvent], summary="The event log.")
def transfer_events(
    state: State,
    principal: CurrentPrincipal,
    transfer_id: str,
    after: Annotated[int, Query(ge=0, description="Only events after this sequence number.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[TransferEvent]:
    with state.db.transaction() as session:
        return transfers.list_events(session, principal, transfer_id, after=after, limit=limit)


@transfers_router.post("/{transfer_id}/cancel", response_model=TransferInfo, summary="Cancel a task.")
async def cancel_transfer(state: State, principal: CurrentPrincipal, transfer_id: str) -> TransferInfo:
    def cancel(session: Session) -> tuple[TransferInfo, bool]:
        transfer, held = transfers.cancel_transfer(session, principal, transfer_id)
        return transfers.transfer_info(session, transfer), held

    info, held = await _in_thread(state, cancel)
    state.collections.changed([info.id])
    if held:
        await state.collections.cancel(info.destination_collection_id, info.id, "cancelled by its owner")
    return info
