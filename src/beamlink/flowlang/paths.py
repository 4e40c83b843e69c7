"""JSONPath references into a run's state (parsed and matched by jsonpath-ng).

Three uses, three rules:

* a *path* (``"key.$"`` values, ``InputPath``, ``ItemsPath``, Choice ``Variable``) may be any JSONPath
  jsonpath-ng's extended parser reads; one that can only ever select one value (fields and single
  indexes) yields that value, any other (wildcards, slices, filters) yields the list of matches;
* a *reference path* (``ResultPath``) must be fields and single indexes only, and may not point into
  ``$._context``;
* ``$._context`` is virtual and read-only: it is looked up in the caller's context, never stored.

``$$.`` (the ASL context object) is read as ``$._context.``, so ``$$.Map.Item.Value`` works inside a Map
``ItemSelector``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as _parse_jsonpath
from jsonpath_ng.jsonpath import Child, Fields, Index, Root, This

from beamlink.flowlang.errors import StatesError
from beamlink.flowlang.messages import PARAMETER_PATH_FAILURE, RESULT_PATH_MATCH_FAILURE

__all__ = [
    "CONTEXT_KEY",
    "check_path",
    "check_reference_path",
    "is_present",
    "normalize",
    "resolve",
    "write",
]

CONTEXT_KEY = "_context"

_MISSING = object()


def normalize(path: str) -> str:
    """Rewrite the ASL context prefix ``$$`` to ``$._context``; other paths are returned unchanged."""
    if path.startswith("$$"):
        return "$." + CONTEXT_KEY + path[2:]
    return path


@lru_cache(maxsize=4096)
def _compile(path: str) -> tuple[JSONPath | None, str | None]:
    """Parse once per distinct path string; returns (expression, None) or (None, error message)."""
    text = normalize(path)
    if not text.startswith("$"):
        return None, "a JSONPath must start with '$' (for example '$.input.path')"
    try:
        return _parse_jsonpath(text), None
    except (JSONPathError, ValueError, TypeError, AttributeError) as exc:
        # jsonpath-ng reports bad syntax through its own errors and, for some inputs, plain ones.
        return None, f"not a valid JSONPath: {exc}"


def check_path(path: str) -> str | None:
    """Return why ``path`` is not a usable JSONPath, or ``None`` when it is."""
    return _compile(path)[1]


def _segments(expr: JSONPath) -> tuple[str | int, ...] | None:
    """Fields/indexes of a path that can only select one value, or ``None`` for any other path."""
    if isinstance(expr, Root):
        return ()
    if isinstance(expr, This):
        return ()
    if isinstance(expr, Child):
        left = _segments(expr.left)
        if left is None:
            return None
        right = expr.right
        if isinstance(right, Fields) and len(right.fields) == 1 and right.fields[0] != "*":
            return (*left, right.fields[0])
        if isinstance(right, Index) and len(right.indices) == 1:
            return (*left, int(right.indices[0]))
        return None
    return None


@lru_cache(maxsize=4096)
def _reference(path: str) -> tuple[tuple[str | int, ...] | None, str | None]:
    expr, error = _compile(path)
    if expr is None:
        return None, error
    segments = _segments(expr)
    if segments is None:
        return None, "a ResultPath may only name fields and single list indexes (no wildcards or filters)"
    if segments and segments[0] == CONTEXT_KEY:
        return None, "$._context is read-only and cannot be a ResultPath"
    return segments, None


def check_reference_path(path: str) -> str | None:
    """Return why ``path`` cannot be a ``ResultPath``, or ``None`` when it can."""
    return _reference(path)[1]


def _root_view(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    # Inject the virtual $._context without copying the document deeply: a shallow dict is enough
    # because look-ups never write.
    if isinstance(data, dict):
        return {**data, CONTEXT_KEY: dict(context)}
    if normalize(path).startswith("$." + CONTEXT_KEY):
        return {CONTEXT_KEY: dict(context)}
    return data


def _lookup(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    expr, error = _compile(path)
    if expr is None:
        raise StatesError(PARAMETER_PATH_FAILURE, f"{path!r}: {error}")
    segments = _segments(expr)
    if segments == ():
        return data  # "$": the document itself, without the virtual _context
    root = _root_view(path, data, context)
    if segments is not None:
        node = root
        for segment in segments:
            found = (isinstance(segment, str) and isinstance(node, dict) and segment in node) or (
                isinstance(segment, int) and isinstance(node, list) and -len(node) <= segment < len(node)
            )
            if not found:
                return _MISSING
            node = node[segment]
        return node
    return [match.value for match in expr.find(root)]


def resolve(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    """The value at ``path`` in ``data`` (``$._context`` read from ``context``).

    A single-value path that selects nothing raises :class:`StatesError` with
    ``States.ParameterPathFailure``; a multi-value path yields the (possibly empty) list of matches.
    The value is the document's own object: copy it before changing it.
    """
    value = _lookup(path, data, context)
    if value is _MISSING:
        raise StatesError(PARAMETER_PATH_FAILURE, f"the path {path!r} does not exist in the run state")
    return value


def is_present(path: str, data: Any, context: Mapping[str, Any]) -> bool:
    """Whether ``path`` selects anything in ``data`` (a null value is present)."""
    value = _lookup(path, data, context)
    if value is _MISSING:
        return False
    expr = _compile(path)[0]
    if expr is not None and _segments(expr) is None:
        return bool(value)  # a wildcard or filter is present when it matched something
    return True


def write(data: Any, path: str | None, value: Any) -> Any:
    """Store ``value`` at the reference path ``path`` in ``data`` and return the new document.

    ``"$"`` replaces the whole document; ``None`` (``"ResultPath": null``) discards ``value``. Missing
    objects on the way are created; anything else that is in the way (a string where an object is
    needed, an index past the end of a list) raises ``States.ResultPathMatchFailure``. ``data`` is
    changed in place: pass a copy if the caller's document must stay as it was.
    """
    if path is None:
        return data
    segments, error = _reference(path)
    if segments is None:
        raise StatesError(RESULT_PATH_MATCH_FAILURE, f"{path!r}: {error}")
    if not segments:
        return value
    node = data
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        where = "$" + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments[: position + 1])
        if isinstance(segment, str):
            if not isinstance(node, dict):
                raise StatesError(
                    RESULT_PATH_MATCH_FAILURE, f"cannot set {where}: its parent is not an object"
                )
            if last:
                node[segment] = value
            else:
                if segment not in node:
                    if isinstance(segments[position + 1], int):
                        raise StatesError(
                            RESULT_PATH_MATCH_FAILURE, f"cannot index {where}: it does not exist"
                        )
                    node[segment] = {}
                node = node[segment]
        else:
            if not isinstance(node, list) or not -len(node) <= segment < len(node):
                raise StatesError(RESULT_PATH_MATCH_FAILURE, f"cannot set {where}: no such list element")
            if last:
                node[segment] = value
            else:
                node = node[segment]
    return data
