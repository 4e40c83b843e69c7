"""Evaluate a ``Parameters`` template: constants, ``key.$`` references and ``key.=`` expressions.

Templates nest to any depth, through objects and lists. A ``__Private_Parameters`` list in any object
names keys of that object (with or without their ``.$``/``.=`` suffix) whose values are secret; the
list itself is not passed on, and the names are returned so the caller can :func:`redact` them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from beamlink.flowlang import paths
from beamlink.flowlang.expressions import evaluate_expression

__all__ = [
    "EXPRESSION_SUFFIX",
    "PRIVATE_PARAMETERS_KEY",
    "REFERENCE_SUFFIX",
    "evaluate_parameters",
    "parameter_name",
]

PRIVATE_PARAMETERS_KEY = "__Private_Parameters"
REFERENCE_SUFFIX = ".$"
EXPRESSION_SUFFIX = ".="


def parameter_name(key: str) -> str:
    """The key a template entry produces: ``"path.$"`` and ``"path.="`` both give ``"path"``."""
    if key.endswith((REFERENCE_SUFFIX, EXPRESSION_SUFFIX)):
        return key[:-2]
    return key


def _evaluate(template: Any, data: Any, context: Mapping[str, Any], private: set[str]) -> Any:
    if isinstance(template, list):
        return [_evaluate(item, data, context, private) for item in template]
    if not isinstance(template, dict):
        return copy.deepcopy(template)
    out: dict[str, Any] = {}
    for key, value in template.items():
        if key == PRIVATE_PARAMETERS_KEY:
            private.update(parameter_name(str(name)) for name in value)
        elif key.endswith(REFERENCE_SUFFIX):
            # The document's own objects must not be shared with the result, which the caller may store
            # elsewhere in the same document and change later.
            out[key[:-2]] = copy.deepcopy(paths.resolve(value, data, context))
        elif key.endswith(EXPRESSION_SUFFIX):
            out[key[:-2]] = evaluate_expression(value, data, context)
        else:
            out[key] = _evaluate(value, data, context, private)
    return out


def evaluate_parameters(template: Any, data: Any, context: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """Evaluate ``template`` against the run state ``data`` and ``_context``.

    Returns the value and the sorted names of its private parameters. A reference to a missing path
    raises :class:`StatesError` ``States.ParameterPathFailure``; a failing expression
    ``States.IntrinsicFailure`` (or ``States.ParameterPathFailure`` for a missing name).
    """
    private: set[str] = set()
    value = _evaluate(template, data, context, private)
    return value, sorted(private)
