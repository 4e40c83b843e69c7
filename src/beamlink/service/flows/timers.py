"""Timers: start runs of a flow once, every N seconds, or on a cron schedule.

The schedule arithmetic is pure (:func:`next_fire`, :func:`plan_tick`); the database holds the only
state (``next_run_at``), so a timer survives restarts. A tick is skipped while the timer's previous run
is still ACTIVE or INACTIVE. After downtime a timer fires once for everything it missed, then goes back
to its schedule: the next time is always computed *after now*, never from the tick that was missed.

Runs are started with a ``request_id`` derived from the timer and the tick, so a crash between starting
a run and recording it starts no second run when the tick is retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

import anyio.to_thread
from croniter import CroniterBadDateError, croniter
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from beamlink.errors import BeamlinkError, Conflict, InvalidInput, NotFound
from beamlink.flowlang import check_input
from beamlink.protocol.flows import RunCreate, RunInfo, TimerCreate, TimerInfo, TimerSchedule
from beamlink.service.auth.models import User
from beamlink.service.auth.principal import Principal
from beamlink.service.auth.tokens import principal_of
from beamlink.service.db.base import utcnow
from beamlink.service.flows.models import Run, Timer
from beamlink.service.flows.store import get_flow
from beamlink.service.state import ServiceState

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "MIN_INTERVAL_SECONDS",
    "Tick",
    "create_timer",
    "delete_timer",
    "fire_due_timers",
    "get_timer",
    "next_fire",
    "normalize_schedule",
    "pause_timer",
    "plan_tick",
    "resume_timer",
    "run_timer_loop",
    "timer_info",
    "timers_query",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A previous run in one of these keeps the timer from starting another (the tick is skipped).
ACTIVE_RUN_STATUSES = ("ACTIVE", "INACTIVE")
#: Shorter periods would have the service do little else; a flow that needs it should loop itself.
MIN_INTERVAL_SECONDS = 1.0
#: The loop never sleeps longer than this, so new, resumed and paused timers are seen quickly.
MAX_SLEEP_SECONDS = 1.0
_CLAIM_BATCH = 100
_MICROSECOND = timedelta(microseconds=1)
_CRON_EXAMPLE = "'*/5 * * * *' (every five minutes) or '0 3 * * 1' (Mondays at 03:00 UTC)"
_FIELDS_OF = {"once": {"at"}, "interval": {"every_seconds"}, "cron": {"cron"}}
_EXAMPLES = {
    "once": '{"type": "once", "at": "2030-01-01T12:00:00Z"}',
    "interval": '{"type": "interval", "every_seconds": 600}',
    "cron": '{"type": "cron", "cron": "*/5 * * * *"}',
}


# -- schedules (pure) ----------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    # A time without a zone is taken as UTC, as the cron schedule is.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _invalid(field: str, problem: str, kind: str) -> InvalidInput:
    return InvalidInput(
        f"schedule.{field} {problem}; for example {_EXAMPLES[kind]}", details={"field": f"schedule.{field}"}
    )


def _check_fields(schedule: TimerSchedule) -> None:
    for kind, fields in _FIELDS_OF.items():
        if kind == schedule.type:
            continue
        for field in fields:
            if getattr(schedule, field) is not None:
                raise _invalid(
                    field, f"does not apply to a {schedule.type} timer (only to {kind})", schedule.type
                )
    if schedule.type == "interval":
        if schedule.every_seconds is None:
            raise _invalid("every_seconds", "is required for an interval timer", "interval")
        if schedule.every_seconds < MIN_INTERVAL_SECONDS:
            raise _invalid(
                "every_seconds",
                f"must be at least {MIN_INTERVAL_SECONDS:g}, got {schedule.every_seconds:g}",
                "interval",
            )
    if schedule.type == "cron":
        if not schedule.cron:
            raise _invalid("cron", "is required for a cron timer", "cron")
        if not croniter.is_valid(schedule.cron):
            raise InvalidInput(
                f"schedule.cron {schedule.cron!r} is not a cron expression: write five fields "
                f"(minute hour day-of-month month day-of-week), e.g. {_CRON_EXAMPLE}",
                details={"field": "schedule.cron", "value": schedule.cron},
            )
        if _next_cron(schedule, datetime(2000, 1, 1, tzinfo=UTC), first=True) is None:
            raise InvalidInput(
                f"schedule.cron {schedule.cron!r} never matches a date (February 30th?): "
                f"e.g. {_CRON_EXAMPLE}",
                details={"field": "schedule.cron", "value": schedule.cron},
            )


def normalize_schedule(schedule: TimerSchedule, now: datetime) -> TimerSchedule:
    """The schedule checked, its times in UTC and its defaults filled in (a once timer's ``at`` and an
    interval's ``start`` default to ``now``, which also anchors the interval's ticks).

    InvalidInput names the field and gives an example. A once timer in the past is accepted (it fires at
    once); an ``end`` before ``start``, or one that leaves no time to fire, is refused.
    """
    _check_fields(schedule)
    now = _utc(now)
    start, end = _opt_utc(schedule.start), _opt_utc(schedule.end)
    if start is not None and end is not None and end < start:
        raise _invalid(
            "end", f"({end.isoformat()}) is before schedule.start ({start.isoformat()})", schedule.type
        )
    if end is not None and end < now:
        raise _invalid("end", f"({end.isoformat()}) is in the past: the timer would never run", schedule.type)
    at = _opt_utc(schedule.at)
    if schedule.type == "once" and at is None:
        at = now
    if schedule.type == "interval" and start is None:
        start = now
    normal = schedule.model_copy(update={"at": at, "start": start, "end": end})
    if next_fire(normal, now, first=True) is None:
        raise _invalid(
            "end",
            f"({end.isoformat() if end else '-'}) leaves the timer no time to run: move it later",
            schedule.type,
        )
    return normal


def _next_once(schedule: TimerSchedule, after: datetime, first: bool) -> datetime | None:
    start = _opt_utc(schedule.start)
    when = _opt_utc(schedule.at) or after
    if start is not None and start > when:
        when = start
    # A once timer that has not fired yet fires even when its time has passed (created late, or
    # the service was down): that is its one run.
    return when if first or when > after else None


def _next_interval(schedule: TimerSchedule, after: datetime, first: bool) -> datetime:
    assert schedule.every_seconds is not None
    period = max(1, round(schedule.every_seconds * 1_000_000))
    anchor = _opt_utc(schedule.start) or after
    if after < anchor:
        return anchor
    elapsed = (after - anchor) // _MICROSECOND
    ticks = -(-elapsed // period) if first else elapsed // period + 1
    return anchor + timedelta(microseconds=ticks * period)


def _next_cron(schedule: TimerSchedule, after: datetime, first: bool) -> datetime | None:
    assert schedule.cron is not None
    # croniter answers strictly after its base: step back a microsecond where "at or after" is meant.
    base = after - _MICROSECOND if first else after
    start = _opt_utc(schedule.start)
    if start is not None and start - _MICROSECOND > base:
        base = start - _MICROSECOND
    try:
        found: datetime = croniter(schedule.cron, base).get_next(datetime)
    except CroniterBadDateError:
        return None
    return _utc(found)


def next_fire(schedule: TimerSchedule, after: datetime, *, first: bool = False) -> datetime | None:
    """When the schedule next fires: strictly after ``after``, or (``first``: for a timer that has not
    fired since it was created or resumed) at or after it; None when it never fires again.

    No time is before ``start`` or after ``end``. Interval ticks lie on the grid ``start + k * every``.
    """
    after = _utc(after)
    if schedule.type == "once":
        found = _next_once(schedule, after, first)
    elif schedule.type == "interval":
        found = _next_interval(schedule, after, first)
    else:
        found = _next_cron(schedule, after, first)
    end = _opt_utc(schedule.end)
    if found is not None and end is not None and found > end:
        return None
    return found


@dataclass(frozen=True, slots=True)
class Tick:
    """What one due tick does: start a run (or skip it), and when the timer fires next (None: it ends)."""

    fire: bool
    next_run_at: datetime | None


def plan_tick(schedule: TimerSchedule, now: datetime, *, previous_active: bool) -> Tick:
    """A due tick, however many ticks were missed before ``now``: at most one run, next time after now."""
    return Tick(fire=not previous_active, next_run_at=next_fire(schedule, now))


# -- the domain ------------------------------------------------------------------------------------


def create_timer(
    session: Session, principal: Principal, body: TimerCreate, *, now: datetime | None = None
) -> Timer:
    """A timer owned by the caller, who must be allowed to start the flow; the body is checked against
    the flow's input schema now, rather than failing at every tick."""
    flow = get_flow(session, principal, body.flow_id, "starter")
    now = now or utcnow()
    schedule = normalize_schedule(body.schedule, now)
    check_input(flow.input_schema, body.body)
    timer = Timer(
        owner_id=principal.id,
        flow_id=flow.id,
        name=body.name,
        schedule=schedule.model_dump(mode="json"),
        body=body.body,
        run_label=body.run_label,
        status="ACTIVE",
        next_run_at=next_fire(schedule, now, first=True),
        created_at=now,
    )
    session.add(timer)
    session.flush()
    return timer


