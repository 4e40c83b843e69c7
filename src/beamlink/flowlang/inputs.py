"""Check a run input against a flow's input schema (JSON Schema, via jsonschema)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError

from beamlink.flowlang.choice import parse_timestamp
from beamlink.flowlang.errors import FlowInputInvalid
from beamlink.flowlang.problems import Problem, pointer

__all__ = ["check_input", "validate_input", "validate_input_schema"]

# Globus validated flow input with Draft 7 when a schema names no draft; so do we.
_DEFAULT_VALIDATOR = jsonschema.Draft7Validator


def _format_checker() -> jsonschema.FormatChecker:
    """jsonschema's format checks, plus ``date-time`` when the optional package it would use for it is
    not installed: flows take timestamps (Wait, Choice) and a wrong one should be caught at the start."""
    checker = jsonschema.FormatChecker()
    if "date-time" not in checker.checkers:
        checker.checks("date-time")(
            lambda value: not isinstance(value, str) or parse_timestamp(value) is not None
        )
    return checker


_FORMAT_CHECKER = _format_checker()


def _validator_class(schema: Mapping[str, Any]) -> type[Any]:
    cls: type[Any] = jsonschema.validators.validator_for(schema, default=_DEFAULT_VALIDATOR)
    return cls


def validate_input_schema(input_schema: Mapping[str, Any]) -> list[Problem]:
    """Problems with the schema itself (pointer into the schema); empty when it is a valid schema."""
    try:
        _validator_class(input_schema).check_schema(input_schema)
    except SchemaError as exc:
        return [
            Problem(
                pointer=pointer(*exc.absolute_path),
                code="bad_input_schema",
                message=f"the input schema is not valid JSON Schema: {exc.message}",
                hint="see https://json-schema.org for the keywords",
            )
        ]
    return []


def _hint(error: ValidationError) -> str:
    if error.validator == "type":
        return f"expected type {error.validator_value}"
    if error.validator == "enum":
        return f"use one of {error.validator_value}"
    if error.validator == "additionalProperties":
        return "remove the fields the schema does not list"
    if error.validator == "format":
        return f"must be a valid {error.validator_value}"
    return f"the schema's {error.validator!r} rule at {pointer(*error.absolute_schema_path) or '/'}"


def _problems(error: ValidationError) -> list[Problem]:
    # A "required" error sits on the parent object; point at the missing field itself so every problem
    # names the field it is about.
    required = error.validator_value if isinstance(error.validator_value, list) else []
    if error.validator == "required" and isinstance(error.instance, dict):
        return [
            Problem(
                pointer=pointer(*error.absolute_path, field),
                code="missing_field",
                message=f"{field!r} is required",
                hint="add it to the run input",
            )
            for field in required
            if field not in error.instance
        ]
    return [
        Problem(
            pointer=pointer(*error.absolute_path),
            code="invalid_input",
            message=error.message,
            hint=_hint(error),
        )
    ]


def validate_input(input_schema: Mapping[str, Any] | None, run_input: Any) -> list[Problem]:
    """Every way ``run_input`` fails ``input_schema``, each with a JSON pointer into the input.

    ``None`` or ``{}`` accepts anything. A schema that is itself invalid gives ``bad_input_schema``
    problems (pointing into the schema). Formats (``date-time``, ``uri``, ...) are checked.
    """
    if not input_schema:
        return []
    schema_problems = validate_input_schema(input_schema)
    if schema_problems:
        return schema_problems
    cls = _validator_class(input_schema)
    validator = cls(input_schema, format_checker=_FORMAT_CHECKER)
    seen: set[str] = set()
    problems: list[Problem] = []
    for error in sorted(validator.iter_errors(run_input), key=lambda e: [str(p) for p in e.absolute_path]):
        for problem in _problems(error):
            key = problem.pointer + "\0" + problem.message
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return problems


def check_input(input_schema: Mapping[str, Any] | None, run_input: Any) -> None:
    """Raise :class:`FlowInputInvalid` (code ``FLOW_INPUT_INVALID``) listing every problem, if any."""
    problems = validate_input(input_schema, run_input)
    if problems:
        raise FlowInputInvalid(problems)
