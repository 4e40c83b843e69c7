"""The tools an app is made of: each one becomes a state of the app's generated flow.

A tool names what it needs from the run input and how its state reads the run state:

* a string that starts with ``$.`` is a reference (``"$.Paths.remote_file"``; :func:`Input` writes
  ``$.input.<key>`` for you), an :class:`Expr` a ``.=`` expression, anything else a constant;
* every ``$.input.<key>`` a tool reads is a key the payload must hold, unless a tool or the app gives it
  a default; :meth:`Tool.required_input` and :meth:`Tool.defaults` say which.

:class:`Compute` runs a Python function on an endpoint (its parameters are read from the input by name
unless mapped, its defaults become the input's defaults), :class:`Transfer` moves files between
collections, :class:`MapCompute` runs a Compute tool once per item of a list (a ``Map`` state),
:class:`Publish` writes a search record, :class:`Expression` computes names and paths, and
:class:`State` takes any hand-written state. Gladier's ``GladierBaseTool`` is the model; unlike it a
function receives only its own parameters, not the whole input, and its id lives in the flow itself.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from beamlink.errors import InvalidInput, NotFound
from beamlink.protocol.search import FacetRequest
from beamlink.sdk import Client

__all__ = [
    "Compute",
    "Expr",
    "Expression",
    "Input",
    "MapCompute",
    "Publish",
    "State",
    "Tool",
    "Transfer",
    "function_key",
]

_INPUT_REF = re.compile(r"\$\.input\.([A-Za-z_][A-Za-z0-9_]*)")
_INPUT_NAME = re.compile(r"(?<![\w.'\"])input\.([A-Za-z_][A-Za-z0-9_]*)")
_STATE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def Input(key: str) -> str:  # noqa: N802 - reads like the reference it makes
    """``$.input.<key>``: a reference to one key of the run input."""
    return f"$.input.{key}"


@dataclass(frozen=True)
class Expr:
    """A ``.=`` expression over the run state (``"input.prefix + '/' + Paths.name"``)."""

    text: str


def function_key(function: Callable[..., Any]) -> str:
    """``module:qualname``: how an app names a function in its deployment record and printed flow."""
    return f"{function.__module__}:{function.__qualname__}"


def _parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """A Parameters object: references as ``key.$``, expressions as ``key.=``, nested objects recursed."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Expr):
            out[f"{key}.="] = value.text
        elif isinstance(value, str) and value.startswith("$."):
            out[f"{key}.$"] = value
        elif isinstance(value, Mapping):
            out[key] = _parameters(value)
        elif isinstance(value, list):
            out[key] = [_parameters(v) if isinstance(v, Mapping) else v for v in value]
        else:
            out[key] = value
    return out


def _input_keys(value: Any) -> Iterator[str]:
    """Every input key a parameter value reads, through references and expressions."""
    if isinstance(value, Expr):
        yield from _INPUT_NAME.findall(value.text)
    elif isinstance(value, str):
        match = _INPUT_REF.match(value)
        if match:
            yield match.group(1)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _input_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _input_keys(item)


