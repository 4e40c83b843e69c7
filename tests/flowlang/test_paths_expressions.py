"""JSONPath references, ResultPath writes, and safe ``.=`` expressions."""

from __future__ import annotations

from typing import Any

import pytest

from beamlink.flowlang import (
    FUNCTIONS,
    INTRINSIC_FAILURE,
    PARAMETER_PATH_FAILURE,
    RESULT_PATH_MATCH_FAILURE,
    StatesError,
    evaluate_expression,
    pathsplit,
)
from beamlink.flowlang.expressions import check_expression
from beamlink.flowlang.paths import check_path, check_reference_path, is_present, resolve, write

DATA: dict[str, Any] = {
    "input": {"path": "/data/raw/scan_001.h5", "files": [{"name": "a"}, {"name": "b"}], "n": 3, "none": None},
    "items": [1, 2, 3],
    "_private": {"password": "hunter2"},
}
CONTEXT = {"run_id": "r-42", "username": "ada", "flow_id": "f-1"}


# -- JSONPath --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.input.path", "/data/raw/scan_001.h5"),
        ("$.input.files[1].name", "b"),
        ("$.input.files[-1].name", "b"),
        ("$['input']['n']", 3),
        ("$.input.none", None),
        ("$._context.run_id", "r-42"),
        ("$$.username", "ada"),
        ("$._private.password", "hunter2"),
        ("$.input.files[*].name", ["a", "b"]),
        ("$.items[0:2]", [1, 2]),
        ("$.input.files[?(@.name == 'b')].name", ["b"]),
        ("$.input.files[*].missing", []),
    ],
)
def test_resolve(path: str, expected: Any) -> None:
    assert resolve(path, DATA, CONTEXT) == expected


def test_resolve_root_does_not_leak_the_virtual_context() -> None:
    assert resolve("$", DATA, CONTEXT) is DATA
    assert "_context" not in resolve("$", DATA, CONTEXT)


def test_context_is_reachable_from_non_object_documents() -> None:
    assert resolve("$._context.run_id", [1, 2], CONTEXT) == "r-42"
    assert resolve("$[1]", [1, 2], CONTEXT) == 2


@pytest.mark.parametrize("path", ["$.input.nope", "$.input.files[5]", "$.items.x", "$._context.nope"])
def test_missing_path_is_parameter_path_failure(path: str) -> None:
    with pytest.raises(StatesError) as raised:
        resolve(path, DATA, CONTEXT)
    assert raised.value.error == PARAMETER_PATH_FAILURE
    assert path in raised.value.cause


def test_is_present() -> None:
    assert is_present("$.input.none", DATA, CONTEXT)
    assert not is_present("$.input.nothing", DATA, CONTEXT)
    assert is_present("$.input.files[*].name", DATA, CONTEXT)
    assert not is_present("$.input.files[*].nothing", DATA, CONTEXT)


def test_path_checks() -> None:
    assert check_path("$.a.b[0]") is None
    assert check_path("$$.Map.Item.Value") is None
    assert "start with '$'" in str(check_path("a.b"))
    assert "not a valid JSONPath" in str(check_path("$.a["))
    assert check_reference_path("$.a.b[0]") is None
    assert "read-only" in str(check_reference_path("$._context.x"))
    assert "wildcards" in str(check_reference_path("$.a[*]"))


def test_write_creates_missing_objects() -> None:
    data: dict[str, Any] = {"a": 1}
    assert write(data, "$.b.c.d", 5) == {"a": 1, "b": {"c": {"d": 5}}}


def test_write_root_replaces_and_null_discards() -> None:
    assert write({"a": 1}, "$", {"b": 2}) == {"b": 2}
    assert write({"a": 1}, None, {"b": 2}) == {"a": 1}


def test_write_into_list_element() -> None:
    assert write({"l": [{"x": 1}, {"x": 2}]}, "$.l[1].x", 9) == {"l": [{"x": 1}, {"x": 9}]}


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"a": "text"}, "$.a.b"),
        ({"l": [1]}, "$.l[3]"),
        ({}, "$.l[0]"),
        ({"a": 1}, "$._context.x"),
        ([], "$.a"),
    ],
)
def test_write_failures(data: Any, path: str) -> None:
    with pytest.raises(StatesError) as raised:
        write(data, path, 1)
    assert raised.value.error == RESULT_PATH_MATCH_FAILURE


