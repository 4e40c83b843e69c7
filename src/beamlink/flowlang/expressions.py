"""Safe ``.=`` expressions, evaluated with simpleeval as Globus Flows does.

An expression sees the run state's top-level keys as names (``input.path``, ``Summary.peaks[0]``) and
the virtual ``_context``. Dotted access reads an object's key before any method of the same name, so a
state key called ``items`` or ``keys`` means the data, not ``dict.items``.

Functions: the three Globus documents (``pathsplit``, ``is_present``, ``getattr``) and a few pure
built-ins (:data:`FUNCTIONS`). simpleeval's ``rand``/``randint`` are left out on purpose: the step
function must give the same answer when an engine replays an event after a crash, and sets are left out
because their order is not stable.

Run-time errors become :class:`StatesError`: a name, key or index that is not there is
``States.ParameterPathFailure`` (like a ``.$`` reference to a missing path); anything else the
expression does wrong is ``States.IntrinsicFailure``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import simpleeval

from beamlink.flowlang import paths
from beamlink.flowlang.errors import StatesError
from beamlink.flowlang.messages import INTRINSIC_FAILURE, PARAMETER_PATH_FAILURE

__all__ = [
    "FUNCTIONS",
    "check_expression",
    "evaluate_expression",
    "pathsplit",
    "to_json",
]


def pathsplit(path: str) -> list[str]:
    """Split a path into ``[parent, last element]``, keeping the Globus root ``/~/`` whole.

    ``pathsplit("/foo/bar/blech") == ["/foo/bar", "blech"]``, ``pathsplit("/~/path") == ["/~/", "path"]``.
    A trailing slash is ignored, so a folder path splits like the same path without it.
    """
    if not isinstance(path, str):
        raise TypeError(f"pathsplit() needs a string, not {type(path).__name__}")
    if path in ("/~/", "/~"):
        return ["/~/", ""]
    trimmed = path.rstrip("/") or ("/" if path.startswith("/") else "")
    if trimmed == "/":
        return ["/", ""]
    head, sep, tail = trimmed.rpartition("/")
    if not sep:
        return ["", tail]
    if head == "/~":
        return ["/~/", tail]
    return [head or "/", tail]


#: Functions every expression may call, besides ``is_present`` and ``getattr`` (bound per run state).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "pathsplit": pathsplit,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sum": sum,
    "sorted": sorted,
    "list": list,
    "dict": dict,
    "tuple": tuple,
}
_STATE_FUNCTIONS = ("is_present", "getattr")


class _Value(ast.expr):
    """A node holding an already evaluated value (lets the attribute rule below delegate without
    evaluating the left-hand side twice)."""

    _fields = ("value",)

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


class _FlowEval(simpleeval.EvalWithCompoundTypes):  # type: ignore[misc]
    def __init__(self, names: dict[str, Any], functions: dict[str, Callable[..., Any]]) -> None:
        super().__init__(names=names, functions=functions)
        # Sets have no stable order, so they could make a replayed step differ; there is no JSON set.
        self.functions.pop("set", None)
        self.nodes.pop(ast.Set, None)
        self.nodes[_Value] = lambda node: node.value

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        base = self._eval(node.value)
        if isinstance(base, dict) and node.attr in base:
            return base[node.attr]
        return super()._eval_attribute(ast.Attribute(value=_Value(base), attr=node.attr, ctx=node.ctx))


@lru_cache(maxsize=4096)
def _parse(expression: str) -> ast.expr | str:
    """The expression's syntax tree, or why it cannot be parsed."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        return f"syntax error{where}: {exc.msg}"
    return tree.body


def check_expression(expression: str) -> str | None:
    """Return why ``expression`` cannot be evaluated (bad syntax, unknown function), or ``None``."""
    if not expression.strip():
        return "the expression is empty"
    tree = _parse(expression)
    if isinstance(tree, str):
        return tree
    known = set(FUNCTIONS) | set(_STATE_FUNCTIONS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in known:
            return f"unknown function {node.func.id!r}; available: {', '.join(sorted(known))}"
        if isinstance(node, ast.Lambda | ast.NamedExpr | ast.Await | ast.Yield | ast.YieldFrom):
            return f"{type(node).__name__} is not allowed in an expression"
        if isinstance(node, ast.Set | ast.SetComp):
            return "sets are not allowed in an expression (use a list)"
    return None


def to_json(value: Any, *, what: str = "the expression") -> Any:
    """``value`` as plain JSON data (tuples become lists); raise ``States.IntrinsicFailure`` if it is not
    JSON (a set, a function, a float that is NaN or infinite, a non-string key)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise StatesError(INTRINSIC_FAILURE, f"{what} produced {value}, which JSON cannot hold")
    if isinstance(value, list | tuple):
        return [to_json(item, what=what) for item in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StatesError(
                    INTRINSIC_FAILURE, f"{what} produced an object with a non-string key {key!r}"
                )
            out[key] = to_json(item, what=what)
        return out
    raise StatesError(INTRINSIC_FAILURE, f"{what} produced a {type(value).__name__}, which is not JSON")


def _dotted(path: str) -> str:
    """``'a.b[0]'`` (expression style, as Globus's ``is_present``/``getattr`` take) → ``'$.a.b[0]'``."""
    path = path.strip()
    if path.startswith("$"):
        return path
    return "$." + path if not path.startswith("[") else "$" + path


def _state_functions(data: Any, context: Mapping[str, Any]) -> dict[str, Callable[..., Any]]:
    def is_present(path: str) -> bool:
        if not isinstance(path, str):
            raise TypeError("is_present() takes the path as a string, e.g. is_present('input.x')")
        return paths.is_present(_dotted(path), data, context)

    def getattr_(path: str, default: Any = None) -> Any:
        if not isinstance(path, str):
            raise TypeError("getattr() takes the path as a string, e.g. getattr('input.x', 10)")
        dotted = _dotted(path)
        if not paths.is_present(dotted, data, context):
            return default
        return paths.resolve(dotted, data, context)

    return {"is_present": is_present, "getattr": getattr_}


def evaluate_expression(expression: str, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a ``.=`` expression against the run state ``data`` and ``_context``; return JSON data."""
    tree = _parse(expression) if expression.strip() else "the expression is empty"
    if isinstance(tree, str):
        raise StatesError(INTRINSIC_FAILURE, f"expression {expression!r}: {tree}")
    names: dict[str, Any] = {"True": True, "False": False, "None": None}
    if isinstance(data, dict):
        names.update(data)
    names[paths.CONTEXT_KEY] = dict(context)
    functions = {**FUNCTIONS, **_state_functions(data, context)}
    evaluator = _FlowEval(names=names, functions=functions)
    try:
        result = evaluator.eval(expression, previously_parsed=tree)
    except StatesError:
        raise
    except (simpleeval.NameNotDefined, simpleeval.AttributeDoesNotExist) as exc:
        raise StatesError(PARAMETER_PATH_FAILURE, f"expression {expression!r}: {exc}") from None
    except (KeyError, IndexError) as exc:
        raise StatesError(
            PARAMETER_PATH_FAILURE, f"expression {expression!r}: no such key or index {exc}"
        ) from None
    except Exception as exc:
        # simpleeval raises its own errors for forbidden constructs, and the expression itself can raise
        # anything Python does (TypeError, ZeroDivisionError, ...); every one is the flow author's
        # mistake, reported to the run rather than crashing the engine.
        raise StatesError(
            INTRINSIC_FAILURE, f"expression {expression!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    return to_json(result, what=f"expression {expression!r}")
