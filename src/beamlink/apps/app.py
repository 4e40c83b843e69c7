"""An app: tools in order → a flow definition; deploy it once, run it with a checked payload.

::

    app = App("xpcs", [paths, transfer_raw, correlate, plot, ...], title="XPCS", description="...")
    print(json.dumps(app.flow_definition(), indent=2))   # readable before anything is deployed
    run = app.run(client, {"measurement": "incoming/A001.h5", "remote_root": "/data/remote"})  # waits

``run`` checks the payload against every tool's required input first (one error naming every missing
key and the tools that need it), registers the functions and (re)deploys the flow only when their
checksums changed (:mod:`beamlink.apps.deployments` remembers what was deployed where), and starts the
run (``run`` also waits for it, showing each step). The input is Gladier's shape, ``{"input": {...}}``;
a bare payload is wrapped for you.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamlink import serialize
from beamlink.apps.deployments import Deployment, DeploymentRecord
from beamlink.apps.tools import Tool, function_key
from beamlink.errors import InvalidInput, NotFound
from beamlink.protocol.flows import FlowInfo, RunEvent, RunInfo
from beamlink.sdk import Client

__all__ = ["App", "MissingInput", "app_keyword", "print_progress"]


class MissingInput(InvalidInput):
    """The payload lacks keys that tools require; ``details.missing`` maps each key to its tools."""


def app_keyword(name: str) -> str:
    """The keyword an app's flow carries, so the app finds its flow again on any machine."""
    return f"beamlink-app:{name}"


