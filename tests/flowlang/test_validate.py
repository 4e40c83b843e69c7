"""Validation reports every problem, each with a JSON pointer, a stable code, a message and a hint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from beamlink.errors import InvalidInput, error_from_payload
from beamlink.flowlang import (
    ActionState,
    FlowInputInvalid,
    FlowInvalid,
    MapState,
    ParallelState,
    PassState,
    Problem,
    StatesError,
    WaitState,
    check_input,
    load_definition,
    validate,
)

Flow = Callable[..., dict[str, Any]]

END = {"Type": "Pass", "End": True}


def codes(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.code, p.pointer) for p in problems]


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


@pytest.mark.parametrize("name", ["move", "transfer-compute-publish"])
def test_reference_flows_validate_clean_and_load(
    reference_flow: Callable[[str], dict[str, Any]], name: str
) -> None:
    definition = reference_flow(name)
    assert validate(definition) == []
    loaded = load_definition(definition)
    assert loaded.start_at == definition["StartAt"]
    assert set(loaded.states) == set(definition["States"])


def test_reference_flow_types_are_parsed(reference_flow: Callable[[str], dict[str, Any]]) -> None:
    flow = load_definition(reference_flow("transfer-compute-publish"))
    analyse = flow.states["Analyse"]
    assert isinstance(analyse, ActionState)
    assert analyse.wait_time == 1800
    assert analyse.catch[0].next == "AnalysisFailed"
    assert analyse.catch[0].result_path == "$.AnalyseError"
    nothing = flow.states["NothingFound"]
    assert isinstance(nothing, PassState)
    assert nothing.has_result
    assert nothing.result == {"published": False}


def test_unknown_next_names_the_pointer_and_suggests(flow: Flow) -> None:
    problem = only(validate(flow({"Transfer": {"Type": "Pass", "Next": "Procss"}, "Process": END})))
    assert problem.code == "unknown_next"
    assert problem.pointer == "/States/Transfer/Next"
    assert "did you mean 'Process'" in problem.hint


def test_unreachable_state(flow: Flow) -> None:
    problem = only(validate(flow({"A": END, "Orphan": END})))
    assert (problem.code, problem.pointer) == ("unreachable_state", "/States/Orphan")


def test_no_terminal_state(flow: Flow) -> None:
    problems = validate(flow({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}))
    assert codes(problems) == [("no_terminal_state", "/States")]


def test_loop_without_way_out(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "Start": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Done"}],
                    "Default": "Loop",
                },
                "Loop": {"Type": "Pass", "Next": "Again"},
                "Again": {"Type": "Pass", "Next": "Loop"},
                "Done": END,
            }
        )
    )
    assert codes(problems) == [("no_path_to_end", "/States/Again"), ("no_path_to_end", "/States/Loop")]


def test_next_and_end_together_and_neither(flow: Flow) -> None:
    problems = validate(
        flow({"A": {"Type": "Pass", "Next": "B", "End": True}, "B": {"Type": "Pass"}, "C": END}, "A")
    )
    got = codes(problems)
    assert ("next_and_end", "/States/A") in got
    assert ("no_transition", "/States/B") in got
    assert ("unreachable_state", "/States/C") in got


def test_end_false_without_next_is_no_transition(flow: Flow) -> None:
    problems = validate(flow({"A": {"Type": "Pass", "End": False, "Comment": "x"}}))
    assert codes(problems) == [("no_transition", "/States/A"), ("no_terminal_state", "/States")]


def test_start_at_not_a_state(flow: Flow) -> None:
    problem = only(validate(flow({"First": END}, "Frist")))
    assert (problem.code, problem.pointer) == ("bad_start_at", "/StartAt")
    assert "'First'" in problem.hint


def test_missing_start_at_and_states() -> None:
    problems = validate({"Comment": "nothing"})
    assert [p.code for p in problems] == ["missing_field", "missing_field"]
    assert all(p.pointer == "" for p in problems)


def test_bad_jsonpath(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {
                    "Type": "Pass",
                    "Parameters": {"x.$": "$.a[", "y.$": "input.x"},
                    "ResultPath": "$.r",
                    "End": True,
                }
            }
        )
    )
    assert codes(problems) == [
        ("bad_jsonpath", "/States/A/Parameters/x.$"),
        ("bad_jsonpath", "/States/A/Parameters/y.$"),
    ]
    assert "must start with '$'" in problems[1].message


def test_result_path_rules(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {"Type": "Pass", "ResultPath": "$._context.x", "Next": "B"},
                "B": {"Type": "Pass", "ResultPath": "$.items[*]", "Next": "C"},
                "C": {"Type": "Pass", "ResultPath": None, "End": True},
            }
        )
    )
    assert codes(problems) == [
        ("bad_result_path", "/States/A/ResultPath"),
        ("bad_result_path", "/States/B/ResultPath"),
    ]
    assert "read-only" in problems[0].message


def test_bad_expressions(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {
                    "Type": "ExpressionEval",
                    "Parameters": {
                        "a.=": "input.x +",
                        "b.=": "open('/etc/passwd')",
                        "c.=": "{1, 2}",
                        "d.=": 3,
                        "ok.=": "pathsplit(input.path)[1] if is_present('input.path') else getattr('x', 1)",
                    },
                    "ResultPath": "$.r",
                    "End": True,
                }
            }
        )
    )
    assert codes(problems) == [
        ("bad_expression", "/States/A/Parameters/a.="),
        ("bad_expression", "/States/A/Parameters/b.="),
        ("bad_expression", "/States/A/Parameters/c.="),
        ("wrong_type", "/States/A/Parameters/d.="),
    ]
    assert "syntax error" in problems[0].message
    assert "unknown function 'open'" in problems[1].message


def test_unknown_and_unsupported_actions(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {"Type": "Action", "ActionUrl": "ftp://nope", "Parameters": {}, "Next": "B"},
                "B": {"Type": "Action", "ActionUrl": "beamlink:teleport", "Parameters": {}, "Next": "C"},
                "C": {
                    "Type": "Action",
                    "ActionUrl": "https://transfer.actions.globus.org/stat",
                    "Parameters": {},
                    "Next": "D",
                },
                "D": {
                    "Type": "Action",
                    "ActionUrl": "https://ap.example.org/my_action",
                    "Parameters": {},
                    "Next": "E",
                },
                "E": {"Type": "Action", "ActionUrl": "beamlink:hello_world", "Parameters": {}, "End": True},
            }
        )
    )
    assert [(p.code, p.pointer, p.severity) for p in problems] == [
        ("unknown_action", "/States/A/ActionUrl", "error"),
        ("unknown_action", "/States/B/ActionUrl", "error"),
        ("unsupported_action", "/States/C/ActionUrl", "warning"),
    ]
    assert "beamlink:<name>" in problems[0].hint


def test_warnings_do_not_stop_loading(flow: Flow) -> None:
    definition = flow(
        {
            "A": {
                "Type": "Action",
                "ActionUrl": "https://actions.globus.org/weboption/wait_for_option",
                "Parameters": {},
                "End": True,
            }
        }
    )
    assert [p.severity for p in validate(definition)] == ["warning"]
    assert isinstance(load_definition(definition).states["A"], ActionState)


def test_unknown_fields_with_hints(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {"Type": "Pass", "ResultPth": "$.x", "OutputPath": "$", "Retry": [], "Next": "B"},
                "B": {"Type": "Wait", "Seconds": 1, "TimeoutSeconds": 3, "End": True},
            }
        )
    )
    by_pointer = {p.pointer: p for p in problems}
    assert set(by_pointer) == {
        "/States/A/ResultPth",
        "/States/A/OutputPath",
        "/States/A/Retry",
        "/States/B/TimeoutSeconds",
    }
    assert all(p.code == "unknown_field" for p in problems)
    assert "'ResultPath'" in by_pointer["/States/A/ResultPth"].hint
    assert "ResultPath" in by_pointer["/States/A/OutputPath"].hint
    assert "Action, Parallel, Map" in by_pointer["/States/A/Retry"].hint
    assert "WaitTime" in by_pointer["/States/B/TimeoutSeconds"].hint


def test_missing_required_fields(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {"Type": "Action", "Next": "B"},
                "B": {"Type": "ExpressionEval", "Next": "C"},
                "C": {"Type": "Choice"},
                "D": {"Next": "A"},
            }
        )
    )
    got = codes(problems)
    assert ("missing_field", "/States/A") in got  # ActionUrl, and Parameters or InputPath
    assert sum(1 for p in problems if p.pointer == "/States/A" and p.code == "missing_field") == 2
    assert sum(1 for p in problems if p.pointer == "/States/B" and p.code == "missing_field") == 2
    assert ("missing_field", "/States/C") in got
    assert ("missing_field", "/States/D") in got  # Type


def test_unknown_state_type_with_asl_hint(flow: Flow) -> None:
    problems = validate(flow({"A": {"Type": "Task", "Resource": "arn:x", "End": True}}))
    assert codes(problems) == [("unknown_state_type", "/States/A/Type")]
    assert "Action" in problems[0].hint


def test_wrong_types_and_bad_values(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {
                    "Type": "Action",
                    "ActionUrl": "beamlink:ls",
                    "Parameters": [],
                    "WaitTime": -1,
                    "ExceptionOnActionFailure": "yes",
                    "Next": "B",
                },
                "B": {"Type": "Wait", "Seconds": 40_000_000, "Next": "C"},
                "C": {
                    "Type": "Map",
                    "Iterator": {"StartAt": "X", "States": {"X": END}},
                    "MaxConcurrency": -2,
                    "End": True,
                },
            }
        )
    )
    assert codes(problems) == [
        ("wrong_type", "/States/A/Parameters"),
        ("bad_value", "/States/A/WaitTime"),
        ("wrong_type", "/States/A/ExceptionOnActionFailure"),
        ("bad_value", "/States/B/Seconds"),
        ("bad_value", "/States/C/MaxConcurrency"),
    ]


def test_conflicting_fields(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {
                    "Type": "Action",
                    "ActionUrl": "beamlink:ls",
                    "Parameters": {},
                    "InputPath": "$.x",
                    "Next": "B",
                },
                "B": {"Type": "Wait", "Seconds": 1, "Timestamp": "2024-01-01T00:00:00Z", "Next": "C"},
                "C": {"Type": "Wait", "End": True},
            }
        )
    )
    assert codes(problems) == [
        ("conflicting_fields", "/States/A/InputPath"),
        ("conflicting_fields", "/States/B/Timestamp"),
        ("missing_field", "/States/C"),
    ]


def test_choice_rules(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [
                        {"Variable": "$.x", "NumericEquals": "3", "Next": "Done"},
                        {"Variable": "$.x", "NumericGreaterThen": 3, "Next": "Done"},
                        {"And": [{"Variable": "$.x", "IsPresent": True, "Next": "Done"}], "Next": "Done"},
                        {"Variable": "$.x", "StringEquals": "a", "BooleanEquals": True, "Next": "Done"},
                        {"NumericEquals": 1, "Next": "Done"},
                        {"Variable": "$.t", "TimestampEquals": "yesterday", "Next": "Done"},
                        {"Not": {"Variable": "$.x", "StringMatches": "*.h5"}},
                    ],
                    "Default": "Nowhere",
                },
                "Done": END,
            }
        )
    )
    got = codes(problems)
    assert got == [
        ("wrong_type", "/States/C/Choices/0/NumericEquals"),
        ("unknown_field", "/States/C/Choices/1/NumericGreaterThen"),
        ("bad_choice_rule", "/States/C/Choices/1"),
        ("unknown_field", "/States/C/Choices/2/And/0/Next"),
        ("bad_choice_rule", "/States/C/Choices/3"),
        ("missing_field", "/States/C/Choices/4"),
        ("bad_timestamp", "/States/C/Choices/5/TimestampEquals"),
        ("missing_field", "/States/C/Choices/6"),
        ("unknown_next", "/States/C/Default"),
    ]
    assert "NumericGreaterThan" in problems[1].hint


def test_private_parameters_and_duplicates(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {
                    "Type": "ExpressionEval",
                    "Parameters": {
                        "server": {"password": "x", "__Private_Parameters": ["pasword"]},
                        "token.$": "$._private.token",
                        "token": "literal",
                        "__Private_Parameters": ["token.$"],
                    },
                    "ResultPath": "$.r",
                    "End": True,
                }
            }
        )
    )
    assert codes(problems) == [
        ("bad_private_parameters", "/States/A/Parameters/server/__Private_Parameters/0"),
        ("duplicate_parameter", "/States/A/Parameters/token"),
    ]
    assert "'password'" in problems[0].hint


def test_catch_and_retry_entries(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "A": {
                    "Type": "Action",
                    "ActionUrl": "beamlink:compute",
                    "Parameters": {},
                    "Catch": [{"ErrorEquals": [], "Next": "Missing"}, {"Next": "B"}],
                    "Retry": [
                        {
                            "ErrorEquals": ["States.All"],
                            "BackoffRate": 0.5,
                            "MaxAttempts": -1,
                            "JitterStrategy": "FULL",
                        }
                    ],
                    "Next": "B",
                },
                "B": END,
            }
        )
    )
    assert codes(problems) == [
        ("wrong_type", "/States/A/Catch/0/ErrorEquals"),
        ("unknown_next", "/States/A/Catch/0/Next"),
        ("missing_field", "/States/A/Catch/1"),
        ("unknown_field", "/States/A/Retry/0/JitterStrategy"),
        ("bad_value", "/States/A/Retry/0/BackoffRate"),
        ("bad_value", "/States/A/Retry/0/MaxAttempts"),
    ]


def test_catch_edges_make_states_reachable(flow: Flow) -> None:
    definition = flow(
        {
            "A": {
                "Type": "Action",
                "ActionUrl": "beamlink:ls",
                "Parameters": {},
                "Catch": [{"ErrorEquals": ["States.All"], "Next": "Handler"}],
                "End": True,
            },
            "Handler": {"Type": "Fail", "Error": "X"},
        }
    )
    assert validate(definition) == []


def test_nested_machines_are_checked_with_their_own_pointers(flow: Flow) -> None:
    problems = validate(
        flow(
            {
                "Fan": {
                    "Type": "Parallel",
                    "Branches": [
                        {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}},
                        {"StartAt": "Z", "States": {"Z": END, "Lost": END}},
                    ],
                    "Next": "Each",
                },
                "Each": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                        "StartAt": "P",
                        "States": {"P": {"Type": "Pass", "Next": "Fan"}},
                    },
                    "End": True,
                },
            }
        )
    )
    assert codes(problems) == [
        ("unknown_next", "/States/Fan/Branches/0/States/X/Next"),
        ("unreachable_state", "/States/Fan/Branches/1/States/Lost"),
        ("bad_value", "/States/Each/ItemProcessor/ProcessorConfig/Mode"),
        ("unknown_next", "/States/Each/ItemProcessor/States/P/Next"),
    ]


def test_everything_is_reported_at_once_and_load_raises_with_all(flow: Flow) -> None:
    definition = flow(
        {
            "A": {"Type": "Pass", "Next": "Nope"},
            "B": {"Type": "Action", "ActionUrl": "mailto:x", "Parameters": {"p.$": "oops"}, "End": True},
            "C": {"Type": "Wait", "Seconds": 1},
        }
    )
    problems = validate(definition)
    assert codes(problems) == [
        ("unknown_next", "/States/A/Next"),
        ("unknown_action", "/States/B/ActionUrl"),
        ("bad_jsonpath", "/States/B/Parameters/p.$"),
        ("no_transition", "/States/C"),
    ]
    with pytest.raises(FlowInvalid) as raised:
        load_definition(definition)
    error = raised.value
    assert isinstance(error, InvalidInput)
    assert (error.code, error.status) == ("FLOW_INVALID", 422)
    assert error.details["problems"] == [p.model_dump(mode="json") for p in problems]
    assert error.message.startswith("flow definition is invalid: /States/A/Next:")
    assert {"pointer", "code", "message", "hint", "severity"} <= set(error.details["problems"][0])


def test_invalid_documents() -> None:
    assert codes(validate("{not json")) == [("invalid_document", "")]
    assert "line 1" in validate("{not json")[0].message
    assert codes(validate("StartAt: [unclosed")) == [("invalid_document", "")]
    assert codes(validate("[1, 2]")) == [("wrong_type", "")]
    assert codes(validate(b"\xff\xfe")) == [("invalid_document", "")]


def test_yaml_definitions_keep_timestamps_as_strings() -> None:
    text = """
