"""Parallel and Map: fan out into branch/iteration frames, join their outputs, fail fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from beamlink.flowlang import (
    ACTION_FAILED,
    RUNTIME,
    ActionCompleted,
    CancelAction,
    RunStatus,
    TimerFired,
)

Flow = Callable[..., dict[str, Any]]
Runner = Callable[..., Any]

END = {"Type": "Pass", "End": True}


def act(name: str, result_path: str = "$.out", **fields: Any) -> dict[str, Any]:
    """A one-state machine that runs an action and ends."""
    state = {
        "Type": "Action",
        "ActionUrl": "beamlink:compute",
        "Parameters": {"who.$": "$.who"},
        "ResultPath": result_path,
        "End": True,
        **fields,
    }
    return {"StartAt": name, "States": {name: state}}


def parallel(*branches: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"Type": "Parallel", "Branches": list(branches), "ResultPath": "$.Fan", "End": True, **fields}


def test_parallel_runs_branches_on_copies_and_joins_in_branch_order(run: Runner, flow: Flow) -> None:
    r = run(
        flow({"Fan": parallel(act("Left"), act("Right"))}), {"who": "me", "keep": 1}, context={"run_id": "R"}
    )
    left, right = r.started()
    assert (left.branch, right.branch) == ("Fan[0]@1.1", "Fan[1]@1.1")
    assert (left.state_name, right.state_name) == ("Left", "Right")
    assert left.parameters == right.parameters == {"who": "me"}
    assert len({left.request_id, right.request_id}) == 2
    r.complete("R-result", request_id=right.request_id)
    assert r.state.status is RunStatus.ACTIVE
    r.complete("L-result", request_id=left.request_id)
    fan = r.output["Fan"]
    assert [branch["out"]["details"] for branch in fan] == ["L-result", "R-result"]
    assert fan[0]["keep"] == 1
    assert r.output["keep"] == 1
    assert list(r.state.frames) == [""]  # joined branches leave nothing behind


def test_parallel_of_pure_branches_finishes_in_one_step(run: Runner, flow: Flow) -> None:
    branches = [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": True}}},
        {
            "StartAt": "B",
            "States": {
                "B": {
                    "Type": "ExpressionEval",
                    "Parameters": {"n.=": "n * 2"},
                    "ResultPath": "$.r",
                    "End": True,
                }
            },
        },
    ]
    r = run(flow({"Fan": parallel(*branches, Parameters={"n.$": "$.x"})}), {"x": 21})
    assert r.output == {"x": 21, "Fan": ["a", {"n": 21, "r": {"n": 42}}]}


def test_failing_branch_cancels_the_others_and_is_caught(run: Runner, flow: Flow) -> None:
    states = {
        "Fan": parallel(
            act("Left"),
            act("Right"),
            Catch=[{"ErrorEquals": [ACTION_FAILED], "ResultPath": "$.Err", "Next": "Handler"}],
        ),
        "Handler": END,
    }
    r = run(flow(states), {"who": "x"})
    left, right = r.started()
    instructions = r.fail(ACTION_FAILED, "left broke", request_id=left.request_id)
    assert CancelAction(request_id=right.request_id, reason="no longer needed") in instructions
    assert r.output["Err"] == {"Error": ACTION_FAILED, "Cause": "left broke"}
    assert r.send(ActionCompleted(request_id=right.request_id, output={})) == []  # late answer ignored
    assert list(r.state.frames) == [""]


def test_uncaught_branch_failure_fails_the_run(run: Runner, flow: Flow) -> None:
    branches = [
        act("Left"),
        {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Bad", "Cause": "c"}}},
    ]
    r = run(flow({"Fan": parallel(*branches)}), {"who": "x"})
    assert (r.failure.error, r.failure.cause, r.failure.state_name) == ("Bad", "c", "Fan")
    assert [i.kind for i in r.history].count("cancel_action") == 1


def test_parallel_retry_reruns_every_branch_with_new_ids(run: Runner, flow: Flow) -> None:
    states = {
        "Fan": parallel(
            act("Left"), act("Right"), Retry=[{"ErrorEquals": ["States.All"], "IntervalSeconds": 0}]
        )
    }
    r = run(flow(states), {"who": "x"})
    first = [a.request_id for a in r.started()]
    r.fail(ACTION_FAILED, "x", request_id=first[0])
    second = r.started()
    assert [a.branch for a in second] == ["Fan[0]@1.2", "Fan[1]@1.2"]
    assert not set(first) & {a.request_id for a in second}
    for started in second:
        r.complete("ok", request_id=started.request_id)
    assert len(r.output["Fan"]) == 2


def test_map_respects_max_concurrency_and_keeps_item_order(run: Runner, flow: Flow) -> None:
    states = {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.files",
            "MaxConcurrency": 2,
            "ResultPath": "$.done",
            "End": True,
            "Iterator": {
                "StartAt": "Work",
                "States": {
                    "Work": {
                        "Type": "Action",
                        "ActionUrl": "beamlink:compute",
                        "Parameters": {"file.$": "$"},
                        "ResultPath": None,
                        "End": True,
                    }
                },
            },
        },
    }
    files = ["f0", "f1", "f2", "f3", "f4"]
    r = run(flow(states), {"files": files})
    seen: list[str] = []
    running = {a.request_id: a.parameters["file"] for a in r.started()}
    assert sorted(running.values()) == ["f0", "f1"]
    while running:
        request_id = max(running)  # finish the newest first to shuffle completion order
        seen.append(running.pop(request_id))
        r.send(ActionCompleted(request_id=request_id, output={}))
        running.update({a.request_id: a.parameters["file"] for a in r.started()})
        assert len(running) <= 2
    assert sorted(seen) == files
    assert r.output["done"] == files  # ResultPath null in the iterator: each output is the item itself


def test_map_item_selector_sees_item_index_and_parent_state(run: Runner, flow: Flow) -> None:
    states = {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.input.items",
            "ResultPath": "$.out",
            "End": True,
            "ItemSelector": {
                "value.$": "$$.Map.Item.Value",
                "index.$": "$$.Map.Item.Index",
                "prefix.$": "$.input.prefix",
                "label.=": "input.prefix + str(_context.Map.Item.Index)",
            },
            "ItemProcessor": {
                "StartAt": "Show",
                "States": {
                    "Show": {
                        "Type": "ExpressionEval",
                        "Parameters": {"s.=": "label + ':' + value"},
                        "ResultPath": "$.s",
                        "End": True,
                    }
                },
            },
        },
    }
    r = run(flow(states), {"input": {"items": ["a", "b"], "prefix": "p"}})
    assert r.output["out"] == [
        {"value": "a", "index": 0, "prefix": "p", "label": "p0", "s": {"s": "p0:a"}},
        {"value": "b", "index": 1, "prefix": "p", "label": "p1", "s": {"s": "p1:b"}},
    ]


def test_map_over_nothing_and_over_a_non_list(run: Runner, flow: Flow) -> None:
    iterator = {"StartAt": "X", "States": {"X": END}}
    states = {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "Iterator": iterator,
            "ResultPath": "$.r",
            "End": True,
        }
    }
    assert run(flow(states), {"items": []}).output == {"items": [], "r": []}
    assert run(flow(states), {"items": {"a": 1}}).failure.error == RUNTIME


def test_map_iteration_failure_cancels_the_rest(run: Runner, flow: Flow) -> None:
    states = {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ResultPath": "$.r",
            "End": True,
            "Iterator": {
                "StartAt": "Work",
                "States": {
                    "Work": {
                        "Type": "Action",
                        "ActionUrl": "beamlink:compute",
                        "Parameters": {"i.$": "$"},
                        "ResultPath": "$",
                        "End": True,
                    }
                },
            },
        },
    }
    r = run(flow(states), {"items": [1, 2, 3]})
    started = r.started()
    assert len(started) == 3
    instructions = r.fail(ACTION_FAILED, "bad item", request_id=started[1].request_id)
    canceled = {i.request_id for i in instructions if isinstance(i, CancelAction)}
    assert canceled == {started[0].request_id, started[2].request_id}
    assert r.failure.error == ACTION_FAILED


def test_map_inside_parallel_with_a_wait(run: Runner, flow: Flow) -> None:
    inner_map = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "End": True,
                "Iterator": {
                    "StartAt": "Pause",
                    "States": {
                        "Pause": {"Type": "Wait", "Seconds": 10, "Next": "Twice"},
                        "Twice": {
                            "Type": "ExpressionEval",
                            "Parameters": {"v.=": "n * 2"},
                            "ResultPath": "$",
                            "End": True,
                        },
                    },
                },
                "ItemSelector": {"n.$": "$$.Map.Item.Value"},
            }
        },
    }
    side = {"StartAt": "Side", "States": {"Side": {"Type": "Pass", "Result": "side", "End": True}}}
    r = run(flow({"Fan": parallel(inner_map, side)}), {"items": [1, 2]})
    wakeups = r.wakeups()
    assert len(wakeups) == 2
    assert {w.timer_id for w in wakeups} == set(r.state.timers)
    frames = set(r.state.frames)
    assert "Fan[0]@1.1/Each[0]@2.1" in frames
    assert "Fan[0]@1.1/Each[1]@2.1" in frames
    r.send(TimerFired(timer_id=wakeups[0].timer_id), now=wakeups[0].at)
    assert r.state.status is RunStatus.ACTIVE
    r.send(TimerFired(timer_id=wakeups[1].timer_id), now=wakeups[1].at)
    assert r.output["Fan"] == [[{"v": 2}, {"v": 4}], "side"]
    assert list(r.state.frames) == [""]


def test_request_ids_are_unique_across_iterations(run: Runner, flow: Flow) -> None:
    states = {"Each": {"Type": "Map", "ItemsPath": "$.items", "End": True, "Iterator": act("Work")}}
    r = run(flow(states), {"items": [{"who": i} for i in range(20)]})
    ids = [a.request_id for a in r.started()]
    assert len(ids) == len(set(ids)) == 20