def timers_query(
    principal: Principal, *, flow_id: str | None = None, status: str | None = None, all_users: bool = False
) -> Select[Timer]:
    """The caller's timers (an admin may ask for everyone's), for paging."""
    query = select(Timer)
    if not (all_users and principal.is_admin):
        query = query.where(Timer.owner_id == principal.id)
    if flow_id is not None:
        query = query.where(Timer.flow_id == flow_id)
    if status is not None:
        query = query.where(Timer.status == status.upper())
    return query


def get_timer(session: Session, principal: Principal, timer_id: str) -> Timer:
    """The timer, for its owner or an admin; NotFound for anyone else."""
    timer = session.get(Timer, timer_id)
    if timer is None or (timer.owner_id != principal.id and not principal.is_admin):
        raise NotFound(
            f"timer {timer_id} not found (or it is not yours): list yours with `beamlink timer list`",
            details={"timer_id": timer_id},
        )
    return timer


def pause_timer(session: Session, principal: Principal, timer_id: str) -> Timer:
    """Stop starting runs until resumed (ticks while paused are not made up). Pausing twice is harmless."""
    timer = get_timer(session, principal, timer_id)
    if timer.status == "ENDED":
        raise Conflict(
            f"timer {timer.name!r} has ended: there is nothing to pause", details={"timer_id": timer.id}
        )
    timer.status = "PAUSED"
    timer.next_run_at = None
    return timer


