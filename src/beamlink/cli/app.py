"""``beamlink app list|show|deploy|run|watch``: apps (tools → a generated flow) by name.

Apps are found through the ``beamlink.apps`` entry point group (:mod:`beamlink.apps.registry`), so a
facility's own package adds its apps to this command by being installed.
"""

from __future__ import annotations

import json as jsonlib
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import typer
import yaml
from rich.live import Live
from rich.syntax import Syntax
from rich.table import Table

from beamlink.apps.app import App
from beamlink.apps.registry import app_entries, load_app
from beamlink.apps.tools import Compute, Expression, MapCompute, Publish, Transfer
from beamlink.cli.context import UrlOption, client, parse_input
from beamlink.cli.output import JsonOption, console, print_json, print_table
from beamlink.errors import BeamlinkError, InvalidInput
from beamlink.protocol.flows import RunEvent, RunInfo
from beamlink.sdk import Client
from beamlink.sdk.flows import TERMINAL_RUN_STATUSES

__all__ = ["StepTimes", "app", "follow_app_run", "input_from_options"]

app = typer.Typer(
    help="Apps: tools that make a flow (XPCS and any an installed package adds).", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="The app's name (`beamlink app list`).")]
InputOption = Annotated[
    str | None, typer.Option("--input", help="Input values: a JSON object, or @FILE to read one.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Repeatable KEY=VALUE (VALUE read as JSON when it parses, else as text)."),
]


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _where(tool: Any) -> str:
    if isinstance(tool, Compute):
        return f"{tool.endpoint} endpoint: {tool.function.__module__}.{tool.function.__qualname__}"
    if isinstance(tool, MapCompute):
        return f"{_where(tool.item)}, once per item of {tool.items}"
    if isinstance(tool, Transfer):
        return "transfer"
    if isinstance(tool, Publish):
        return "search ingest"
    if isinstance(tool, Expression):
        return "expression"
    return "state"


def input_from_options(input_text: str | None, settings: list[str] | None) -> dict[str, Any]:
    """The payload from --input and --set (a --set wins)."""
    payload = parse_input(input_text)
    inner = dict(payload["input"]) if isinstance(payload.get("input"), dict) else payload
    for item in settings or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set {item!r}: write KEY=VALUE, e.g. --set measurement=incoming/A001.h5")
        try:
            inner[key] = jsonlib.loads(raw)
        except ValueError:
            inner[key] = raw
    return inner


# -- following a run step by step -------------------------------------------------------------------

# Each look is two requests; on a small host a watcher polling faster slows the run it watches.
_POLL_S = 0.25


@dataclass
class StepTimes:
    """Each state's start and end as the run log tells them, in the app's order."""

    order: list[str]
    started: dict[str, datetime] = field(default_factory=dict)
    ended: dict[str, datetime] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)

    def see(self, event: RunEvent) -> str | None:
        """Record one event; returns the state's name when it just ended. A state inside a Map or
        Parallel branch is named with its branch, ``SearchBlock [SearchBlocks[2]]``: each item is timed on
        its own."""
        if event.state_name is None or event.code.startswith("Flow"):  # FlowFailed names its state too
            return None
        # The engine's branch id ends in '@<attempt>'; the item is what a reader needs.
        branch = event.branch.split("@", 1)[0]
        name = f"{event.state_name} [{branch}]" if branch else event.state_name
        if event.code.endswith("Started"):
            self.started.setdefault(name, event.time)
        elif event.code.endswith(("Completed", "Failed")):
            self.ended[name] = event.time
            if event.code.endswith("Failed"):
                self.failed.add(name)
            return name
        return None

    def seconds(self, name: str) -> float | None:
        if name in self.started and name in self.ended:
            return (self.ended[name] - self.started[name]).total_seconds()
        return None

    def status(self, name: str) -> str:
        if name in self.failed:
            return "failed"
        if name in self.ended:
            return "done"
        return "running" if name in self.started else "waiting"


def _steps_table(info: RunInfo, times: StepTimes, where: dict[str, str]) -> Table:
    table = Table(title=f"{info.flow_title} · {info.status} · {info.display_status}", title_justify="left")
    for header in ("Step", "Where", "Status", "Seconds"):
        table.add_column(header, overflow="fold")
    for name in times.order:
        status = times.status(name)
        took = times.seconds(name)
        if took is None and name in times.started:
            took = (datetime.now(times.started[name].tzinfo) - times.started[name]).total_seconds()
        table.add_row(
            name,
            where.get(name, ""),
            status,
            f"{took:.2f}" if took is not None else "",
            style={"failed": "red", "done": "green", "running": "yellow"}.get(status),
        )
    return table