def _checksum(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def function_checksum(function: Callable[..., Any]) -> str:
    """sha256 of what would be registered: the pickle and the source (a by-reference pickle alone
    would not change when the code does)."""
    _, serialized, source = serialize.serialize_function(function)
    return hashlib.sha256(f"{serialized}\n{source or ''}".encode()).hexdigest()


def print_progress(event: RunEvent) -> None:
    """One line per state that ended, and the run's end: what ``App.run`` shows by default."""
    if (
        event.code.endswith(("Completed", "Failed"))
        and event.state_name
        and not event.code.startswith("Flow")
    ):
        mark = "x" if event.code.endswith("Failed") else "ok"
        print(f"[{mark}] {event.state_name}", file=sys.stderr, flush=True)
    elif event.code in ("FlowSucceeded", "FlowFailed", "FlowCanceled"):
        print(f"[{event.code}] {event.description}", file=sys.stderr, flush=True)


@dataclass
class App:
    """A named chain of tools. ``file_input`` names the input key a watched file fills (watch mode);
    ``is_complete`` tells whether such a file is whole yet (default: it is); ``example`` writes a
    synthetic input into a folder and returns its path (``beamlink app example``)."""

    name: str
    tools: Sequence[Tool]
    title: str = ""
    description: str = ""
    keywords: Sequence[str] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    input_help: Mapping[str, str] = field(default_factory=dict)
    file_input: str | None = None
    file_patterns: Sequence[str] = ("*",)
    is_complete: Callable[[Path], bool] | None = None
    example: Callable[[Path], Path] | None = None
    summarize: Callable[[RunInfo], list[tuple[str, str]]] | None = None

    def __post_init__(self) -> None:
        if not self.tools:
            raise InvalidInput(f"app {self.name!r} has no tools: give at least one")
        names = [t.name for t in self.tools]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise InvalidInput(
                f"app {self.name!r} has two tools named {clashes}: state names must be unique "
                "(give one of them name=...)",
                details={"field": "tools"},
            )
        self.title = self.title or f"{self.name} app"

    # -- what the app is -------------------------------------------------------------------------

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {function_key(f): f for tool in self.tools for f in tool.functions()}

    def input_defaults(self) -> dict[str, Any]:
        """Every default, tools first, then the app's own (which win)."""
        merged: dict[str, Any] = {}
        for tool in self.tools:
            merged.update(tool.defaults())
        return {**merged, **self.defaults}

    def required_input(self) -> dict[str, list[str]]:
        """Each input key without a default → the tools that read it."""
        defaults = self.input_defaults()
        needed: dict[str, list[str]] = {}
        for tool in self.tools:
            for key in tool.required_input():
                if key not in defaults:
                    needed.setdefault(key, []).append(tool.name)
        return needed

    def input_schema(self) -> dict[str, Any]:
        defaults = self.input_defaults()
        keys = [*self.required_input(), *defaults]
        properties: dict[str, Any] = {}
        for key in keys:
            spec: dict[str, Any] = {}
            if key in self.input_help:
                spec["description"] = self.input_help[key]
            if key in defaults:
                spec["default"] = defaults[key]
            properties[key] = spec
        return {
            "type": "object",
            "required": ["input"],
            "properties": {
                "input": {
                    "type": "object",
                    "required": list(self.required_input()),
                    "properties": properties,
                    "additionalProperties": True,
                }
            },
        }

    def flow_definition(self, function_ids: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The generated flow. Without ``function_ids`` each function shows as ``<module:name>``."""
        ids = function_ids or {}
        states: dict[str, Any] = {}
        for tool, following in zip(self.tools, [*self.tools[1:], None], strict=True):
            state = tool.state(ids)
            if following is None:
                state["End"] = True
            else:
                state["Next"] = following.name
            states[tool.name] = state
        comment = f"Generated by the beamlink app {self.name!r}"
        return {"Comment": comment, "StartAt": self.tools[0].name, "States": states}

    # -- payload ---------------------------------------------------------------------------------

    def prepare_input(self, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """``{"input": {...}}`` with the defaults filled in; :class:`MissingInput` naming every key
        that is still missing, and the tools that need it."""
        raw = dict(payload or {})
        if set(raw) == {"input"} or ("input" in raw and isinstance(raw["input"], Mapping)):
            extra = sorted(set(raw) - {"input"})
            if extra:
                raise InvalidInput(
                    f"the payload has {extra} beside 'input': put every value under 'input' (or give a bare "
                    "object of input values)",
                    details={"field": extra[0]},
                )
            given = dict(raw["input"])
        else:
            given = raw
        merged = {**self.input_defaults(), **given}
        missing = {k: tools for k, tools in self.required_input().items() if merged.get(k) is None}
        if missing:
            lines = "; ".join(
                f"{key} (needed by {', '.join(tools)}"
                + (f": {self.input_help[key]}" if key in self.input_help else "")
                + ")"
                for key, tools in missing.items()
            )
            keys = ", ".join(missing)
            raise MissingInput(
                f"the {self.name} app's input lacks {len(missing)} key(s): {lines}. Give them with "
                f"--set KEY=VALUE or in --input (missing: {keys})",
                details={"missing": missing},
            )
        return {"input": merged}

    # -- deploy and run --------------------------------------------------------------------------

    def deploy(self, client: Client) -> Deployment:
        """Register changed functions and create or update the flow; a no-op when nothing changed."""
        record = DeploymentRecord(client.home)
        known = record.get(client.url, self.name)
        function_ids: dict[str, str] = {}
        registered: list[str] = []
        for key, function in self.functions().items():
            checksum = function_checksum(function)
            previous = known.functions.get(key)
            if previous is not None and previous.checksum == checksum and _exists(client, previous.id):
                function_ids[key] = previous.id
                continue
            function_ids[key] = client.register_function(function)
            registered.append(key)
            known.set_function(key, function_ids[key], checksum)
        definition = self.flow_definition(function_ids)
        schema = self.input_schema()
        flow_checksum = _checksum([definition, schema, self.title, self.description, list(self.keywords)])
        flow = self._find_flow(client, known.flow_id)
        action = "unchanged"
        keywords = [app_keyword(self.name), *self.keywords]
        if flow is None:
            flow = client.create_flow(
                self.title,
                definition,
                input_schema=schema,
                description=self.description or None,
                keywords=keywords,
            )
            action = "created"
        elif known.flow_checksum != flow_checksum or flow.definition != definition:
            flow = client.update_flow(
                flow.id,
                title=self.title,
                definition=definition,
                input_schema=schema,
                description=self.description or None,
                keywords=keywords,
            )
            action = "updated"
        known.flow_id, known.flow_checksum = flow.id, flow_checksum
        record.put(client.url, self.name, known)
        return Deployment(flow=flow, function_ids=function_ids, registered=registered, flow_action=action)

    def _find_flow(self, client: Client, flow_id: str | None) -> FlowInfo | None:
        if flow_id is not None:
            try:
                return client.get_flow(flow_id)
            except NotFound:
                pass
        # The record is gone (a new machine, a wiped home): the flow carries the app's keyword.
        mine = [f for f in client.list_flows(owned=True) if app_keyword(self.name) in f.keywords]
        return max(mine, key=lambda f: f.updated_at) if mine else None

    def start(
        self,
        client: Client,
        payload: Mapping[str, Any] | None,
        *,
        label: str | None = None,
        tags: Sequence[str] = (),
        request_id: str | None = None,
    ) -> tuple[RunInfo, Deployment]:
        """Check the payload, deploy if needed, start the run; returns at once."""
        body = self.prepare_input(payload)
        deployment = self.deploy(client)
        for tool in self.tools:
            tool.prepare(client, body["input"])
        run = client.run_flow(
            deployment.flow.id,
            body,
            label=(label or f"{self.name} run")[:64],
            tags=[self.name, *tags],
            request_id=request_id,
        )
        return run, deployment

    def run(
        self,
        client: Client,
        payload: Mapping[str, Any] | None,
        *,
        label: str | None = None,
        timeout: float | None = None,
        on_event: Callable[[RunEvent], None] | None = print_progress,
    ) -> RunInfo:
        """:meth:`start`, then wait for the run to end; ``on_event`` sees each log entry as it comes
        (default: a line per finished step on standard error; None: quiet). Returns the final run."""
        started, _ = self.start(client, payload, label=label)
        return client.wait_run(started.run_id, timeout=timeout, on_event=on_event, poll=0.25)


def _exists(client: Client, function_id: str) -> bool:
    try:
        client.get_function(function_id)
    except NotFound:
        return False
    return True