def resume_timer(
    session: Session, principal: Principal, timer_id: str, *, now: datetime | None = None
) -> Timer:
    """Start runs again from the next scheduled time (a once timer that never fired fires at once)."""
    timer = get_timer(session, principal, timer_id)
    if timer.status == "ENDED":
        raise Conflict(
            f"timer {timer.name!r} has ended: create a new one to run the flow again",
            details={"timer_id": timer.id},
        )
    if timer.status == "ACTIVE":
        return timer
    upcoming = next_fire(TimerSchedule.model_validate(timer.schedule), now or utcnow(), first=True)
    timer.status = "ACTIVE" if upcoming is not None else "ENDED"
    timer.next_run_at = upcoming
    return timer


def delete_timer(session: Session, principal: Principal, timer_id: str) -> Timer:
    """Forget the timer; runs it started are not touched."""
    timer = get_timer(session, principal, timer_id)
    session.delete(timer)
    return timer


def timer_info(timer: Timer) -> TimerInfo:
    return TimerInfo(
        id=timer.id,
        name=timer.name,
        flow_id=timer.flow_id,
        owner_id=timer.owner_id,
        schedule=TimerSchedule.model_validate(timer.schedule),
        body=timer.body,
        run_label=timer.run_label,
        status=cast(Any, timer.status),
        next_run_at=timer.next_run_at,
        last_run_at=timer.last_run_at,
        last_run_id=timer.last_run_id,
        runs_started=timer.runs_started,
        ticks_skipped=timer.ticks_skipped,
        last_error=timer.last_error,
        created_at=timer.created_at,
    )


# -- the loop ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Firing:
    """A tick to fire, read in one transaction and recorded in another after the run started."""

    timer_id: str
    flow_id: str
    principal: Principal
    body: RunCreate
    next_run_at: datetime | None


def _previous_active(session: Session, timer: Timer) -> bool:
    if timer.last_run_id is None:
        return False
    status = session.scalar(select(Run.status).where(Run.id == timer.last_run_id))
    return status in ACTIVE_RUN_STATUSES


