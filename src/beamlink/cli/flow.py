"""``beamlink flow create|update|validate|list|show|delete|run``: the flow store, from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from beamlink.cli.context import UrlOption, client, parse_input
from beamlink.cli.output import JsonOption, console, print_json, print_table, when
from beamlink.cli.run import watch_run
from beamlink.errors import InvalidInput
from beamlink.flowlang.parse import parse_document
from beamlink.protocol.flows import FlowInfo, FlowValidation

__all__ = ["app"]

app = typer.Typer(
    help="Store, check and start flows (Globus Flows definitions run unchanged).", no_args_is_help=True
)

DefinitionArg = Annotated[Path, typer.Argument(help="The definition: a JSON or YAML file.", exists=False)]
RoleOption = Annotated[
    list[str] | None,
    typer.Option(help="Repeatable: 'user:NAME', 'group:NAME', 'public' or 'all_authenticated_users'."),
]


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _read_document(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.expanduser().read_text()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the {what} {path}: {exc.strerror}", details={"path": str(path)}
        ) from None
    document = parse_document(text)
    if not isinstance(document, dict):
        raise InvalidInput(f"the {what} {path} must hold a JSON/YAML object", details={"path": str(path)})
    return document


def _roles(**lists: list[str] | None) -> dict[str, list[str]]:
    return {name: value for name, value in lists.items() if value is not None}


def _print_problems(report: FlowValidation) -> None:
    print_table(
        "Problems",
        [
            ("Severity", lambda p: p.severity),
            ("Where", lambda p: p.pointer or "/"),
            ("Problem", lambda p: p.message),
            ("Fix", lambda p: p.hint),
        ],
        report.problems,
    )


def _show(info: FlowInfo) -> None:
    _say(f"flow {info.id}: {info.title}")
    if info.subtitle:
        _say(f"  {info.subtitle}")
    states = len(info.definition.get("States", {}))
    _say(f"  owner {info.owner_name}; your role: {info.user_role}; {states} states")
    for field in ("flow_administrators", "flow_starters", "flow_viewers", "run_managers", "run_monitors"):
        values = getattr(info, field)
        if values:
            _say(f"  {field}: {', '.join(values)}")


@app.command("create")
def create(
    definition: DefinitionArg,
    title: Annotated[str, typer.Option("--title", help="A title for the flow.")],
    input_schema: Annotated[
        Path | None, typer.Option(help="JSON Schema file the run input must match.")
    ] = None,
    subtitle: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    keyword: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    administrator: RoleOption = None,
    starter: RoleOption = None,
    viewer: RoleOption = None,
    run_manager: RoleOption = None,
    run_monitor: RoleOption = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Store a flow; prints its id."""
    document = _read_document(definition, "definition")
    schema = _read_document(input_schema, "input schema") if input_schema else None
    with client(url) as c:
        info = c.create_flow(
            title,
            document,
            input_schema=schema,
            subtitle=subtitle,
            description=description,
            keywords=keyword or [],
            **_roles(
                flow_administrators=administrator,
                flow_starters=starter,
                flow_viewers=viewer,
                run_managers=run_manager,
                run_monitors=run_monitor,
            ),
        )
    if json:
        print_json(info)
    else:
        _say(f"created flow {info.id} ({info.title})")


@app.command("update")
def update(
    flow_id: str,
    definition: Annotated[Path | None, typer.Option("--definition", help="A new definition file.")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    input_schema: Annotated[Path | None, typer.Option(help="A new input schema file.")] = None,
    administrator: RoleOption = None,
    starter: RoleOption = None,
    viewer: RoleOption = None,
    run_manager: RoleOption = None,
    run_monitor: RoleOption = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Change a flow; a role option given replaces that role's list."""
    changes: dict[str, Any] = _roles(
        flow_administrators=administrator,
        flow_starters=starter,
        flow_viewers=viewer,
        run_managers=run_manager,
        run_monitors=run_monitor,
    )
    if definition is not None:
        changes["definition"] = _read_document(definition, "definition")
    if input_schema is not None:
        changes["input_schema"] = _read_document(input_schema, "input schema")
    if title is not None:
        changes["title"] = title
    with client(url) as c:
        info = c.update_flow(flow_id, **changes)
    if json:
        print_json(info)
    else:
        _say(f"updated flow {info.id} ({info.title})")


@app.command("validate")
def validate(
    definition: DefinitionArg,
    input_schema: Annotated[Path | None, typer.Option(help="JSON Schema file to check as well.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Check a definition: every problem with its JSON pointer and a hint. Exit 1 when it has errors."""
    document = _read_document(definition, "definition")
    schema = _read_document(input_schema, "input schema") if input_schema else None
    with client(url) as c:
        report = c.validate_flow(document, input_schema=schema)
    if json:
        print_json(report)
    elif report.problems:
        _print_problems(report)
    if not json:
        _say("the definition is valid" if report.valid else "the definition has errors")
    if not report.valid:
        raise typer.Exit(1)


@app.command("list")
def list_flows(
    owned: Annotated[bool, typer.Option("--owned", help="Only flows you own.")] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Flows you can see."""
    with client(url) as c:
        flows = c.list_flows(owned=owned)
    if json:
        print_json(flows)
        return
    print_table(
        "Flows",
        [
            ("Flow ID", lambda f: f.id),
            ("Title", lambda f: f.title),
            ("Owner", lambda f: f.owner_name),
            ("Your role", lambda f: f.user_role),
            ("Updated", lambda f: when(f.updated_at)),
        ],
        flows,
    )


@app.command("show")
def show(flow_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """One flow (with --json, its definition too)."""
    with client(url) as c:
        info = c.get_flow(flow_id)
    if json:
        print_json(info)
    else:
        _show(info)


@app.command("delete")
def delete(flow_id: str, url: UrlOption = None) -> None:
    """Delete a flow (refused while it has active runs)."""
    with client(url) as c:
        c.delete_flow(flow_id)
    _say(f"deleted flow {flow_id}")


@app.command("run")
def run(
    flow_id: str,
    input: Annotated[
        str | None, typer.Option("--input", help="The run input: a JSON object, or @FILE to read one.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="A label for the run (64 characters at most).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    manager: RoleOption = None,
    monitor: RoleOption = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow the run step by step until it ends.")
    ] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Start a run; prints its id (with --watch, follows it and exits 1 unless it SUCCEEDED)."""
    body = parse_input(input)
    with client(url) as c:
        info = c.run_flow(
            flow_id, body, label=label, tags=tag or [], run_managers=manager or [], run_monitors=monitor or []
        )
        if not watch:
            if json:
                print_json(info)
            else:
                _say(f"started run {info.run_id} of {info.flow_title}: {info.status}")
            return
        final = watch_run(c, info.run_id, as_json=json)
    if final.status != "SUCCEEDED":
        raise typer.Exit(1)