def follow_app_run(
    c: Client, target: App, run_id: str, *, timeout: float | None = None
) -> tuple[RunInfo, StepTimes]:
    """Follow a run of ``target`` until it ends: a live step table on a terminal, else a line per step."""
    times = StepTimes([t.name for t in target.tools])
    where = {t.name: _where(t) for t in target.tools}
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0

    def poll() -> RunInfo:
        nonlocal seen
        info = c.get_run(run_id)
        for event in c.iter_run_log(run_id, after=seen):
            seen = event.seq
            ended = times.see(event)
            if ended is not None and not console.is_terminal:
                took = times.seconds(ended)
                mark = "✗" if ended in times.failed else "✓"
                _say(
                    f"{mark} {ended:<16} {took:7.2f} s  {where.get(ended, '')}"
                    if took is not None
                    else f"{mark} {ended}"
                )
        return info

    def finished(info: RunInfo) -> bool:
        if info.status in TERMINAL_RUN_STATUSES:
            return True
        if deadline is not None and time.monotonic() > deadline:
            raise InvalidInput(
                f"run {run_id} did not end within {timeout:g} s; follow it with `beamlink run watch {run_id}`"
            )
        return False

    if console.is_terminal:
        info = c.get_run(run_id)
        with Live(_steps_table(info, times, where), console=console, refresh_per_second=8) as live:
            while True:
                info = poll()
                live.update(_steps_table(info, times, where))
                if finished(info):
                    break
                time.sleep(_POLL_S)
    else:
        while True:
            info = poll()
            if finished(info):
                break
            time.sleep(_POLL_S)
    return info, times


_ONE_TASK = re.compile(r"^1 of 1 task\(s\) failed; task [0-9a-f-]+: [A-Z_]+: ")


def describe_failure(info: RunInfo, times: StepTimes | None = None) -> str:
    """Why a run failed, in words: the failing step and its own error message (for one task, without
    the task bookkeeping around it)."""
    cause = _ONE_TASK.sub("", info.cause or "")
    failed = sorted(times.failed) if times is not None else []
    where = f"{', '.join(failed)} failed: " if failed else ""
    return f"{where}{info.error}: {cause}" if info.error else f"{where}{cause}"


# -- commands --------------------------------------------------------------------------------------


@app.command("list")
def list_apps(json: JsonOption = False) -> None:
    """The installed apps."""
    rows: list[dict[str, Any]] = []
    for name, entry in app_entries().items():
        row: dict[str, Any] = {"name": name, "package": entry.package, "target": entry.target}
        try:
            loaded = entry.load()
        except BeamlinkError as exc:  # one broken package must not hide the others
            rows.append({**row, "title": "", "steps": [], "required_input": [], "error": exc.message})
            continue
        rows.append(
            {
                **row,
                "title": loaded.title,
                "steps": [t.name for t in loaded.tools],
                "required_input": list(loaded.required_input()),
                "error": None,
            }
        )
    if json:
        print_json(rows)
        return
    print_table(
        "Apps",
        [
            ("Name", lambda r: r["name"]),
            ("Title", lambda r: r["title"] or f"cannot load: {r['error']}"),
            ("Steps", lambda r: " → ".join(r["steps"])),
            ("Required input", lambda r: ", ".join(r["required_input"])),
            ("Package", lambda r: r["package"]),
        ],
        rows,
    )


@app.command("show")
def show(
    name: NameArg,
    flow: Annotated[bool, typer.Option("--flow", help="Print the generated flow definition too.")] = False,
    output_format: Annotated[str, typer.Option("--format", help="json or yaml, for --flow.")] = "json",
    json: JsonOption = False,
) -> None:
    """An app's steps, the input it needs and its defaults (and, with --flow, its flow definition)."""
    target = load_app(name)
    definition = target.flow_definition()
    if json:
        print_json(
            {
                "name": target.name,
                "title": target.title,
                "description": target.description,
                "required_input": target.required_input(),
                "defaults": target.input_defaults(),
                "input_schema": target.input_schema(),
                "definition": definition,
            }
        )
        return
    _say(f"{target.title}\n{target.description}")
    print_table(
        "Steps",
        [("Step", lambda t: t.name), ("Where", _where), ("Comment", lambda t: t.comment or "")],
        target.tools,
    )
    required = target.required_input()
    print_table(
        "Input",
        [
            ("Key", lambda k: k),
            ("Required", lambda k: "yes" if k in required else ""),
            ("Default", lambda k: jsonlib.dumps(target.input_defaults()[k]) if k not in required else ""),
            ("Help", lambda k: target.input_help.get(k, "")),
        ],
        [*required, *target.input_defaults()],
    )
    if flow:
        text = (
            yaml.safe_dump(definition, sort_keys=False, width=110)
            if output_format == "yaml"
            else jsonlib.dumps(definition, indent=2)
        )
        console.print(Syntax(text, "yaml" if output_format == "yaml" else "json", word_wrap=True))


