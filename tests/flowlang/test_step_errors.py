"""Errors: Catch, Retry with back-off, ActionTimeout, ExceptionOnActionFailure, path failures, limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from beamlink.flowlang import (
    ACTION_FAILED,
    ACTION_TIMEOUT,
    ACTION_UNABLE_TO_RUN,
    INTRINSIC_FAILURE,
    PARAMETER_PATH_FAILURE,
    RESULT_PATH_MATCH_FAILURE,
    STATE_SIZE_EXCEEDED,
    STEP_LIMIT_EXCEEDED,
    CancelAction,
    CancelWakeup,
    Limits,
    RunStatus,
    ScheduleWakeup,
    StartAction,
)

Flow = Callable[..., dict[str, Any]]
Runner = Callable[..., Any]

CATCH_ALL_TO_HANDLER = [{"ErrorEquals": ["States.All"], "ResultPath": "$.Error", "Next": "Handler"}]
HANDLER = {"Type": "Pass", "End": True}


def action(**fields: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Action",
        "ActionUrl": "beamlink:compute",
        "Parameters": {"x": 1},
        "ResultPath": "$.Out",
    }
    state.update(fields)
    if "Next" not in state:
        state.setdefault("End", True)
    return state


# -- Catch -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [ACTION_FAILED, ACTION_UNABLE_TO_RUN, "NoTokenException"])
def test_catch_routes_action_errors(run: Runner, flow: Flow, error: str) -> None:
    states = {
        "A": action(
            Catch=[
                {"ErrorEquals": ["Other"], "Next": "Wrong"},
                {"ErrorEquals": [error], "ResultPath": "$.Error", "Next": "Handler"},
                {"ErrorEquals": ["States.All"], "Next": "Wrong"},
            ]
        ),
        "Handler": HANDLER,
        "Wrong": {"Type": "Fail", "Error": "WrongHandler"},
    }
    r = run(flow(states), {"keep": 1})
    r.fail(error, "it went wrong")
    assert r.output == {"keep": 1, "Error": {"Error": error, "Cause": "it went wrong"}}
    assert r.codes() == [
        "FlowStarted",
        "ActionStarted",
        "ActionFailed",
        "ActionCaught",
        "PassStarted",
        "PassCompleted",
        "FlowSucceeded",
    ]


def test_catch_without_result_path_replaces_the_state(run: Runner, flow: Flow) -> None:
    states = {"A": action(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]), "Handler": HANDLER}
    r = run(flow(states), {"keep": 1})
    r.fail(ACTION_FAILED, "nope")
    assert r.output == {"Error": ACTION_FAILED, "Cause": "nope"}


def test_uncaught_action_failure_fails_the_run_with_the_status(run: Runner, flow: Flow) -> None:
    r = run(flow({"A": action()}), {})
    r.fail(ACTION_FAILED, "", output={"status": "FAILED", "details": {"exception": "ZeroDivisionError"}})
    assert r.failure.error == ACTION_FAILED
    assert "ZeroDivisionError" in r.failure.cause
    assert r.failure.state_name == "A"
    assert r.state.status is RunStatus.FAILED


def test_exception_on_action_failure_false_stores_the_failed_status(run: Runner, flow: Flow) -> None:
    states = {"A": action(ExceptionOnActionFailure=False, Next="B"), "B": HANDLER}
    r = run(flow(states), {})
    r.fail(ACTION_FAILED, "bad", output={"action_id": "x", "status": "FAILED", "details": {"why": "bad"}})
    assert r.output == {"Out": {"action_id": "x", "status": "FAILED", "details": {"why": "bad"}}}
    # ActionUnableToRun is still an exception: nothing ran, so there is no status to store
    r = run(flow(states), {})
    r.fail(ACTION_UNABLE_TO_RUN, "refused")
    assert r.failure.error == ACTION_UNABLE_TO_RUN


# -- ActionTimeout ---------------------------------------------------------------------------------------


def test_wait_time_exceeded_is_action_timeout(run: Runner, flow: Flow, t0: datetime) -> None:
    states = {
        "A": action(
            WaitTime=60, Catch=[{"ErrorEquals": [ACTION_TIMEOUT], "ResultPath": "$.Error", "Next": "Handler"}]
        ),
        "Handler": HANDLER,
    }
    r = run(flow(states), {})
    request_id = r.only_action().request_id
    (timeout,) = r.wakeups()
    assert (timeout.purpose, timeout.at) == ("timeout", t0 + timedelta(seconds=60))
    instructions = r.fire("timeout")
    assert CancelAction(request_id=request_id, reason="WaitTime exceeded") in instructions
    assert r.output["Error"]["Error"] == ACTION_TIMEOUT
    assert "60" in r.output["Error"]["Cause"]
    # the provider's late answer is ignored
    assert r.complete({}, request_id=request_id) == []


def test_uncaught_timeout_fails_the_run(run: Runner, flow: Flow) -> None:
    r = run(flow({"A": action(WaitTime=5)}), {})
    r.fire("timeout")
    assert r.failure.error == ACTION_TIMEOUT


# -- Retry -----------------------------------------------------------------------------------------------


def test_retry_backs_off_then_catches(run: Runner, flow: Flow, t0: datetime) -> None:
    states = {
        "A": action(
            Retry=[
                {
                    "ErrorEquals": [ACTION_FAILED],
                    "IntervalSeconds": 2,
                    "MaxAttempts": 3,
                    "BackoffRate": 3,
                    "MaxDelaySeconds": 10,
                }
            ],
            Catch=CATCH_ALL_TO_HANDLER,
        ),
        "Handler": HANDLER,
    }
    r = run(flow(states), {}, context={"run_id": "R"})
    assert r.only_action().request_id == "R.1.1"
    delays = []
    request_ids = ["R.1.1"]
    for _ in range(3):
        r.fail(ACTION_FAILED, "flaky")
        (wakeup,) = r.wakeups()
        assert wakeup.purpose == "retry"
        assert r.started() == []
        delays.append(wakeup.seconds)
        r.fire("retry")
        start_action = r.only_action()
        request_ids.append(start_action.request_id)
        assert start_action.attempt == len(request_ids)
    assert delays == [2, 6, 10]  # 2, 2*3, min(2*9, 10)
    assert request_ids == ["R.1.1", "R.1.2", "R.1.3", "R.1.4"]
    r.fail(ACTION_FAILED, "still flaky")
    assert r.output["Error"] == {"Error": ACTION_FAILED, "Cause": "still flaky"}
    assert r.state.steps == 5  # one visit to A, three retries, then Handler
    assert r.codes().count("ActionRetrying") == 3


def test_retry_then_success(run: Runner, flow: Flow) -> None:
    r = run(flow({"A": action(Retry=[{"ErrorEquals": ["States.All"], "IntervalSeconds": 0}])}), {})
    first = r.only_action().request_id
    r.fail(ACTION_UNABLE_TO_RUN, "busy")
    assert [w.purpose for w in r.wakeups()] == ["timeout"]  # no retry delay: re-issued in the same step
    second = r.only_action()
    assert second.request_id != first
    assert second.attempt == 2
    r.complete({"ok": 1})
    assert r.output["Out"]["details"] == {"ok": 1}


def test_first_matching_retrier_decides(run: Runner, flow: Flow) -> None:
    states = {
        "A": action(
            Retry=[
                {"ErrorEquals": ["Other"], "MaxAttempts": 5, "IntervalSeconds": 0},
                {"ErrorEquals": [ACTION_FAILED], "MaxAttempts": 0},
            ]
        )
    }
    r = run(flow(states), {})
    r.fail(ACTION_FAILED, "x")
    assert r.failure.error == ACTION_FAILED  # MaxAttempts 0: no retry, and the "Other" retrier does not match


def test_retry_covers_timeouts(run: Runner, flow: Flow) -> None:
    r = run(
        flow({"A": action(WaitTime=10, Retry=[{"ErrorEquals": [ACTION_TIMEOUT], "IntervalSeconds": 1}])}), {}
    )
    r.fire("timeout")
    r.fire("retry")
    assert r.only_action().attempt == 2


# -- path and expression failures -----------------------------------------------------------------------


def test_missing_reference_is_parameter_path_failure(run: Runner, flow: Flow) -> None:
    states = {"A": action(Parameters={"p.$": "$.input.nope"}, Catch=CATCH_ALL_TO_HANDLER), "Handler": HANDLER}
    r = run(flow(states), {"input": {}})
    assert r.started() == []
    assert r.output["Error"]["Error"] == PARAMETER_PATH_FAILURE
    failed = run(flow({"P": {"Type": "Pass", "InputPath": "$.nope", "End": True}}), {}).failure
    assert (failed.error, failed.state_name) == (PARAMETER_PATH_FAILURE, "P")


def test_failing_expression_is_intrinsic_failure(run: Runner, flow: Flow) -> None:
    states = {
        "E": {
            "Type": "ExpressionEval",
            "Parameters": {"x.=": "input.n / 0"},
            "ResultPath": "$.r",
            "End": True,
        }
    }
    assert run(flow(states), {"input": {"n": 1}}).failure.error == INTRINSIC_FAILURE


def test_unwritable_result_path(run: Runner, flow: Flow) -> None:
    r = run(flow({"A": action(ResultPath="$.text.inner")}), {"text": "not an object"})
    r.complete({})
    assert r.failure.error == RESULT_PATH_MATCH_FAILURE


def test_fail_inside_a_catch_handler_path(run: Runner, flow: Flow) -> None:
    states = {
        "A": action(Catch=[{"ErrorEquals": ["States.All"], "ResultPath": "$.s.x", "Next": "Handler"}]),
        "Handler": HANDLER,
    }
    r = run(flow(states), {"s": "scalar"})
    r.fail(ACTION_FAILED, "x")
    assert r.failure.error == RESULT_PATH_MATCH_FAILURE  # the catcher's ResultPath could not be written


# -- limits ----------------------------------------------------------------------------------------------


def test_step_limit_ends_a_runaway_loop(run: Runner, flow: Flow) -> None:
    states = {
        "Loop": {"Type": "Pass", "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
            "Default": "Loop",
        },
        "Done": HANDLER,
    }
    r = run(flow(states), {}, limits=Limits(max_steps=50))
    assert r.failure.error == STEP_LIMIT_EXCEEDED
    assert "50" in r.failure.cause
    assert r.state.steps == 51


def test_state_size_limit_is_not_catchable(run: Runner, flow: Flow) -> None:
    states = {
        "Grow": {
            "Type": "Action",
            "ActionUrl": "beamlink:ls",
            "Parameters": {},
            "ResultPath": "$.big",
            "Catch": CATCH_ALL_TO_HANDLER,
            "End": True,
        },
        "Handler": HANDLER,
    }
    r = run(flow(states), {}, limits=Limits(max_state_bytes=2048))
    r.complete({"blob": "x" * 5000})
    assert r.failure.error == STATE_SIZE_EXCEEDED
    assert "2048" in r.failure.cause


def test_state_size_limit_stops_exponential_growth(run: Runner, flow: Flow) -> None:
    states = {
        "Double": {"Type": "Pass", "Parameters": {"a.$": "$", "b.$": "$"}, "Next": "Double2"},
        "Double2": {"Type": "Pass", "Parameters": {"a.$": "$", "b.$": "$"}, "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
            "Default": "Double",
        },
        "Done": HANDLER,
    }
    r = run(flow(states), {"seed": "0123456789"}, limits=Limits(max_steps=1000, max_state_bytes=4096))
    assert r.failure.error == STATE_SIZE_EXCEEDED
    assert r.state.steps < 20


def test_instructions_after_a_limit_cancel_outstanding_actions(run: Runner, flow: Flow) -> None:
    states = {
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Slow",
                    "States": {
                        "Slow": {
                            "Type": "Action",
                            "ActionUrl": "beamlink:compute",
                            "Parameters": {},
                            "End": True,
                        }
                    },
                },
                {
                    "StartAt": "Spin",
                    "States": {
                        "Spin": {"Type": "Pass", "Next": "Spin2"},
                        "Spin2": {
                            "Type": "Choice",
                            "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Out"}],
                            "Default": "Spin",
                        },
                        "Out": HANDLER,
                    },
                },
            ],
            "End": True,
        },
    }
    r = run(flow(states), {}, limits=Limits(max_steps=30))
    assert r.failure.error == STEP_LIMIT_EXCEEDED
    started = [i for i in r.history if isinstance(i, StartAction)]
    canceled = [i for i in r.history if isinstance(i, CancelAction)]
    assert [c.request_id for c in canceled] == [s.request_id for s in started]
    assert r.state.actions == {}
    assert r.state.timers == {}
    canceled_timers = {i.timer_id for i in r.history if isinstance(i, CancelWakeup)}
    assert canceled_timers == {w.timer_id for w in r.history if isinstance(w, ScheduleWakeup)}
