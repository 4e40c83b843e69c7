"""``/v1/timers`` and ``/v1/triggers``: thin routes over :mod:`beamlink.service.flows.timers` and
:mod:`beamlink.service.flows.triggers`. Only a timer's or trigger's owner (or an admin) sees it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Query, Response, status
from sqlalchemy.orm import Session

from beamlink.protocol.common import Page
from beamlink.protocol.flows import TimerCreate, TimerInfo, TriggerCreate, TriggerInfo
from beamlink.service.api.deps import CurrentPrincipal, PageParams, State
from beamlink.service.db.paging import paginate
from beamlink.service.flows import timers, triggers
from beamlink.service.flows.models import Timer, Trigger
from beamlink.service.state import ServiceState

__all__ = ["timers_router", "triggers_router"]

T = TypeVar("T")
timers_router = APIRouter(prefix="/v1/timers", tags=["flows"])
triggers_router = APIRouter(prefix="/v1/triggers", tags=["flows"])

FlowFilter = Annotated[str | None, Query(description="Only those of this flow.")]
AllUsers = Annotated[bool, Query(description="Admins: everyone's, not only yours.")]


async def _in_thread(state: ServiceState, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with state.db.transaction() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(run)


# -- timers --------------------------------------------------------------------------------------------


@timers_router.post(
    "", response_model=TimerInfo, status_code=status.HTTP_201_CREATED, summary="Start runs on a schedule."
)
def create_timer(state: State, principal: CurrentPrincipal, body: TimerCreate) -> TimerInfo:
    with state.db.transaction() as session:
        return timers.timer_info(timers.create_timer(session, principal, body))


@timers_router.get("", response_model=Page[TimerInfo], summary="Your timers.")
def list_timers(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    flow_id: FlowFilter = None,
    timer_status: Annotated[str | None, Query(alias="status", description="ACTIVE, PAUSED or ENDED.")] = None,
    all_users: AllUsers = False,
) -> Page[TimerInfo]:
    with state.db.transaction() as session:
        query = timers.timers_query(principal, flow_id=flow_id, status=timer_status, all_users=all_users)
        rows, cursor = paginate(session, query, Timer, page.limit, page.cursor)
        return Page(items=[timers.timer_info(t) for t in rows], next_cursor=cursor)


@timers_router.get("/{timer_id}", response_model=TimerInfo, summary="A timer and its counts.")
def get_timer(state: State, principal: CurrentPrincipal, timer_id: str) -> TimerInfo:
    with state.db.transaction() as session:
        return timers.timer_info(timers.get_timer(session, principal, timer_id))


@timers_router.post("/{timer_id}/pause", response_model=TimerInfo, summary="Start no runs until resumed.")
def pause_timer(state: State, principal: CurrentPrincipal, timer_id: str) -> TimerInfo:
    with state.db.transaction() as session:
        return timers.timer_info(timers.pause_timer(session, principal, timer_id))


@timers_router.post("/{timer_id}/resume", response_model=TimerInfo, summary="Go on from the next tick.")
def resume_timer(state: State, principal: CurrentPrincipal, timer_id: str) -> TimerInfo:
    with state.db.transaction() as session:
        return timers.timer_info(timers.resume_timer(session, principal, timer_id))


@timers_router.delete("/{timer_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Forget a timer.")
def delete_timer(state: State, principal: CurrentPrincipal, timer_id: str) -> Response:
    with state.db.transaction() as session:
        timers.delete_timer(session, principal, timer_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- triggers ------------------------------------------------------------------------------------------


@triggers_router.post(
    "",
    response_model=TriggerInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Start a run for each new file under a collection path.",
)
async def create_trigger(state: State, principal: CurrentPrincipal, body: TriggerCreate) -> TriggerInfo:
    """The files already there are recorded before this answers, so every file written after it is new
    (an offline collection is noted in ``last_error`` and recorded when it comes back)."""
    trigger_id = await _in_thread(state, lambda s: triggers.create_trigger(s, principal, body).id)
    await triggers.scan_trigger(state, trigger_id)
    return await _in_thread(
        state, lambda s: triggers.trigger_info(triggers.get_trigger(s, principal, trigger_id))
    )


@triggers_router.get("", response_model=Page[TriggerInfo], summary="Your triggers.")
def list_triggers(
    state: State,
    principal: CurrentPrincipal,
    page: PageParams,
    flow_id: FlowFilter = None,
    trigger_status: Annotated[str | None, Query(alias="status", description="ACTIVE or PAUSED.")] = None,
    all_users: AllUsers = False,
) -> Page[TriggerInfo]:
    with state.db.transaction() as session:
        query = triggers.triggers_query(
            principal, flow_id=flow_id, status=trigger_status, all_users=all_users
        )
        rows, cursor = paginate(session, query, Trigger, page.limit, page.cursor)
        return Page(items=[triggers.trigger_info(t) for t in rows], next_cursor=cursor)


@triggers_router.get("/{trigger_id}", response_model=TriggerInfo, summary="A trigger and its counts.")
def get_trigger(state: State, principal: CurrentPrincipal, trigger_id: str) -> TriggerInfo:
    with state.db.transaction() as session:
        return triggers.trigger_info(triggers.get_trigger(session, principal, trigger_id))


@triggers_router.post("/{trigger_id}/pause", response_model=TriggerInfo, summary="Stop watching.")
def pause_trigger(state: State, principal: CurrentPrincipal, trigger_id: str) -> TriggerInfo:
    with state.db.transaction() as session:
        return triggers.trigger_info(triggers.pause_trigger(session, principal, trigger_id))


@triggers_router.post("/{trigger_id}/resume", response_model=TriggerInfo, summary="Watch again.")
def resume_trigger(state: State, principal: CurrentPrincipal, trigger_id: str) -> TriggerInfo:
    with state.db.transaction() as session:
        return triggers.trigger_info(triggers.resume_trigger(session, principal, trigger_id))


@triggers_router.delete("/{trigger_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Forget a trigger.")
def delete_trigger(state: State, principal: CurrentPrincipal, trigger_id: str) -> Response:
    with state.db.transaction() as session:
        triggers.delete_trigger(session, principal, trigger_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