@dataclass(kw_only=True)
class Tool(ABC):
    """One state of an app's flow. ``name`` is the state's name and ``$.<name>`` its result."""

    name: str
    comment: str | None = None
    wait_time: int | None = None
    catch: list[dict[str, Any]] | None = None
    defaults_: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not _STATE_NAME.match(self.name):
            raise InvalidInput(
                f"tool name {self.name!r} is not a state name: use letters, digits and _ (e.g. 'Correlate')",
                details={"field": "name"},
            )

    @property
    def result(self) -> str:
        return f"$.{self.name}"

    @abstractmethod
    def values(self) -> dict[str, Any]:
        """What the state reads, before it is written as Parameters."""

    @abstractmethod
    def state(self, function_ids: Mapping[str, str]) -> dict[str, Any]:
        """The state without ``Next``/``End`` (the app chains the tools)."""

    def functions(self) -> list[Callable[..., Any]]:
        return []

    def prepare(self, client: Client, payload: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Make what the state needs exist before a run starts (an index to publish to, ...)."""

    def defaults(self) -> dict[str, Any]:
        return dict(self.defaults_)

    def required_input(self) -> list[str]:
        """Input keys this tool reads that it gives no default for, in first-use order."""
        keys = dict.fromkeys(_input_keys(self.values()))
        return [k for k in keys if k not in self.defaults()]

    def _action(self, url: str, parameters: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"Type": "Action", "ActionUrl": url}
        if self.comment:
            state["Comment"] = self.comment
        state["Parameters"] = parameters
        state["ResultPath"] = self.result
        if self.wait_time is not None:
            state["WaitTime"] = self.wait_time
        state["ExceptionOnActionFailure"] = True
        if self.catch:
            state["Catch"] = self.catch
        return state


@dataclass(kw_only=True)
class Compute(Tool):
    """Run ``function`` on the endpoint named by the input key ``<endpoint>_endpoint``.

    Each parameter of the function is read from ``$.input.<parameter>`` unless ``inputs`` maps it to
    another reference, expression or constant; the function's own defaults become the input's
    defaults. The return value (JSON) is at :attr:`output`.
    """

    function: Callable[..., Any]
    endpoint: str = "compute"
    inputs: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        signature = inspect.signature(self.function)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self._params = {n: p for n, p in signature.parameters.items() if p.kind in kinds}
        unknown = sorted(set(self.inputs) - set(self._params))
        if unknown:
            raise InvalidInput(
                f"{self.name}: {function_key(self.function)} has no parameter(s) {unknown}; "
                f"its parameters are {sorted(self._params)}",
                details={"field": "inputs"},
            )

    @property
    def endpoint_key(self) -> str:
        return f"{self.endpoint}_endpoint"

    @property
    def output(self) -> str:
        """Reference to the function's return value."""
        return f"$.{self.name}.details.results[0].output"

    def functions(self) -> list[Callable[..., Any]]:
        return [self.function]

    def kwargs(self) -> dict[str, Any]:
        return {name: self.inputs.get(name, Input(name)) for name in self._params}

    def values(self) -> dict[str, Any]:
        return {"endpoint": Input(self.endpoint_key), "kwargs": self.kwargs()}

    def defaults(self) -> dict[str, Any]:
        own = {
            name: p.default
            for name, p in self._params.items()
            if name not in self.inputs and p.default is not inspect.Parameter.empty
        }
        return {self.endpoint_key: self.endpoint, **own, **self.defaults_}

    def state(self, function_ids: Mapping[str, str]) -> dict[str, Any]:
        key = function_key(self.function)
        body: dict[str, Any] = {
            **_parameters({"endpoint": Input(self.endpoint_key)}),
            "function": function_ids.get(key, f"<{key}>"),
            "kwargs": _parameters(self.kwargs()),
        }
        if self.timeout is not None:
            body["timeout"] = self.timeout
        return self._action("beamlink:compute", body)


@dataclass(kw_only=True)
class MapCompute(Tool):
    """A ``Map`` state that runs the Compute tool ``item`` once per element of the list at ``items``.

    Each iteration's document is ``{<item_key>: the element, "input": $.input, <carry...>}``, so ``item``
    reads the run input and the ``carry`` results (e.g. ``Paths``) as it would at the top level; a ``Pass``
    state then keeps only the function's return value, so ``$.<name>`` is the list of return values in
    the order of ``items``. The item's function is registered with the app's and its id is written into
    the inner state.

    Fan-out over blocks of a scan, say (the HEDM app's peak search); the items run at once up to
    ``max_concurrency`` (0: no limit) on the item's endpoint.
    """

    items: str
    item: Compute
    item_key: str = "item"
    carry: Sequence[str] = ()
    max_concurrency: int = 0

    def values(self) -> dict[str, Any]:
        return {"items": self.items, **self.item.values()}

    def defaults(self) -> dict[str, Any]:
        return {**self.item.defaults(), **self.defaults_}

    def functions(self) -> list[Callable[..., Any]]:
        return self.item.functions()

    def state(self, function_ids: Mapping[str, str]) -> dict[str, Any]:
        keep = f"{self.item.name}Out"
        selector = {
            f"{self.item_key}.$": "$$.Map.Item.Value",
            "input.$": "$.input",
            **{f"{key}.$": f"$.{key}" for key in self.carry},
        }
        state: dict[str, Any] = {"Type": "Map"}
        if self.comment:
            state["Comment"] = self.comment
        state.update(
            {
                "ItemsPath": self.items,
                "ItemSelector": selector,
                "MaxConcurrency": self.max_concurrency,
                "Iterator": {
                    "StartAt": self.item.name,
                    "States": {
                        self.item.name: {**self.item.state(function_ids), "Next": keep},
                        keep: {"Type": "Pass", "InputPath": self.item.output, "ResultPath": "$", "End": True},
                    },
                },
                "ResultPath": self.result,
            }
        )
        if self.catch:
            state["Catch"] = self.catch
        return state


@dataclass(kw_only=True)
class Transfer(Tool):
    """Copy ``source_path`` on ``source`` to ``destination_path`` on ``destination`` (collections)."""

    source: Any
    destination: Any
    source_path: Any
    destination_path: Any
    recursive: bool = False
    sync_level: str | None = None
    label: Any = None

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "source": self.source,
            "destination": self.destination,
            "items": [
                {
                    "source_path": self.source_path,
                    "destination_path": self.destination_path,
                    "recursive": self.recursive,
                }
            ],
        }
        if self.sync_level is not None:
            values["sync_level"] = self.sync_level
        if self.label is not None:
            values["label"] = self.label
        return values

    def state(self, function_ids: Mapping[str, str]) -> dict[str, Any]:
        return self._action("beamlink:transfer", _parameters(self.values()))