def _claim(session: Session, timer: Timer, now: datetime) -> _Firing | None:
    """Plan one due tick: skipped ticks are recorded here; a tick to fire is returned to be started."""
    schedule = TimerSchedule.model_validate(timer.schedule)
    tick = plan_tick(schedule, now, previous_active=_previous_active(session, timer))
    if not tick.fire:
        timer.ticks_skipped += 1
        _advance(timer, tick.next_run_at)
        return None
    owner = session.get(User, timer.owner_id)
    assert owner is not None  # the timer row cascades away with its owner
    assert timer.next_run_at is not None
    request_id = f"timer:{timer.id}:{timer.next_run_at.strftime('%Y%m%dT%H%M%S.%fZ')}"
    body = RunCreate(body=timer.body, label=timer.run_label or timer.name[:64], request_id=request_id)
    return _Firing(timer.id, timer.flow_id, principal_of(session, owner), body, tick.next_run_at)


def _advance(timer: Timer, next_run_at: datetime | None) -> None:
    timer.next_run_at = next_run_at
    if next_run_at is None and timer.status == "ACTIVE":
        timer.status = "ENDED"


def _claim_due(session: Session, now: datetime) -> list[_Firing]:
    due = session.scalars(
        select(Timer)
        .where(Timer.status == "ACTIVE", Timer.next_run_at <= now)
        .order_by(Timer.next_run_at)
        .limit(_CLAIM_BATCH)
    )
    return [firing for timer in due if (firing := _claim(session, timer, now)) is not None]


def _record(session: Session, firing: _Firing, run: RunInfo | None, error: str | None, now: datetime) -> None:
    timer = session.get(Timer, firing.timer_id)
    if timer is None:
        return  # deleted while its run started
    if run is not None:
        timer.runs_started += 1
        timer.last_run_id = run.run_id
        timer.last_run_at = now
    timer.last_error = error
    if timer.status == "ACTIVE":  # paused meanwhile: resume computes its own next time
        _advance(timer, firing.next_run_at)


def _next_due(session: Session) -> datetime | None:
    return session.scalar(
        select(Timer.next_run_at)
        .where(Timer.status == "ACTIVE", Timer.next_run_at.is_not(None))
        .order_by(Timer.next_run_at)
        .limit(1)
    )


async def _in_thread(state: ServiceState, fn: Callable[[Session], T]) -> T:
    def work() -> T:
        with state.db.transaction() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(work)


async def _start(state: ServiceState, firing: _Firing) -> tuple[RunInfo | None, str | None]:
    try:
        return await state.flows.start_run(firing.principal, firing.flow_id, firing.body), None
    except BeamlinkError as exc:
        log.info("timer %s could not start a run: %s", firing.timer_id, exc.message)
        return None, f"{exc.code}: {exc.message}"
    except Exception as exc:  # a bug in the engine: record it on the timer, and keep its schedule
        log.exception("timer %s: starting a run failed", firing.timer_id)
        return None, f"INTERNAL_ERROR: {exc}"


async def fire_due_timers(state: ServiceState, *, now: Callable[[], datetime] = utcnow) -> float:
    """One pass: fire (or skip) every due timer; returns how long to sleep before the next pass."""
    firings = await _in_thread(state, lambda s: _claim_due(s, now()))
    for firing in firings:
        run, error = await _start(state, firing)
        await _in_thread(state, partial(_record, firing=firing, run=run, error=error, now=now()))
    if len(firings) >= _CLAIM_BATCH:
        return 0.0
    upcoming = await _in_thread(state, _next_due)
    if upcoming is None:
        return MAX_SLEEP_SECONDS
    return min(MAX_SLEEP_SECONDS, max(0.0, (upcoming - now()).total_seconds()))


async def run_timer_loop(state: ServiceState) -> None:
    """Fire timers until cancelled; an error is logged and the loop goes on."""
    while True:
        try:
            wait = await fire_due_timers(state)
        except Exception:
            log.exception("timer pass failed; trying again in %.1f s", MAX_SLEEP_SECONDS)
            wait = MAX_SLEEP_SECONDS
        await asyncio.sleep(wait)
