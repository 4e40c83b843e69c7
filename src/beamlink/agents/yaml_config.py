"""YAML config text → a pydantic model, with errors a person can act on.

Agent config files (an endpoint's or a collection's ``config.yaml``) are read by :func:`load_model` and
:func:`parse_model`. Every mistake becomes one :class:`~beamlink.errors.ConfigError` whose message names
the file, the key path (``engine.max_workers``), the LINE of that key in the file and the fix: the valid
keys with the closest one suggested, the expected type, the allowed choices or bounds. ``details`` holds
the same as ``{"file", "problems": [{"key", "line", "message"}]}`` for programs.

How a config adds its own wording: models derive from :class:`Section` (unknown keys are errors that
suggest the closest key), validators raise ``PydanticCustomError(kind, ..., {"key": ..., ...})`` and an
:class:`Explainer` subclass turns those kinds into text; everything pydantic raises itself (types,
bounds, literals, enums, missing keys) is worded here.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from beamlink.errors import ConfigError

__all__ = [
    "Explainer",
    "Section",
    "close_matches",
    "describe_value",
    "did_you_mean",
    "join_choices",
    "load_model",
    "parse_model",
    "type_problem",
    "unknown_choice",
    "unknown_key",
]

M = TypeVar("M", bound=BaseModel)


class Explainer:
    """The wording of one kind of config file; subclass it to explain a config's own error kinds.

    The class attributes say what the file is; :meth:`problem` and :meth:`message` word the custom
    error kinds its validators raise (return None to fall back to the generic wording).
    """

    #: What the file is, as in "cannot read the endpoint config /path".
    what: ClassVar[str] = "config"
    #: A few top-level keys, shown when the document is not a mapping at all.
    keys_hint: ClassVar[str] = "key: value, ..."
    #: A command that writes an example file, named when the document is not a mapping.
    example: ClassVar[str] = ""
    #: Kinds reported at the line of the key itself rather than of its value.
    key_kinds: ClassVar[frozenset[str]] = frozenset({"unknown_key"})
    #: Kinds reported at the mapping that lacks something, not at the (absent) key.
    parent_kinds: ClassVar[frozenset[str]] = frozenset({"missing"})

    def problem(self, kind: str, ctx: dict[str, Any], value: Any, key: str) -> str | None:
        """What is wrong with one value and how to fix it, for a kind this config raises itself."""
        return None

    def message(self, kind: str, ctx: dict[str, Any], key: str, at: str, parent: str) -> str | None:
        """A whole message, for kinds whose wording does not fit ``<key> at line N: <problem>``."""
        return None


class Section(BaseModel):
    """A mapping whose unknown keys are errors that suggest the closest valid key."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return cls._check_mapping(data)

    @classmethod
    def _check_mapping(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        known = sorted(cls.model_fields)
        for key in data:
            if key not in cls.model_fields:
                raise unknown_key(str(key), known)
        return data


# -- loading --------------------------------------------------------------------------------------------


def load_model(path: Path, model: type[M], *, explainer: Explainer | None = None) -> M:
    """Read and validate ``path``; ConfigError names the file, key, line and fix. Empty: all defaults."""
    explainer = explainer or Explainer()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the {explainer.what} {path}: {exc.strerror or exc}") from exc
    return parse_model(text, model, source=str(path), explainer=explainer)


def parse_model(text: str, model: type[M], *, source: str, explainer: Explainer | None = None) -> M:
    """Validate YAML ``text`` as ``model`` (``source`` names the text in errors)."""
    explainer = explainer or Explainer()
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(source, exc), details={"file": source}) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        example = f"; see `{explainer.example}` for an example" if explainer.example else ""
        raise ConfigError(
            f"{source}: the file must be a mapping of keys ({explainer.keys_hint}), not {_kind(data)}"
            + example,
            details={"file": source},
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error, data, root, explainer) for error in exc.errors(include_url=False)]
        lines = [p["message"] for p in problems]
        message = f"{source}: {lines[0]}" if len(lines) == 1 else f"{source}: " + "\n  ".join(["", *lines])
        raise ConfigError(message, details={"file": source, "problems": problems}) from None


def _yaml_problem(source: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"{source}: not valid YAML: {problem}"
    return (
        f"{source}: not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}; check the "
        "indentation (spaces, not tabs) and quote values containing ': ' or '#'"
    )


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return f"a {type(value).__name__}"


# -- where in the file ----------------------------------------------------------------------------------


def _data_path(data: Any, loc: tuple[int | str, ...]) -> list[int | str]:
    """The loc's parts that are real keys or indexes in the data (union tags and the like skipped)."""
    path: list[int | str] = []
    node = data
    for part in loc:
        in_mapping = isinstance(node, dict) and part in node
        if in_mapping or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            path.append(part)
            node = node[part]
    return path


def _value_at(data: Any, path: list[int | str]) -> Any:
    node = data
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part]
        else:
            return None
    return node