StartAt: Hold
States:
  Hold:
    Type: Wait
    Timestamp: 2024-05-01T12:00:00Z
    Next: Done
  Done:
    Type: Pass
    End: true
"""
    assert validate(text) == []
    hold = load_definition(text).states["Hold"]
    assert isinstance(hold, WaitState)
    assert hold.timestamp == "2024-05-01T12:00:00Z"


def test_parallel_and_map_models(flow: Flow) -> None:
    definition = load_definition(
        flow(
            {
                "Fan": {
                    "Type": "Parallel",
                    "Branches": [{"StartAt": "X", "States": {"X": END}}],
                    "Next": "Each",
                },
                "Each": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "Iterator": {"StartAt": "Y", "States": {"Y": END}},
                    "Parameters": {"v.$": "$$.Map.Item.Value"},
                    "MaxConcurrency": 2,
                    "End": True,
                },
            }
        )
    )
    fan, each = definition.states["Fan"], definition.states["Each"]
    assert isinstance(fan, ParallelState)
    assert len(fan.branches) == 1
    assert isinstance(each, MapState)
    assert each.item_selector == {"v.$": "$$.Map.Item.Value"}
    assert each.max_concurrency == 2
    assert definition.machine(["Fan#0"]).start_at == "X"
    assert definition.machine(["Each"]).start_at == "Y"


def test_problem_str_is_readable() -> None:
    problem = Problem(
        pointer="/States/A/Next", code="unknown_next", message="'B' is not a state", hint="add it"
    )
    assert str(problem) == "error: /States/A/Next: 'B' is not a state (add it)"


def test_yaml_state_names_must_be_strings() -> None:
    problems = validate("StartAt: '1'\nStates:\n  1: {Type: Pass, End: true}\n")
    assert ("wrong_type", "/States/1") in codes(problems)


DOCS_EXAMPLE = """
StartAt: Transfer
States:
  Transfer:
    Type: Action
    ActionUrl: https://transfer.actions.globus.org/transfer
    Parameters:
      source_endpoint.$: $.input.source
      destination_endpoint.$: input.destination
      label.=: "'run ' + _context.run_id +"
    ResultPth: $.Transfer
    Next: Analyze
  Analyse:
    Type: Action
    ActionUrl: compute
    Parameters: {tasks.$: $.input.tasks}
    End: true
