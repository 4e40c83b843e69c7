"""Parameters templates (constants, references, expressions at any depth) and secret redaction."""

from __future__ import annotations

from typing import Any

import pytest

from beamlink.flowlang import PARAMETER_PATH_FAILURE, REDACTED, StatesError, evaluate_parameters, redact

DATA: dict[str, Any] = {
    "input": {"src": "ep-1", "paths": ["/a", "/b"], "threshold": 0.5},
    "_private": {"password": "hunter2"},
}
CONTEXT = {"run_id": "r-7"}


def test_constants_references_and_expressions_nest_at_any_depth() -> None:
    template = {
        "constant": 10,
        "ref.$": "$.input.src",
        "label.=": "'run ' + _context.run_id",
        "nested": {
            "list": [
                {"path.$": "$.input.paths[0]"},
                {"path.=": "input.paths[1] + '/x'"},
                "plain",
                [1, {"t.$": "$.input.threshold"}],
            ],
            "deeper": {"deepest": {"ctx.$": "$._context.run_id"}},
        },
    }
    value, private = evaluate_parameters(template, DATA, CONTEXT)
    assert value == {
        "constant": 10,
        "ref": "ep-1",
        "label": "run r-7",
        "nested": {
            "list": [{"path": "/a"}, {"path": "/b/x"}, "plain", [1, {"t": 0.5}]],
            "deeper": {"deepest": {"ctx": "r-7"}},
        },
    }
    assert private == []


def test_referenced_values_are_copies() -> None:
    value, _ = evaluate_parameters({"paths.$": "$.input.paths"}, DATA, CONTEXT)
    value["paths"].append("/c")
    assert DATA["input"]["paths"] == ["/a", "/b"]


def test_private_parameters_are_collected_and_not_passed_on() -> None:
    template = {
        "server": {
            "url": "https://x",
            "password.$": "$._private.password",
            "__Private_Parameters": ["password"],
        },
        "token": "abc",
        "__Private_Parameters": ["token.$"],
    }
    value, private = evaluate_parameters(template, DATA, CONTEXT)
    assert value == {"server": {"url": "https://x", "password": "hunter2"}, "token": "abc"}
    assert private == ["password", "token"]
    assert redact(value, private) == {"server": {"url": "https://x", "password": REDACTED}, "token": REDACTED}


def test_missing_reference_fails() -> None:
    with pytest.raises(StatesError) as raised:
        evaluate_parameters({"a": {"b.$": "$.input.nope"}}, DATA, CONTEXT)
    assert raised.value.error == PARAMETER_PATH_FAILURE


def test_redact_hides_private_prefixes_tokens_and_named_keys_at_any_depth() -> None:
    document = {
        "_private": {"password": "p"},
        "_private_key": "k",
        "_tokens": {"Admin": "t"},
        "step": {"details": [{"secret": "s", "public": 1, "_private_x": 2}]},
        "keep": "me",
    }
    assert redact(document, ["secret"]) == {
        "_private": REDACTED,
        "_private_key": REDACTED,
        "_tokens": REDACTED,
        "step": {"details": [{"secret": REDACTED, "public": 1, "_private_x": REDACTED}]},
        "keep": "me",
    }
    assert document["_private"] == {"password": "p"}  # the original is untouched
    assert redact("scalar") == "scalar"