@dataclass(kw_only=True)
class Publish(Tool):
    """Write (or replace) the record ``subject`` of ``index`` with ``content``, seen by ``visible_to``.

    Before a run the index is created if it is missing, with ``facets`` (FacetRequest documents: what
    the portal offers to narrow the results, e.g. ``{"field_name": "hit_rate", "type":
    "numeric_histogram", "histogram_range": {"low": 0, "high": 1}}``); an index of yours whose facets
    differ gets these.
    """

    index: Any
    subject: Any
    content: Any
    visible_to: Any = field(default_factory=lambda: Input("visible_to"))
    facets: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        for n, facet in enumerate(self.facets):
            try:
                FacetRequest.model_validate(facet)
            except ValueError as exc:
                raise InvalidInput(
                    f"{self.name}: facets[{n}] is not a facet ({exc}); write e.g. "
                    '{"field_name": "sample", "type": "terms"}',
                    details={"field": f"facets[{n}]"},
                ) from None

    def values(self) -> dict[str, Any]:
        return {
            "search_index": self.index,
            "subject": self.subject,
            "visible_to": self.visible_to,
            "content": self.content,
        }

    def defaults(self) -> dict[str, Any]:
        visible = {"visible_to": ["public"]} if self.visible_to == Input("visible_to") else {}
        return {**visible, **self.defaults_}

    def prepare(self, client: Client, payload: Mapping[str, Any]) -> None:
        match = _INPUT_REF.fullmatch(self.index) if isinstance(self.index, str) else None
        index = payload.get(match.group(1)) if match else self.index
        if not isinstance(index, str):
            return
        wanted = [FacetRequest.model_validate(f) for f in self.facets]
        try:
            info = client.get_index(index)
        except NotFound:
            client.create_index(index, description=f"Records of the {self.name} step", facets=wanted)
            return
        if wanted and info.facets != wanted and info.user_role in ("owner", "admin"):
            client.update_index(index, facets=wanted)

    def state(self, function_ids: Mapping[str, str]) -> dict[str, Any]:
        return self._action("beamlink:search_ingest", _parameters(self.values()))


@dataclass(kw_only=True)
class Expression(Tool):
    """Compute values (names, paths) from the run state into ``$.<name>``: no action, no waiting."""

    parameters: dict[str, Any]

    def values(self) -> dict[str, Any]:
        return self.parameters

    def state(self, function_ids: Mapping[str, str]) -> dict[str, Any]:
        state: dict[str, Any] = {"Type": "ExpressionEval"}
        if self.comment:
            state["Comment"] = self.comment
        state["Parameters"] = _parameters(self.parameters)
        state["ResultPath"] = self.result
        return state


@dataclass(kw_only=True)
class State(Tool):
    """Any state written by hand (its ``Next``/``End`` are set by the app); ``requires`` lists the input
    keys it reads."""

    definition: dict[str, Any]
    requires: list[str] = field(default_factory=list)

    def values(self) -> dict[str, Any]:
        return {key: Input(key) for key in self.requires}

    def state(self, function_ids: Mapping[str, str]) -> dict[str, Any]:
        return {k: v for k, v in self.definition.items() if k not in ("Next", "End")}
