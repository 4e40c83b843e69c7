"""Read a definition (JSON or YAML text, or an already parsed document), validate it, build the models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from beamlink.flowlang.actions import ActionRegistry
from beamlink.flowlang.errors import FlowInvalid
from beamlink.flowlang.models import FlowDefinition
from beamlink.flowlang.problems import Problem, pointer
from beamlink.flowlang.validate import validate_document

__all__ = ["load_definition", "parse_document", "validate"]

Source = str | bytes | Mapping[str, Any]


class _Loader(yaml.SafeLoader):
    """A safe YAML loader that keeps timestamps as strings: ``Timestamp: 2024-01-01T00:00:00Z`` must
    stay the string Globus would read from JSON, not become a ``datetime`` that JSON cannot hold."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_document(text: str | bytes) -> Any:
    """Parse JSON or YAML text into a document; raise :class:`FlowInvalid` saying where it broke."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlowInvalid([_syntax_problem(f"the definition is not UTF-8 text: {exc}")]) from None
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise FlowInvalid(
                [_syntax_problem(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
            ) from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FlowInvalid([_syntax_problem(f"not valid YAML{where}: {problem}")]) from None


def _syntax_problem(message: str) -> Problem:
    return Problem(
        pointer="", code="invalid_document", message=message, hint="write the definition as JSON or YAML"
    )


def _document(source: Source) -> Any:
    if isinstance(source, str | bytes):
        return parse_document(source)
    return source


def validate(definition: Source, *, registry: ActionRegistry | None = None) -> list[Problem]:
    """Every problem of ``definition`` (JSON/YAML text or a parsed document), never raising.

    An empty list means the definition is sound. Each :class:`Problem` has a JSON pointer, a stable
    code, a message and a hint.
    """
    try:
        document = _document(definition)
    except FlowInvalid as exc:
        return exc.problems
    return validate_document(document, registry)


def load_definition(
    definition: Source | FlowDefinition, *, registry: ActionRegistry | None = None
) -> FlowDefinition:
    """Parse and validate ``definition`` and return the typed :class:`FlowDefinition`.

    Raises :class:`FlowInvalid` (an ``InvalidInput``, code ``FLOW_INVALID``) listing every error when
    there is any; warnings alone do not stop loading.
    """
    if isinstance(definition, FlowDefinition):
        return definition
    document = _document(definition)
    problems = validate_document(document, registry)
    if any(problem.severity == "error" for problem in problems):
        raise FlowInvalid(problems)
    try:
        return FlowDefinition.model_validate(document)
    except ValidationError as exc:  # pragma: no cover - validation above should have caught it
        raise FlowInvalid(
            [
                Problem(pointer=pointer(*error["loc"]), code="invalid_document", message=error["msg"])
                for error in exc.errors()
            ]
        ) from None
