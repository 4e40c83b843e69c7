"""The step function on each state type, ResultPath semantics, determinism and idempotency."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from beamlink.errors import InvalidInput
from beamlink.flowlang import (
    REDACTED,
    RUNTIME,
    ActionCompleted,
    ActionFailed,
    CancelAction,
    CancelRun,
    CancelWakeup,
    FlowInvalid,
    LogEntry,
    RunState,
    RunStatus,
    ScheduleWakeup,
    StartAction,
    TimerFired,
    event_from_dict,
    load_definition,
    start,
    step,
)

Flow = Callable[..., dict[str, Any]]
Runner = Callable[..., Any]

END = {"Type": "Pass", "End": True}


def action(url: str = "beamlink:hello_world", **fields: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Action", "ActionUrl": url, "Parameters": {"x": 1}}
    state.update(fields)
    if "Next" not in state:
        state.setdefault("End", True)
    return state


# -- Pass and ResultPath ---------------------------------------------------------------------------------


def test_pass_result_into_result_path(run: Runner, flow: Flow) -> None:
    r = run(
        flow({"P": {"Type": "Pass", "Result": {"k": [1]}, "ResultPath": "$.out.deep", "End": True}}), {"a": 1}
    )
    assert r.output == {"a": 1, "out": {"deep": {"k": [1]}}}
    assert r.state.status is RunStatus.SUCCEEDED


def test_result_path_absent_replaces_the_whole_state(run: Runner, flow: Flow) -> None:
    r = run(flow({"P": {"Type": "Pass", "Result": {"only": True}, "End": True}}), {"a": 1})
    assert r.output == {"only": True}


def test_result_path_null_discards_the_result(run: Runner, flow: Flow) -> None:
    r = run(flow({"P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": None, "End": True}}), {"a": 1})
    assert r.output == {"a": 1}


def test_result_null_is_a_result(run: Runner, flow: Flow) -> None:
    r = run(flow({"P": {"Type": "Pass", "Result": None, "ResultPath": "$.r", "End": True}}), {"a": 1})
    assert r.output == {"a": 1, "r": None}


def test_pass_input_path_and_parameters(run: Runner, flow: Flow) -> None:
    states = {
        "Copy": {"Type": "Pass", "InputPath": "$.src", "ResultPath": "$.dst", "Next": "Shape"},
        "Shape": {
            "Type": "Pass",
            "Parameters": {"n.$": "$.dst.n", "twice.=": "dst.n * 2"},
            "ResultPath": "$.shaped",
            "Next": "Same",
        },
        "Same": {"Type": "Pass", "End": True},
    }
    r = run(flow(states), {"src": {"n": 4}})
    assert r.output == {"src": {"n": 4}, "dst": {"n": 4}, "shaped": {"n": 4, "twice": 8}}


def test_copies_do_not_alias(run: Runner, flow: Flow) -> None:
    states = {
        "Copy": {"Type": "Pass", "InputPath": "$.a", "ResultPath": "$.b", "Next": "Change"},
        "Change": {"Type": "Pass", "Result": 99, "ResultPath": "$.b.x", "End": True},
    }
    assert run(flow(states), {"a": {"x": 1}}).output == {"a": {"x": 1}, "b": {"x": 99}}


def test_context_is_read_only_and_not_stored(run: Runner, flow: Flow) -> None:
    states = {
        "E": {
            "Type": "ExpressionEval",
            "Parameters": {
                "who.=": "_context.username + '@' + _context.flow_id",
                "run.$": "$._context.run_id",
            },
            "ResultPath": "$.me",
            "Next": "All",
        },
        "All": {"Type": "Pass", "InputPath": "$", "End": True},
    }
    r = run(flow(states), {}, context={"run_id": "R", "username": "ada", "flow_id": "F", "email": "a@x"})
    assert r.output == {"me": {"who": "ada@F", "run": "R"}}


# -- ExpressionEval and private values ------------------------------------------------------------------


def test_private_values_are_redacted_in_logs_and_output_but_usable(run: Runner, flow: Flow) -> None:
    states = {
        "Secret": {
            "Type": "ExpressionEval",
            "Parameters": {"password.$": "$._private.pw", "user": "u", "__Private_Parameters": ["password"]},
            "ResultPath": "$.creds",
            "Next": "Use",
        },
        "Use": action(
            Parameters={"login.=": "creds.user + ':' + creds.password", "__Private_Parameters": ["login"]},
            ResultPath="$.Use",
        ),
    }
    r = run(flow(states), {"_private": {"pw": "hunter2"}, "_tokens": {"Admin": "tok-SECRET"}})
    start_action = r.only_action()
    assert start_action.parameters == {"login": "u:hunter2"}  # the provider needs the real value
    assert start_action.private_keys == ["login"]
    assert r.state.private_keys == ["login", "password"]
    logged = json.dumps([i.model_dump(mode="json") for i in r.history if isinstance(i, LogEntry)])
    assert "hunter2" not in logged
    assert "tok-SECRET" not in logged
    r.complete({"ok": True})
    assert r.output["creds"] == {"password": REDACTED, "user": "u"}
    assert r.output["_private"] == REDACTED
    assert r.output["_tokens"] == REDACTED
    assert r.state.document["creds"]["password"] == "hunter2"  # the persisted state keeps it for later states


# -- Action ----------------------------------------------------------------------------------------------


def test_action_instruction_and_result(t0: datetime, run: Runner, flow: Flow) -> None:
    states = {
        "Ls": action(
            "https://transfer.actions.globus.org/ls",
            Parameters={"endpoint_id.$": "$.ep", "path": "/~/"},
            ResultPath="$.Listing",
            WaitTime=60,
            RunAs="Flow",
            ActionScope="urn:scope",
            ExceptionOnActionFailure=False,
        )
    }
    r = run(flow(states), {"ep": "E1"}, context={"run_id": "run-9"})
    start_action = r.only_action()
    assert start_action.model_dump(exclude={"kind"}) == {
        "request_id": "run-9.1.1",
        "branch": "",
        "state_name": "Ls",
        "attempt": 1,
        "action_url": "https://transfer.actions.globus.org/ls",
        "provider": "ls",
        "dialect": "globus",
        "parameters": {"endpoint_id": "E1", "path": "/~/"},
        "private_keys": [],
        "wait_time": 60,
        "timeout_at": t0 + timedelta(seconds=60),
        "run_as": "Flow",
        "action_scope": "urn:scope",
        "exception_on_action_failure": False,
    }
    assert [w.timer_id for w in r.wakeups()] == ["run-9.1.1.timeout"]
    assert r.state.status is RunStatus.ACTIVE
    r.complete({"DATA": [{"name": "f"}]})
    assert r.output["Listing"]["details"] == {"DATA": [{"name": "f"}]}
    assert CancelWakeup(timer_id="run-9.1.1.timeout") in r.instructions


def test_action_input_path_body_and_external_provider(run: Runner, flow: Flow) -> None:
    states = {
        "A": {"Type": "Action", "ActionUrl": "https://ap.example.org/do", "InputPath": "$.body", "End": True}
    }
    start_action = run(flow(states), {"body": {"k": "v"}}).only_action()
    assert start_action.parameters == {"k": "v"}
    assert (start_action.provider, start_action.dialect, start_action.wait_time) == (None, "external", 300)


# -- Wait ------------------------------------------------------------------------------------------------


def test_wait_seconds_schedules_and_resumes(t0: datetime, run: Runner, flow: Flow) -> None:
    r = run(flow({"W": {"Type": "Wait", "Seconds": 30, "Next": "Done"}, "Done": END}), {"a": 1})
    (wakeup,) = r.wakeups()
    assert (wakeup.at, wakeup.seconds, wakeup.purpose) == (t0 + timedelta(seconds=30), 30, "wait")
    early = r.send(TimerFired(timer_id=wakeup.timer_id), now=t0 + timedelta(seconds=10))
    assert early == [ScheduleWakeup(timer_id=wakeup.timer_id, at=wakeup.at, seconds=20, purpose="wait")]
    assert r.state.status is RunStatus.ACTIVE
    r.send(TimerFired(timer_id=wakeup.timer_id), now=t0 + timedelta(seconds=31))
    assert r.output == {"a": 1}
    assert r.codes() == [
        "FlowStarted",
        "WaitStarted",
        "WaitCompleted",
        "PassStarted",
        "PassCompleted",
        "FlowSucceeded",
    ]


@pytest.mark.parametrize(
    "wait",
    [
        {"Seconds": 0},
        {"Timestamp": "2024-05-01T11:00:00Z"},
        {"TimestampPath": "$.when"},
    ],
)
def test_wait_already_due_resolves_inside_the_step(
    t0: datetime, run: Runner, flow: Flow, wait: dict[str, Any]
) -> None:
    r = run(
        flow({"W": {"Type": "Wait", **wait, "Next": "Done"}, "Done": END}), {"when": "2020-01-01t00:00:00Z"}
    )
    assert r.wakeups() == []
    assert r.output == {"when": "2020-01-01t00:00:00Z"}


def test_wait_timestamp_and_seconds_path_in_the_future(t0: datetime, run: Runner, flow: Flow) -> None:
    r = run(
        flow({"W": {"Type": "Wait", "TimestampPath": "$.when", "End": True}}),
        {"when": "2024-05-01T14:00:00+02:00"},
    )
    assert r.wakeups() == []  # 14:00+02:00 is 12:00Z, which is now
    r = run(flow({"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}), {"s": 90})
    assert r.wakeups()[0].at == t0 + timedelta(seconds=90)


@pytest.mark.parametrize(
    ("wait", "run_input"),
    [({"SecondsPath": "$.s"}, {"s": "soon"}), ({"TimestampPath": "$.s"}, {"s": "tuesday"})],
)
def test_wait_with_bad_values_fails(
    run: Runner, flow: Flow, wait: dict[str, Any], run_input: dict[str, Any]
) -> None:
    failed = run(flow({"W": {"Type": "Wait", **wait, "End": True}}), run_input).failure
    assert failed.error == RUNTIME


# -- Fail ------------------------------------------------------------------------------------------------


def test_fail_state(run: Runner, flow: Flow) -> None:
    failed = run(flow({"F": {"Type": "Fail", "Error": "Broken", "Cause": "it broke"}}), {}).failure
    assert (failed.error, failed.cause, failed.state_name) == ("Broken", "it broke", "F")
    failed = run(
        flow({"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}), {"e": "E", "c": "C"}
    ).failure
    assert (failed.error, failed.cause) == ("E", "C")
    failed = run(flow({"F": {"Type": "Fail"}}), {}).failure
    assert failed.error == "States.Fail"


# -- lifecycle -------------------------------------------------------------------------------------------


def test_log_codes_follow_globus(run: Runner, flow: Flow) -> None:
    r = run(flow({"A": action(Next="B"), "B": {"Type": "Pass", "End": True}}), {})
    r.complete({})
    assert r.codes() == [
        "FlowStarted",
        "ActionStarted",
        "ActionCompleted",
        "PassStarted",
        "PassCompleted",
        "FlowSucceeded",
    ]


def test_steps_are_deterministic_and_replayable(t0: datetime, flow: Flow) -> None:
    definition = load_definition(flow({"A": action(Next="B"), "B": action()}))
    first = start(definition, {"x": 1}, {"run_id": "r"}, now=t0)
    second = start(definition, {"x": 1}, {"run_id": "r"}, now=t0)
    assert first == second
    persisted = first[0].model_dump(mode="json")
    event = ActionCompleted(request_id="r.1.1", output={"status": "SUCCEEDED"})
    once = step(definition, RunState.model_validate(persisted), event, now=t0)
    again = step(definition, RunState.model_validate(persisted), event, now=t0)  # engine crashed, replays
    assert once == again
    assert [i.request_id for i in once[1] if isinstance(i, StartAction)] == ["r.2.1"]


def test_step_does_not_change_its_input(t0: datetime, flow: Flow) -> None:
    definition = load_definition(flow({"A": action(ResultPath="$.r")}))
    state, _ = start(definition, {"x": 1}, {"run_id": "r"}, now=t0)
    before = state.model_dump(mode="json")
    step(definition, state, ActionCompleted(request_id="r.1.1", output={"v": 1}), now=t0)
    assert state.model_dump(mode="json") == before


def test_duplicate_unknown_and_late_events_are_ignored(t0: datetime, run: Runner, flow: Flow) -> None:
    r = run(flow({"A": action(ResultPath="$.r", Next="B"), "B": action()}), {})
    request_id = r.only_action().request_id
    r.complete({"n": 1})
    second = r.only_action().request_id
    state_after = r.state.model_dump(mode="json")
    assert r.send(ActionCompleted(request_id=request_id, output={"n": 2})) == []
    assert r.send(ActionCompleted(request_id="someone-else", output={})) == []
    assert r.send(TimerFired(timer_id=f"{request_id}.timeout"), now=t0 + timedelta(hours=1)) == []
    assert r.state.model_dump(mode="json")["frames"] == state_after["frames"]
    r.complete({}, request_id=second)
    assert r.state.status is RunStatus.SUCCEEDED
    assert r.send(CancelRun()) == []


def test_cancel_run_cancels_outstanding_work(run: Runner, flow: Flow) -> None:
    r = run(flow({"A": action()}), {})
    request_id = r.only_action().request_id
    instructions = r.send(CancelRun(reason="user asked"))
    assert CancelAction(request_id=request_id, reason="no longer needed") in instructions
    assert CancelWakeup(timer_id=f"{request_id}.timeout") in instructions
    assert (r.failure.error, r.failure.cause) == ("FlowCanceled", "user asked")
    assert r.state.actions == {}
    assert r.state.timers == {}
    assert r.codes()[-1] == "FlowCanceled"


def test_run_state_is_plain_json(run: Runner, flow: Flow) -> None:
    r = run(flow({"W": {"Type": "Wait", "Seconds": 5, "Next": "A"}, "A": action()}), {"a": [1, {"b": None}]})
    document = json.loads(json.dumps(r.state.model_dump(mode="json")))
    assert RunState.model_validate(document) == r.state


def test_start_rejects_bad_input(t0: datetime, flow: Flow) -> None:
    definition = flow({"P": END})
    with pytest.raises(InvalidInput, match="JSON object"):
        start(definition, [1], {"run_id": "r"}, now=t0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="_context"):
        start(definition, {"_context": {}}, {"run_id": "r"}, now=t0)
    with pytest.raises(InvalidInput, match="not JSON"):
        start(definition, {"x": float("nan")}, {"run_id": "r"}, now=t0)
    with pytest.raises(FlowInvalid):
        start({"StartAt": "Nope", "States": {}}, {}, {"run_id": "r"}, now=t0)


def test_start_accepts_yaml_text_and_a_naive_now(
    t0: datetime,
) -> None:
    text = "StartAt: P\nStates:\n  P: {Type: Pass, Result: 1, ResultPath: $.one, End: true}\n"
    state, instructions = start(text, {}, {"run_id": "r"}, now=t0.replace(tzinfo=None))
    assert state.status is RunStatus.SUCCEEDED
    assert state.started_at == t0
    assert instructions[-1].model_dump()["output"] == {"one": 1}


def test_events_round_trip_through_json() -> None:
    events = [
        ActionCompleted(request_id="r.1.1", output={"status": "SUCCEEDED", "details": [1]}),
        ActionFailed(request_id="r.1.1", error="ActionUnableToRun", cause="403"),
        TimerFired(timer_id="r.2.wait"),
        CancelRun(reason="stop"),
    ]
    for event in events:
        assert event_from_dict(json.loads(event.model_dump_json())) == event


def test_extra_context_values_are_available(run: Runner, flow: Flow) -> None:
    states = {
        "E": {
            "Type": "ExpressionEval",
            "Parameters": {"l.=": "_context.label + '/' + _context.user_id"},
            "ResultPath": "$.r",
            "End": True,
        }
    }
    r = run(flow(states), {}, context={"run_id": "R", "label": "nightly", "user_id": "urn:u"})
    assert r.output == {"r": {"l": "nightly/urn:u"}}
    assert r.state.context == {"run_id": "R", "label": "nightly", "user_id": "urn:u", "identities": []}


def test_failed_status_without_a_document_is_still_stored(run: Runner, flow: Flow) -> None:
    r = run(flow({"A": action(ExceptionOnActionFailure=False, ResultPath="$.A")}), {})
    r.fail("ActionFailedException", "went wrong")
    assert r.output["A"] == {
        "status": "FAILED",
        "details": {"error": "ActionFailedException", "cause": "went wrong"},
    }
