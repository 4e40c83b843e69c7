"""Run input validation against the flow's JSON Schema."""

from __future__ import annotations

import pytest

from beamlink.errors import InvalidInput
from beamlink.flowlang import FlowInputInvalid, check_input, validate_input

SCHEMA = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "input": {
            "type": "object",
            "required": ["source", "destination", "threshold"],
            "properties": {
                "source": {
                    "type": "object",
                    "required": ["id", "path"],
                    "properties": {"id": {"type": "string"}},
                },
                "destination": {"type": "string"},
                "threshold": {"type": "number", "minimum": 0},
                "mode": {"enum": ["fast", "slow"]},
                "when": {"type": "string", "format": "date-time"},
            },
            "additionalProperties": False,
        }
    },
}


def test_valid_input_has_no_problems() -> None:
    good = {"input": {"source": {"id": "a", "path": "/x"}, "destination": "b", "threshold": 1}}
    assert validate_input(SCHEMA, good) == []
    check_input(SCHEMA, good)


def test_every_field_is_named() -> None:
    bad = {"input": {"source": {"id": 3}, "threshold": -1, "mode": "medium", "when": "tuesday", "extra": 1}}
    problems = validate_input(SCHEMA, bad)
    by_pointer = {p.pointer: p for p in problems}
    assert set(by_pointer) == {
        "/input",  # additionalProperties
        "/input/destination",
        "/input/mode",
        "/input/source/id",
        "/input/source/path",
        "/input/threshold",
        "/input/when",
    }
    assert by_pointer["/input/destination"].code == "missing_field"
    assert by_pointer["/input/source/path"].message == "'path' is required"
    assert "string" in by_pointer["/input/source/id"].hint
    assert "fast" in by_pointer["/input/mode"].hint
    assert "date-time" in by_pointer["/input/when"].hint


def test_no_schema_accepts_anything() -> None:
    assert validate_input(None, {"anything": 1}) == []
    assert validate_input({}, [1, 2]) == []


def test_invalid_schema_is_reported() -> None:
    problems = validate_input({"type": "objekt"}, {})
    assert [p.code for p in problems] == ["bad_input_schema"]
    assert problems[0].pointer == "/type"


def test_check_input_raises_with_all_problems() -> None:
    with pytest.raises(FlowInputInvalid) as raised:
        check_input(SCHEMA, {"input": {}})
    assert isinstance(raised.value, InvalidInput)
    assert raised.value.code == "FLOW_INPUT_INVALID"
    assert [p["pointer"] for p in raised.value.details["problems"]] == [
        "/input/source",
        "/input/destination",
        "/input/threshold",
    ]