@app.command("deploy")
def deploy(name: NameArg, url: UrlOption = None, json: JsonOption = False) -> None:
    """Register the app's functions and create or update its flow (only what changed)."""
    target = load_app(name)
    with client(url) as c:
        done = target.deploy(c)
    if json:
        print_json(
            {
                "flow_id": done.flow.id,
                "flow": done.flow_action,
                "function_ids": done.function_ids,
                "registered": done.registered,
            }
        )
        return
    _say(f"flow {done.flow.id} ({done.flow.title}): {done.flow_action}")
    for key, function_id in done.function_ids.items():
        _say(f"  function {key}: {function_id}" + (" (registered now)" if key in done.registered else ""))


@app.command("run")
def run(
    name: NameArg,
    input: InputOption = None,
    set_: SetOption = None,
    label: Annotated[str | None, typer.Option(help="A label for the run.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run until it ends.")] = True,
    timeout: Annotated[float | None, typer.Option(help="Give up following after SECONDS.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Check the input, deploy what changed, start a run and show its steps."""
    from beamlink.cli.app_watch import fill_local_roots

    target = load_app(name)
    payload = input_from_options(input, set_)
    with client(url) as c:
        for line in fill_local_roots(c.home, target, payload):
            if not json:
                _say(f"using {line}")
        started, deployment = target.start(c, payload, label=label)
        if not json:
            _say(f"flow {deployment.flow.id}: {deployment.flow_action}; run {started.run_id} started")
        if not wait:
            if json:
                print_json(started)
            return
        info, times = follow_app_run(c, target, started.run_id, timeout=timeout)
    if json:
        print_json(info)
    else:
        _say(f"run {info.run_id}: {info.status}")
        if info.status != "SUCCEEDED":
            _say(f"  reason: {describe_failure(info, times)}")
        elif target.summarize is not None:
            for key, value in target.summarize(info):
                _say(f"  {key}: {value}")
    if info.status != "SUCCEEDED":
        raise typer.Exit(1)


@app.command("example")
def example(
    name: NameArg,
    location: Annotated[str, typer.Argument(help="COLLECTION:FOLDER to write it to, e.g. local:incoming/")],
) -> None:
    """Write a synthetic input of an app (with a known answer) into a folder of a collection here."""
    from beamlink.cli.app_watch import local_folder
    from beamlink.config import default_home

    target = load_app(name)
    if target.example is None or target.file_input is None:
        raise InvalidInput(f"the {name} app has no example input; `beamlink app show {name}` lists its input")
    collection, prefix, folder = local_folder(default_home(), location)
    folder.mkdir(parents=True, exist_ok=True)
    with console.status(f"writing an example input for {name} ..."):
        written = target.example(folder)
    relative = f"{prefix}{written.relative_to(folder).as_posix()}"
    _say(f"wrote {collection}:{relative} ({written.stat().st_size / 1e6:.1f} MB)")
    _say(f"run it: beamlink app run {name} --set {target.file_input}={relative} --set remote_root=DIR")


@app.command("watch")
def watch(
    name: NameArg,
    location: Annotated[str, typer.Argument(help="COLLECTION:FOLDER to watch, e.g. local:incoming/")],
    input: InputOption = None,
    set_: SetOption = None,
    settle: Annotated[float, typer.Option(help="Seconds a file must stay unchanged before it counts.")] = 1.0,
    existing: Annotated[bool, typer.Option("--existing", help="Also run files already there.")] = False,
    url: UrlOption = None,
) -> None:
    """Start a run for every new complete file in a folder of a collection on this machine (Ctrl-C stops)."""
    from beamlink.cli.app_watch import watch_folder

    target = load_app(name)
    payload = input_from_options(input, set_)
    with client(url) as c:
        watch_folder(c, target, location, payload, settle=settle, existing=existing)
