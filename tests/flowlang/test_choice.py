"""Choice rules: every comparator, the Path variants, type tests, And/Or/Not, Default."""

from __future__ import annotations

from typing import Any

import pytest

from beamlink.flowlang import (
    NO_CHOICE_MATCHED,
    PARAMETER_PATH_FAILURE,
    ChoiceRule,
    StatesError,
    evaluate_rule,
)
from beamlink.flowlang.choice import string_matches

DATA: dict[str, Any] = {
    "s": "beta",
    "n": 5,
    "f": 2.5,
    "b": True,
    "t": "2024-05-01T12:00:00Z",
    "t2": "2024-05-01T14:00:00+02:00",
    "null": None,
    "other_s": "alpha",
    "other_n": 5,
    "other_t": "2024-06-01T00:00:00Z",
    "file": "scan_001.h5",
}


def holds(rule: dict[str, Any]) -> bool:
    return evaluate_rule(ChoiceRule.model_validate(rule), DATA, {"run_id": "r"})


CASES: list[tuple[str, str, Any, bool]] = [
    ("StringEquals", "$.s", "beta", True),
    ("StringEquals", "$.s", "Beta", False),
    ("StringLessThan", "$.s", "gamma", True),
    ("StringGreaterThan", "$.s", "alpha", True),
    ("StringLessThanEquals", "$.s", "beta", True),
    ("StringGreaterThanEquals", "$.s", "zeta", False),
    ("NumericEquals", "$.n", 5, True),
    ("NumericEquals", "$.n", 5.0, True),
    ("NumericLessThan", "$.f", 3, True),
    ("NumericGreaterThan", "$.n", 5, False),
    ("NumericLessThanEquals", "$.n", 5, True),
    ("NumericGreaterThanEquals", "$.f", 2.5, True),
    ("NumericEquals", "$.s", 5, False),  # wrong type: no match, no error
    ("NumericEquals", "$.b", 1, False),  # a boolean is not a number
    ("BooleanEquals", "$.b", True, True),
    ("BooleanEquals", "$.n", True, False),
    ("TimestampEquals", "$.t", "2024-05-01T14:00:00+02:00", True),  # same instant
    ("TimestampLessThan", "$.t", "2024-05-02T00:00:00Z", True),
    ("TimestampGreaterThan", "$.t", "2024-05-02T00:00:00Z", False),
    ("TimestampLessThanEquals", "$.t", "2024-05-01T12:00:00Z", True),
    ("TimestampGreaterThanEquals", "$.t", "2024-05-01T11:59:59Z", True),
    ("TimestampEquals", "$.s", "2024-05-01T12:00:00Z", False),
    ("StringEqualsPath", "$.s", "$.s", True),
    ("StringLessThanPath", "$.other_s", "$.s", True),
    ("StringGreaterThanPath", "$.s", "$.other_s", True),
    ("StringLessThanEqualsPath", "$.s", "$.other_s", False),
    ("StringGreaterThanEqualsPath", "$.s", "$.s", True),
    ("NumericEqualsPath", "$.n", "$.other_n", True),
    ("NumericLessThanPath", "$.f", "$.n", True),
    ("NumericGreaterThanPath", "$.f", "$.n", False),
    ("NumericLessThanEqualsPath", "$.n", "$.other_n", True),
    ("NumericGreaterThanEqualsPath", "$.n", "$.f", True),
    ("BooleanEqualsPath", "$.b", "$.b", True),
    ("TimestampEqualsPath", "$.t", "$.t2", True),
    ("TimestampLessThanPath", "$.t", "$.other_t", True),
    ("TimestampGreaterThanPath", "$.t", "$.other_t", False),
    ("TimestampLessThanEqualsPath", "$.t", "$.t2", True),
    ("TimestampGreaterThanEqualsPath", "$.other_t", "$.t", True),
    ("StringMatches", "$.file", "*.h5", True),
    ("StringMatches", "$.file", "scan_*_x.h5", False),
    ("StringMatches", "$.n", "*", False),
    ("IsNull", "$.null", True, True),
    ("IsNull", "$.s", True, False),
    ("IsNull", "$.s", False, True),
    ("IsPresent", "$.s", True, True),
    ("IsPresent", "$.absent", True, False),
    ("IsPresent", "$.absent", False, True),
    ("IsNumeric", "$.f", True, True),
    ("IsNumeric", "$.b", True, False),
    ("IsString", "$.s", True, True),
    ("IsString", "$.n", False, True),
    ("IsBoolean", "$.b", True, True),
    ("IsBoolean", "$.null", True, False),
    ("IsTimestamp", "$.t", True, True),
    ("IsTimestamp", "$.s", True, False),
]


@pytest.mark.parametrize(("operator", "variable", "operand", "expected"), CASES)
def test_comparators(operator: str, variable: str, operand: Any, expected: bool) -> None:
    assert holds({"Variable": variable, operator: operand}) is expected


def test_every_comparator_is_covered() -> None:
    from beamlink.flowlang.models import COMPARATORS

    assert {case[0] for case in CASES} == set(COMPARATORS)


def test_string_matches_escapes() -> None:
    assert string_matches("a*b", "a\\*b")
    assert not string_matches("axb", "a\\*b")
    assert string_matches("log.2024.txt", "log.*.txt")
    assert not string_matches("logX2024Xtxt", "log.*.txt")  # '.' is literal


def test_and_or_not() -> None:
    yes = {"Variable": "$.n", "NumericEquals": 5}
    no = {"Variable": "$.n", "NumericEquals": 6}
    assert holds({"And": [yes, yes]})
    assert not holds({"And": [yes, no]})
    assert holds({"Or": [no, yes]})
    assert not holds({"Or": [no, no]})
    assert holds({"Not": no})
    assert holds({"And": [{"Not": no}, {"Or": [no, {"Not": {"Not": yes}}]}]})


def test_and_stops_at_the_first_false_rule_so_is_present_guards() -> None:
    guarded = {
        "And": [
            {"Variable": "$.absent", "IsPresent": True},
            {"Variable": "$.absent", "NumericGreaterThan": 0},
        ]
    }
    assert not holds(guarded)


def test_comparing_a_missing_variable_is_an_error() -> None:
    with pytest.raises(StatesError) as raised:
        holds({"Variable": "$.absent", "NumericGreaterThan": 0})
    assert raised.value.error == PARAMETER_PATH_FAILURE
    with pytest.raises(StatesError):
        holds({"Variable": "$.n", "NumericEqualsPath": "$.absent"})


def test_choice_state_default_and_no_match(run: Any, flow: Any) -> None:
    states = {
        "C": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}],
            "Default": "Small",
        },
        "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "End": True},
        "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "End": True},
    }
    assert run(flow(states), {"n": 11}).output["size"] == "big"
    assert run(flow(states), {"n": 3}).output["size"] == "small"
    del states["C"]["Default"]
    del states["Small"]
    states["C"]["Choices"].append({"Variable": "$.n", "NumericLessThan": 0, "Next": "Big"})
    failed = run(flow(states), {"n": 3}).failure
    assert failed.error == NO_CHOICE_MATCHED
    assert failed.state_name == "C"
