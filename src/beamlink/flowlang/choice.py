"""Evaluate Choice rules (every ASL/Globus comparison operator, ``And``/``Or``/``Not``).

A comparison between values of the wrong types is simply false (``NumericEquals`` on a string does not
match), as in ASL. A ``Variable`` that is not in the run state is an error
(``States.ParameterPathFailure``) for every operator except ``IsPresent``: guard optional values with
``IsPresent`` inside an ``And``, which stops at the first false rule.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from beamlink.flowlang import paths
from beamlink.flowlang.models import COMPARATORS, ChoiceRule, ChoiceState

__all__ = ["choose", "evaluate_rule", "parse_timestamp", "string_matches"]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 date-time as an aware datetime (no zone means UTC), or ``None`` if it is not one."""
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    # ASL StringMatches: '*' matches anything, '\*' is a literal star; nothing else is special.
    parts = re.split(r"(\\\*|\*)", pattern)
    regex = "".join(".*" if part == "*" else re.escape("*" if part == "\\*" else part) for part in parts)
    return re.compile(regex, re.DOTALL)


def string_matches(value: str, pattern: str) -> bool:
    """ASL ``StringMatches``: ``*`` is a wildcard, ``\\*`` a literal star."""
    return _pattern(pattern).fullmatch(value) is not None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _typed(kind: str, value: Any) -> Any:
    """``value`` converted for comparing as ``kind``, or ``None`` when it is not of that kind."""
    if kind == "String":
        return value if isinstance(value, str) else None
    if kind == "Numeric":
        return value if _is_number(value) else None
    if kind == "Boolean":
        return value if isinstance(value, bool) else None
    return parse_timestamp(value)


def _compare(name: str, value: Any, operand: Any, data: Any, context: Mapping[str, Any]) -> bool:
    if name.endswith("Path"):
        operand = paths.resolve(operand, data, context)
        name = name[: -len("Path")]
    kind = next(k for k in ("String", "Numeric", "Boolean", "Timestamp") if name.startswith(k))
    left, right = _typed(kind, value), _typed(kind, operand)
    if left is None or right is None:
        return False
    return _ORDER[name[len(kind) :]](left, right)


def _test(name: str, operand: Any, value: Any) -> bool:
    if name == "IsNull":
        result = value is None
    elif name == "IsNumeric":
        result = _is_number(value)
    elif name == "IsString":
        result = isinstance(value, str)
    elif name == "IsBoolean":
        result = isinstance(value, bool)
    else:  # IsTimestamp
        result = parse_timestamp(value) is not None
    return result is bool(operand)


def evaluate_rule(rule: ChoiceRule, data: Any, context: Mapping[str, Any]) -> bool:
    """Whether ``rule`` holds for the run state ``data`` (``$._context`` from ``context``)."""
    if rule.and_ is not None:
        return all(evaluate_rule(sub, data, context) for sub in rule.and_)
    if rule.or_ is not None:
        return any(evaluate_rule(sub, data, context) for sub in rule.or_)
    if rule.not_ is not None:
        return not evaluate_rule(rule.not_, data, context)
    name, variable = rule.operator or "", rule.variable or "$"
    if name == "IsPresent":
        return paths.is_present(variable, data, context) is bool(rule.operand)
    value = paths.resolve(variable, data, context)
    kind = COMPARATORS[name]
    if kind == "flag":
        return _test(name, rule.operand, value)
    if kind == "pattern":
        return isinstance(value, str) and string_matches(value, str(rule.operand))
    return _compare(name, value, rule.operand, data, context)


def choose(state: ChoiceState, data: Any, context: Mapping[str, Any]) -> str | None:
    """The ``Next`` of the first matching rule, else ``Default`` (``None`` when there is neither)."""
    for rule in state.choices:
        if evaluate_rule(rule, data, context):
            return rule.next
    return state.default
