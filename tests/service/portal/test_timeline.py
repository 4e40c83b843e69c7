"""The step timeline folded from a run's log: pure, no service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beamlink.protocol.flows import RunEvent
from beamlink.service.portal.timeline import Timeline

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _events(*items: tuple[str, str | None, str | None]) -> list[RunEvent]:
    return [
        RunEvent(
            seq=n,
            time=T0 + timedelta(seconds=n),
            code=code,
            description=code,
            state_name=name,
            state_type=kind,
        )
        for n, (code, name, kind) in enumerate(items, start=1)
    ]


def _fold(events: list[RunEvent]) -> Timeline:
    timeline = Timeline()
    for event in events:
        timeline.feed(event)
    return timeline


def test_each_state_entered_is_a_step_that_ends_with_its_outcome() -> None:
    timeline = _fold(
        _events(
            ("FlowStarted", None, None),
            ("PassStarted", "Prepare", "Pass"),
            ("PassCompleted", "Prepare", "Pass"),
            ("ActionStarted", "Hello", "Action"),
        )
    )
    assert [(s.key, s.status) for s in timeline.steps] == [
        ("flow/Start", "succeeded"),
        ("/Prepare/1", "succeeded"),
        ("/Hello/1", "running"),
    ]
    assert timeline.steps[1].ended_at == T0 + timedelta(seconds=3)


def test_a_retry_keeps_its_step_and_a_loop_makes_a_new_one() -> None:
    timeline = _fold(
        _events(
            ("ActionStarted", "Fetch", "Action"),
            ("ActionFailed", "Fetch", "Action"),
            ("ActionRetrying", "Fetch", "Action"),
            ("ActionStarted", "Fetch", "Action"),
            ("ActionCompleted", "Fetch", "Action"),
            ("PassStarted", "Again", "Pass"),
            ("PassCompleted", "Again", "Pass"),
            ("ActionStarted", "Fetch", "Action"),
        )
    )
    assert [(s.key, s.status, s.attempts) for s in timeline.steps] == [
        ("/Fetch/1", "succeeded", 2),
        ("/Again/1", "succeeded", 1),
        ("/Fetch/2", "running", 1),
    ]


def test_the_end_of_a_run_stops_what_was_still_running() -> None:
    timeline = Timeline()
    events = _events(
        ("FlowStarted", None, None),
        ("WaitStarted", "Pause", "Wait"),
        ("FlowCanceled", None, None),
    )
    changed = [timeline.feed(e) for e in events]
    assert [s.key for s in changed[-1]] == ["flow/End", "/Pause/1"]
    assert [(s.key, s.status) for s in timeline.steps] == [
        ("flow/Start", "succeeded"),
        ("/Pause/1", "canceled"),
        ("flow/End", "canceled"),
    ]


def test_a_failure_caught_moves_on() -> None:
    timeline = _fold(
        _events(
            ("ActionStarted", "Read", "Action"),
            ("ActionFailed", "Read", "Action"),
            ("ActionCaught", "Read", "Action"),
            ("PassStarted", "Done", "Pass"),
            ("PassCompleted", "Done", "Pass"),
            ("FlowSucceeded", None, None),
        )
    )
    assert [(s.name, s.status) for s in timeline.steps] == [
        ("Read", "caught"),
        ("Done", "succeeded"),
        ("End", "succeeded"),
    ]


def test_the_state_a_run_fails_in_is_marked_failed() -> None:
    timeline = _fold(
        _events(
            ("FlowStarted", None, None),
            ("FailStarted", "Boom", "Fail"),
            ("FlowFailed", "Boom", None),
        )
    )
    assert [(s.name, s.status) for s in timeline.steps] == [
        ("Start", "succeeded"),
        ("Boom", "failed"),
        ("End", "failed"),
    ]