# -- expressions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("input.n + 1", 4),
        ("'raw for run ' + _context.run_id", "raw for run r-42"),
        ("input.files[0].name + input.files[1]['name']", "ab"),
        ("pathsplit(input.path)[1]", "scan_001.h5"),
        ("pathsplit(input.path)", ["/data/raw", "scan_001.h5"]),
        ("items + [4]", [1, 2, 3, 4]),
        ("x if is_present('x') else 10", 10),
        ("is_present('input.files[1].name')", True),
        ("getattr('transfer1_label', 'Stage One for ' + _context.run_id)", "Stage One for r-42"),
        ("getattr('input.n', 0) * 2", 6),
        ("getattr('missing_property')", None),
        ("len(items) > 2 and not input.none", True),
        ("[f['name'] for f in input.files]", ["a", "b"]),
        ("{'k': input.n}", {"k": 3}),
        ("(1, 2)", [1, 2]),
        ("max(items) - min(items)", 2),
        ("str(input.n) + '.dat'", "3.dat"),
        ("input.path.split('/')[-1].upper()", "SCAN_001.H5"),
        ("_private.password", "hunter2"),
    ],
)
def test_expressions(expression: str, expected: Any) -> None:
    assert check_expression(expression) is None
    assert evaluate_expression(expression, DATA, CONTEXT) == expected


def test_object_keys_win_over_methods() -> None:
    data = {"listing": {"items": ["f1"], "keys": "k", "get": 1}}
    assert evaluate_expression("listing.items", data, {}) == ["f1"]
    assert evaluate_expression("listing.keys + str(listing.get)", data, {}) == "k1"
    # with no such key, a dict method is still there
    assert evaluate_expression("d.get('nope', 'dflt')", {"d": {"a": 1}}, {}) == "dflt"


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("nothing + 1", PARAMETER_PATH_FAILURE),
        ("input.nothing", PARAMETER_PATH_FAILURE),
        ("items[10]", PARAMETER_PATH_FAILURE),
        ("input['nothing']", PARAMETER_PATH_FAILURE),
        ("input.n + 'x'", INTRINSIC_FAILURE),
        ("1 / 0", INTRINSIC_FAILURE),
        ("input.__class__", INTRINSIC_FAILURE),
        ("''.join.__self__", INTRINSIC_FAILURE),
        ("rand()", INTRINSIC_FAILURE),
        ("{1, 2}", INTRINSIC_FAILURE),
        ("set([1])", INTRINSIC_FAILURE),
        ("float('nan')", INTRINSIC_FAILURE),
        ("'x' * 1000000", INTRINSIC_FAILURE),
        ("input.path +", INTRINSIC_FAILURE),
        ("pathsplit(3)", INTRINSIC_FAILURE),
        ("", INTRINSIC_FAILURE),
    ],
)
def test_expression_errors(expression: str, error: str) -> None:
    with pytest.raises(StatesError) as raised:
        evaluate_expression(expression, DATA, CONTEXT)
    assert raised.value.error == error
    assert raised.value.code == "FLOW_STATE_ERROR"


def test_no_nondeterministic_functions() -> None:
    assert "rand" not in FUNCTIONS
    assert "randint" not in FUNCTIONS
    assert {"pathsplit", "int", "float", "str"} <= set(FUNCTIONS)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/foo/bar/blech", ["/foo/bar", "blech"]),
        ("/~/path", ["/~/", "path"]),
        ("/~/", ["/~/", ""]),
        ("/data/raw/", ["/data", "raw"]),
        ("/top", ["/", "top"]),
        ("/", ["/", ""]),
        ("name", ["", "name"]),
        ("rel/dir/file", ["rel/dir", "file"]),
    ],
)
def test_pathsplit(path: str, expected: list[str]) -> None:
    assert pathsplit(path) == expected