"""


def test_the_example_in_the_docs() -> None:
    """docs/flow-language.md shows this definition's problems; keep them true."""
    assert [str(p) for p in validate(DOCS_EXAMPLE)] == [
        "error: /States/Transfer/Parameters/destination_endpoint.$: 'input.destination': a JSONPath "
        "must start with '$' (for example '$.input.path') (paths look like $.input.files[0].name)",
        "error: /States/Transfer/Parameters/label.=: \"'run ' + _context.run_id +\": syntax error: "
        "invalid syntax (expressions name run-state keys without '$.', e.g. "
        "\"input.path + '/' + input.name\")",
        "error: /States/Transfer/ResultPth: 'ResultPth' is not a field of an Action state "
        "(did you mean 'ResultPath'?)",
        "error: /States/Transfer/Next: 'Analyze' is not a state of this state machine "
        "(did you mean 'Analyse'?)",
        "error: /States/Analyse/ActionUrl: 'compute' is not a known action (use beamlink:<name> for a "
        "built-in (compute, delete, expression_eval, hello_world, ls, mkdir, notify, search_delete, "
        "search_ingest, transfer, wait_for_files), a Globus action URL, or the https:// URL of an Action "
        "Provider)",
    ]


def test_errors_survive_the_api_round_trip(flow: Flow) -> None:
    with pytest.raises(FlowInvalid) as raised:
        load_definition(flow({"A": {"Type": "Pass", "Next": "B"}}))
    rebuilt = error_from_payload(422, raised.value.to_dict())
    assert isinstance(rebuilt, FlowInvalid)
    assert rebuilt.problems == raised.value.problems
    assert rebuilt.problems[0].code == "unknown_next"

    with pytest.raises(FlowInputInvalid) as input_error:
        check_input({"required": ["x"]}, {})
    again = error_from_payload(422, input_error.value.to_dict())
    assert isinstance(again, FlowInputInvalid)
    assert again.problems[0].pointer == "/x"

    state_error = error_from_payload(422, StatesError("States.Runtime", "bad value").to_dict())
    assert isinstance(state_error, StatesError)
    assert (state_error.error, state_error.cause) == ("States.Runtime", "bad value")


def test_every_problem_has_a_hint(flow: Flow) -> None:
    broken = [
        flow({"A": {"Type": "Action", "Next": "B"}, "B": {"Type": "Wait"}, "C": {"Type": "Task"}}),
        flow({"A": {"Type": "Wait", "Seconds": -1, "End": True, "Bogus": 1}}),
        flow(
            {
                "A": {
                    "Type": "Action",
                    "ActionUrl": "x",
                    "Parameters": {"a.=": "1 +"},
                    "End": True,
                    "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0}],
                }
            }
        ),
        flow(
            {
                "A": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "And": [{"Variable": "$.x", "IsNull": 1}], "Next": "A"}],
                }
            }
        ),
        {"StartAt": 3, "States": {}},
    ]
    problems = [problem for definition in broken for problem in validate(definition)]
    assert len(problems) >= 12
    assert [str(p) for p in problems if not p.hint] == []