def _line(root: yaml.Node | None, path: list[int | str], *, of_key: bool) -> int | None:
    """1-based line of the value at ``path`` (of its key when ``of_key``), or of the deepest part found."""
    node = root
    line = root.start_mark.line + 1 if root is not None else None
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    line = (key_node if last and of_key else value_node).start_mark.line + 1
                    if last and not of_key and isinstance(value_node, yaml.MappingNode | yaml.SequenceNode):
                        line = key_node.start_mark.line + 1  # a block mapping starts below its key
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _dotted(path: list[int | str]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# -- what is wrong --------------------------------------------------------------------------------------


def unknown_key(key: str, choices: list[str]) -> PydanticCustomError:
    """The error a :class:`Section` raises for a key it does not have (worded with the valid ones)."""
    return PydanticCustomError("unknown_key", "unknown key {key}", {"key": key, "choices": choices})


def unknown_choice(key: str, value: Any, choices: list[str], *, what: str) -> PydanticCustomError:
    """The error for a value that must be one of ``choices`` (worded with the closest one)."""
    context = {"key": key, "value": value, "choices": choices, "what": what}
    return PydanticCustomError("unknown_choice", "unknown {what}", context)


def close_matches(word: str, choices: list[str]) -> list[str]:
    return difflib.get_close_matches(word, choices, n=3, cutoff=0.6)


def join_choices(words: list[str]) -> str:
    return ", ".join(words)


def did_you_mean(word: str, choices: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choices, or ``"."`` when none is close."""
    close = close_matches(word, choices)
    if not close:
        return "."
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


_TYPE_WORDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "dict_type": "a mapping (indented key: value lines)",
    "model_type": "a mapping (indented key: value lines)",
    "model_attributes_type": "a mapping (indented key: value lines)",
    "list_type": "a list",
    "tuple_type": "a list",
    "union_tag_not_found": "a mapping with a type",
}

_BOUNDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}


def describe_value(value: Any) -> str:
    """A value as a message shows it: ``'lots'``, ``a mapping``, ``nothing (an empty value)``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (an empty value)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_problem(kind: str, value: Any) -> str | None:
    """'expected a whole number, got 'lots'' for a type error, None for other errors."""
    words = _TYPE_WORDS.get(kind)
    if words is None:
        return None
    text = f"expected {words}, got {describe_value(value)}"
    if kind == "string_type" and isinstance(value, bool | int | float):
        text += ": put the value in quotes (YAML read it as a " + type(value).__name__ + ")"
    return text


def _describe(
    error: Any, data: dict[str, Any], root: yaml.Node | None, explainer: Explainer
) -> dict[str, Any]:
    """One validation error as {key, line, message}, the message saying what to change."""
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    path = _data_path(data, error["loc"])
    if "key" in ctx and (not path or path[-1] != ctx["key"]):
        path.append(ctx["key"])
    elif kind == "missing" and error["loc"]:
        path.append(error["loc"][-1])
    elif kind == "union_tag_invalid" and isinstance(_value_at(data, path), dict):
        path.append("type")
    line = _line(root, path, of_key=kind in explainer.key_kinds)
    at = f" at line {line}" if line is not None else ""
    parent = _dotted(path[:-1])
    key = str(ctx.get("key", path[-1] if path else ""))
    custom = explainer.message(kind, ctx, key, at, parent)
    if custom is not None:
        message = custom
    elif kind == "unknown_key":
        scope = f" in {parent}" if parent else " (top level)"
        choices = ctx["choices"]
        hint = did_you_mean(key, choices)
        message = f"unknown key {key!r}{at}{scope}{hint} Valid keys here: {join_choices(choices)}"
    else:
        where = parent if kind in explainer.parent_kinds else _dotted(path)
        # A top-level problem has no key to name, and "at line 1" would say nothing.
        message = (f"{where}{at}: " if where else "") + _problem(kind, ctx, error, key, explainer)
    return {"key": _dotted(path), "line": line, "message": message}


def _problem(kind: str, ctx: dict[str, Any], error: Any, key: str, explainer: Explainer) -> str:
    """What is wrong with one value and how to fix it (the location is added by the caller)."""
    value = ctx.get("value", error.get("input"))
    custom = explainer.problem(kind, ctx, value, key)
    if custom is not None:
        return custom
    if kind == "missing":
        return f"{key!r} is required; add {key}: <value>"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        return f"unknown type {tag!r}. Choose one of: {ctx.get('expected_tags')}"
    if kind == "unknown_choice":
        hint = did_you_mean(value, ctx["choices"]) if isinstance(value, str) else "."
        choices = join_choices(ctx["choices"])
        return f"unknown {ctx['what']} {describe_value(value)}{hint} Choose one of: {choices}"
    if kind in ("literal_error", "enum"):
        return f"expected one of {ctx.get('expected')}, got {describe_value(value)}"
    if kind in _BOUNDS:
        limit = next((v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le")), "?")
        limit = f"{limit:g}" if isinstance(limit, float) else limit
        return f"must be {_BOUNDS[kind]} {limit}, got {describe_value(value)}"
    return type_problem(kind, value) or str(error.get("msg", kind)).removeprefix("Value error, ")
