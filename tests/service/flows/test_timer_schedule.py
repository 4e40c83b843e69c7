"""Timer schedules (pure: once, interval, cron, start/end, skipped ticks, downtime), and the timer pass on
a real database with a stand-in flow engine (both backends)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select

from beamlink.errors import BeamlinkError, Conflict, InvalidInput, NotFound, PermissionDenied
from beamlink.flowlang import FlowInputInvalid
from beamlink.protocol.flows import RunCreate, RunInfo, TimerCreate, TimerSchedule
from beamlink.service.auth.models import User
from beamlink.service.auth.principal import Principal
from beamlink.service.db.engine import Database
from beamlink.service.flows import timers
from beamlink.service.flows.models import Flow, Run, Timer
from beamlink.service.flows.timers import Tick, next_fire, normalize_schedule, plan_tick
from beamlink.service.state import ServiceState

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def sec(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def schedule(**fields: Any) -> TimerSchedule:
    return TimerSchedule.model_validate(fields)


# -- once ----------------------------------------------------------------------------------------------


def test_once_fires_at_its_time_then_never_again() -> None:
    s = normalize_schedule(schedule(type="once", at=T0 + sec(60)), T0)
    assert next_fire(s, T0, first=True) == T0 + sec(60)
    assert next_fire(s, T0 + sec(60)) is None


def test_once_in_the_past_is_accepted_and_fires_at_once() -> None:
    s = normalize_schedule(schedule(type="once", at=T0 - sec(3600)), T0)
    assert next_fire(s, T0, first=True) == T0 - sec(3600)  # due already: the loop fires it now
    assert plan_tick(s, T0, previous_active=False) == Tick(fire=True, next_run_at=None)


def test_once_without_a_time_means_now_and_waits_for_its_start() -> None:
    s = normalize_schedule(schedule(type="once"), T0)
    assert s.at == T0
    later = normalize_schedule(schedule(type="once", start=T0 + sec(30)), T0)
    assert next_fire(later, T0, first=True) == T0 + sec(30)


# -- interval ------------------------------------------------------------------------------------------


def test_interval_ticks_lie_on_a_grid_from_its_start() -> None:
    s = normalize_schedule(schedule(type="interval", every_seconds=10), T0)
    assert s.start == T0  # filled in: it anchors the grid across restarts
    assert next_fire(s, T0, first=True) == T0
    assert next_fire(s, T0) == T0 + sec(10)
    assert next_fire(s, T0 + sec(10.5)) == T0 + sec(20)
    assert next_fire(s, T0 + sec(10.5), first=True) == T0 + sec(20)
    assert next_fire(s, T0 + sec(20), first=True) == T0 + sec(20)


def test_interval_waits_for_start_and_stops_at_end() -> None:
    s = normalize_schedule(
        schedule(type="interval", every_seconds=60, start=T0 + sec(600), end=T0 + sec(720)), T0
    )
    assert next_fire(s, T0, first=True) == T0 + sec(600)
    assert next_fire(s, T0 + sec(600)) == T0 + sec(660)
    assert next_fire(s, T0 + sec(660)) == T0 + sec(720)  # end itself is still allowed
    assert next_fire(s, T0 + sec(720)) is None


def test_fractional_periods_do_not_drift() -> None:
    s = normalize_schedule(schedule(type="interval", every_seconds=1.1), T0)
    assert next_fire(s, T0 + sec(1100)) == T0 + sec(1101.1)


def test_naive_times_are_utc() -> None:
    naive = normalize_schedule(schedule(type="once", at="2030-01-01T12:00:00"), T0)
    assert naive.at == T0


# -- cron ----------------------------------------------------------------------------------------------


def test_cron_fires_on_its_minutes_in_utc() -> None:
    s = normalize_schedule(schedule(type="cron", cron="*/5 * * * *"), T0 + sec(180))
    assert next_fire(s, T0 + sec(180), first=True) == T0 + sec(300)
    assert next_fire(s, T0 + sec(300)) == T0 + sec(600)
    assert next_fire(s, T0 + sec(300), first=True) == T0 + sec(300)


def test_cron_respects_start_and_end() -> None:
    s = normalize_schedule(
        schedule(type="cron", cron="0 * * * *", start=T0 + sec(3600), end=T0 + sec(3 * 3600)), T0
    )
    assert next_fire(s, T0, first=True) == T0 + sec(3600)  # a cron time equal to start counts
    assert next_fire(s, T0 + sec(3600)) == T0 + sec(7200)
    assert next_fire(s, T0 + sec(3 * 3600)) is None


# -- bad schedules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"type": "interval"}, "schedule.every_seconds", "is required"),
        ({"type": "interval", "every_seconds": 0.2}, "schedule.every_seconds", "at least 1"),
        ({"type": "cron"}, "schedule.cron", "is required"),
        ({"type": "cron", "cron": "every five minutes"}, "schedule.cron", "*/5 * * * *"),
        ({"type": "cron", "cron": "61 * * * *"}, "schedule.cron", "not a cron expression"),
        ({"type": "cron", "cron": "0 0 30 2 *"}, "schedule.cron", "never matches"),
        ({"type": "interval", "every_seconds": 60, "at": T0}, "schedule.at", "does not apply"),
        ({"type": "once", "cron": "* * * * *"}, "schedule.cron", "does not apply"),
        ({"type": "once", "every_seconds": 5}, "schedule.every_seconds", "does not apply"),
        (
            {"type": "interval", "every_seconds": 60, "start": T0 + sec(60), "end": T0},
            "schedule.end",
            "before schedule.start",
        ),
        ({"type": "interval", "every_seconds": 60, "end": T0 - sec(1)}, "schedule.end", "in the past"),
        ({"type": "once", "at": T0 + sec(120), "end": T0 + sec(60)}, "schedule.end", "no time to run"),
    ],
)
def test_bad_schedules_name_the_field_and_show_an_example(
    fields: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_schedule(schedule(**fields), T0)
    assert caught.value.details["field"] == field
    assert words in caught.value.message
    assert "e.g." in caught.value.message or "for example" in caught.value.message


# -- ticks ---------------------------------------------------------------------------------------------


def test_a_tick_is_skipped_while_the_previous_run_is_active() -> None:
    s = normalize_schedule(schedule(type="interval", every_seconds=10), T0)
    assert plan_tick(s, T0 + sec(10), previous_active=True) == Tick(fire=False, next_run_at=T0 + sec(20))
    assert plan_tick(s, T0 + sec(20), previous_active=False) == Tick(fire=True, next_run_at=T0 + sec(30))


def test_after_downtime_a_timer_fires_once_not_once_per_missed_tick() -> None:
    s = normalize_schedule(schedule(type="interval", every_seconds=10), T0)
    back = T0 + sec(10 * 50 + 3)  # fifty ticks missed
    assert plan_tick(s, back, previous_active=False) == Tick(fire=True, next_run_at=T0 + sec(510))
    cron = normalize_schedule(schedule(type="cron", cron="* * * * *"), T0)
    assert plan_tick(cron, T0 + sec(3600 + 5), previous_active=False).next_run_at == T0 + sec(3660)


# -- the timer pass on a database ----------------------------------------------------------------------


@dataclass
class FakeFlows:
    """Stands in for the flow engine: records each start, one run per (owner, request_id)."""

    db: Database
    status: str = "ACTIVE"
    fail: BeamlinkError | None = None
    calls: list[RunCreate] = field(default_factory=list)

    async def start_run(self, principal: Principal, flow_id: str, body: RunCreate) -> RunInfo:
        self.calls.append(body)
        if self.fail is not None:
            raise self.fail
        with self.db.transaction() as session:
            run = session.scalar(
                select(Run).where(Run.owner_id == principal.id, Run.request_id == body.request_id)
            )
            if run is None:
                run = Run(
                    flow_id=flow_id,
                    flow_title="f",
                    owner_id=principal.id,
                    request_id=body.request_id,
                    label=body.label,
                    status=self.status,
                    definition={},
                    input=body.body,
                    output=None,
                )
                session.add(run)
                session.flush()
            return RunInfo(
                run_id=run.id,
                flow_id=flow_id,
                flow_title="f",
                owner_id=principal.id,
                status=cast(Any, run.status),
                display_status=run.status,
                start_time=run.created_at,
            )


@dataclass
class World:
    db: Database
    flows: FakeFlows
    state: ServiceState
    flow_id: str
    alice: Principal
    bob: Principal
    root: Principal

    def create(self, kind: dict[str, Any], *, now: datetime = T0, body: dict[str, Any] | None = None) -> str:
        with self.db.transaction() as session:
            request = TimerCreate(
                flow_id=self.flow_id, name="t", schedule=schedule(**kind), body=body or {"x": 1}
            )
            return timers.create_timer(session, self.alice, request, now=now).id

    def timer(self, timer_id: str) -> Timer:
        with self.db.transaction() as session:
            row = session.get(Timer, timer_id)
            assert row is not None
            session.expunge(row)
            return row

    def tick(self, at: datetime) -> float:
        return asyncio.run(timers.fire_due_timers(self.state, now=lambda: at))

    def finish_runs(self) -> None:
        with self.db.transaction() as session:
            for run in session.scalars(select(Run)):
                run.status = "SUCCEEDED"


def _principal(user: User) -> Principal:
    return Principal(id=user.id, username=user.username, is_admin=user.is_admin)


@pytest.fixture
def world(database: Database) -> World:
    with database.transaction() as session:
        users = [User(username=n, kind="user", is_admin=n == "root") for n in ("alice", "bob", "root")]
        session.add_all(users)
        session.flush()
        flow = Flow(
            owner_id=users[0].id,
            title="f",
            definition={"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            input_schema={"type": "object", "required": ["x"]},
        )
        session.add(flow)
        session.flush()
        alice, bob, root = (_principal(u) for u in users)
        flow_id = flow.id
    flows = FakeFlows(database)
    state = cast(ServiceState, SimpleNamespace(db=database, flows=flows))
    return World(database, flows, state, flow_id, alice, bob, root)


def test_an_interval_timer_fires_skips_while_busy_and_fires_once_after_downtime(world: World) -> None:
    timer_id = world.create({"type": "interval", "every_seconds": 10})
    assert world.timer(timer_id).next_run_at == T0
    world.tick(T0)
    first = world.timer(timer_id)
    assert (first.runs_started, first.ticks_skipped, first.next_run_at) == (1, 0, T0 + sec(10))
    assert first.last_run_id is not None
    world.tick(T0 + sec(5))  # nothing due
    world.tick(T0 + sec(10))  # the first run is still ACTIVE
    busy = world.timer(timer_id)
    assert (busy.runs_started, busy.ticks_skipped, busy.next_run_at) == (1, 1, T0 + sec(20))
    world.finish_runs()
    world.tick(T0 + sec(953))  # down for 94 ticks
    back = world.timer(timer_id)
    assert (back.runs_started, back.ticks_skipped, back.next_run_at) == (2, 1, T0 + sec(960))
    assert len(world.flows.calls) == 2
    assert world.flows.calls[0].body == {"x": 1}
    assert world.flows.calls[0].label == "t"


def test_a_once_timer_fires_once_and_ends(world: World) -> None:
    timer_id = world.create({"type": "once", "at": T0 - sec(60)})
    world.tick(T0)
    world.tick(T0 + sec(60))
    done = world.timer(timer_id)
    assert (done.status, done.runs_started, done.next_run_at) == ("ENDED", 1, None)
    with world.db.transaction() as session, pytest.raises(Conflict, match="has ended"):
        timers.resume_timer(session, world.alice, timer_id)


def test_the_sleep_until_the_next_tick_is_at_most_a_second(world: World) -> None:
    assert world.tick(T0) == timers.MAX_SLEEP_SECONDS  # no timers at all
    world.create({"type": "once", "at": T0 + sec(0.25)})
    assert world.tick(T0) == pytest.approx(0.25)


def test_a_refused_start_is_recorded_and_the_schedule_goes_on(world: World) -> None:
    timer_id = world.create({"type": "interval", "every_seconds": 10})
    world.flows.fail = PermissionDenied("you may not start flow f: ask its owner")
    world.tick(T0)
    failed = world.timer(timer_id)
    assert failed.last_error is not None
    assert "PERMISSION_DENIED" in failed.last_error
    assert (failed.runs_started, failed.next_run_at) == (0, T0 + sec(10))
    world.flows.fail = None
    world.tick(T0 + sec(10))
    assert world.timer(timer_id).last_error is None
    assert world.timer(timer_id).runs_started == 1


def test_a_retried_tick_starts_no_second_run(world: World) -> None:
    timer_id = world.create({"type": "interval", "every_seconds": 10})
    world.tick(T0)
    with world.db.transaction() as session:  # as if the service died before recording the tick
        row = session.get(Timer, timer_id)
        assert row is not None
        row.next_run_at, row.runs_started, row.last_run_id = T0, 0, None
    world.tick(T0 + sec(1))
    assert world.flows.calls[0].request_id == world.flows.calls[1].request_id
    with world.db.transaction() as session:
        assert len(session.scalars(select(Run)).all()) == 1


def test_the_body_is_checked_against_the_input_schema_when_created(world: World) -> None:
    with pytest.raises(FlowInputInvalid):
        world.create({"type": "interval", "every_seconds": 10}, body={"y": 2})


def test_only_the_owner_or_an_admin_sees_and_changes_a_timer(world: World) -> None:
    timer_id = world.create({"type": "interval", "every_seconds": 10})
    with world.db.transaction() as session:
        for call in (timers.get_timer, timers.pause_timer, timers.resume_timer, timers.delete_timer):
            with pytest.raises(NotFound, match="timer list"):
                call(session, world.bob, timer_id)
        assert session.scalars(timers.timers_query(world.bob)).all() == []
        assert session.scalars(timers.timers_query(world.bob, all_users=True)).all() == []
        assert len(session.scalars(timers.timers_query(world.root, all_users=True)).all()) == 1
        assert timers.pause_timer(session, world.root, timer_id).status == "PAUSED"
    with world.db.transaction() as session:
        bob_timer = TimerCreate(flow_id=world.flow_id, name="b", schedule=schedule(type="once"))
        with pytest.raises(NotFound):  # bob may not even see alice's flow
            timers.create_timer(session, world.bob, bob_timer)


def test_pause_and_resume(world: World) -> None:
    timer_id = world.create({"type": "interval", "every_seconds": 10})
    with world.db.transaction() as session:
        paused = timers.pause_timer(session, world.alice, timer_id)
        assert (paused.status, paused.next_run_at) == ("PAUSED", None)
    world.tick(T0 + sec(100))
    assert world.timer(timer_id).runs_started == 0
    with world.db.transaction() as session:
        resumed = timers.resume_timer(session, world.alice, timer_id, now=T0 + sec(101))
        assert (resumed.status, resumed.next_run_at) == ("ACTIVE", T0 + sec(110))
        info = timers.timer_info(resumed)
        assert info.schedule.every_seconds == 10
    with world.db.transaction() as session:
        timers.delete_timer(session, world.alice, timer_id)
    with world.db.transaction() as session:
        assert session.get(Timer, timer_id) is None
