"""``beamlink trigger create|list|show|pause|resume|delete``: a run of a flow for each new file."""

from __future__ import annotations

from typing import Annotated

import typer

from beamlink.cli.context import UrlOption, client, parse_input
from beamlink.cli.output import JsonOption, print_json, print_table, when
from beamlink.cli.timer import InputOption, LabelOption, say
from beamlink.protocol.flows import TriggerInfo

__all__ = ["app"]

app = typer.Typer(
    help="Start a run of a flow for each new, complete file under a collection path.", no_args_is_help=True
)


def _where(info: TriggerInfo) -> str:
    below = " and below" if info.recursive else ""
    return f"{info.glob!r} in {info.collection_id}:{info.path}{below}"


def _summary(info: TriggerInfo) -> str:
    return f"trigger {info.name} ({info.id}): {info.status}, watching {_where(info)}"


def _show(info: TriggerInfo, json: bool) -> None:
    if json:
        print_json(info)
    else:
        say(_summary(info))


@app.command("create")
def create(
    flow_id: Annotated[str, typer.Argument(help="The flow to run.")],
    name: Annotated[str, typer.Option("--name", help="What to call the trigger.")],
    collection: Annotated[str, typer.Option("--collection", help="Collection id or name to watch.")],
    path: Annotated[str, typer.Option("--path", help="Directory in the collection.")] = "/",
    glob: Annotated[str, typer.Option("--glob", help="Which file names count, e.g. '*.h5'.")] = "*",
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="Watch subdirectories too.")] = False,
    quiet: Annotated[
        float,
        typer.Option("--quiet", help="A file counts once unchanged this many seconds.", min=0),
    ] = 5.0,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between looks.", min=0.01)] = 2.0,
    input_: InputOption = None,
    label: LabelOption = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Start a run of FLOW_ID for each new file; in --input, "{path}", "{name}", "{collection}" and
    "{collection_id}" are filled in with the file's. Files already there start no run."""
    info = client(url).create_trigger(
        flow_id,
        name,
        collection=collection,
        path=path,
        glob=glob,
        recursive=recursive,
        quiet_seconds=quiet,
        poll_seconds=poll,
        body=parse_input(input_),
        run_label=label,
    )
    if json:
        print_json(info)
        return
    say(f"created {_summary(info)}")
    if info.last_error:
        say(f"  note: {info.last_error}")


@app.command("list")
def list_(
    flow_id: Annotated[str | None, typer.Option("--flow", help="Only triggers of this flow.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="ACTIVE or PAUSED.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Your triggers."""
    rows = client(url).list_triggers(flow_id=flow_id, status=status)
    if json:
        print_json(rows)
        return
    print_table(
        "Triggers",
        [
            ("Trigger ID", lambda t: t.id),
            ("Name", lambda t: t.name),
            ("Watching", _where),
            ("Status", lambda t: t.status),
            ("Runs", lambda t: t.runs_started),
            ("Created", lambda t: when(t.created_at)),
            ("Last error", lambda t: t.last_error),
        ],
        rows,
    )


@app.command("show")
def show(trigger_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """A trigger: what it watches, runs started, last run and last error."""
    info = client(url).get_trigger(trigger_id)
    if json:
        print_json(info)
        return
    say(_summary(info))
    say(f"  flow {info.flow_id}; quiet {info.quiet_seconds:g} s, polled every {info.poll_seconds:g} s")
    say(f"  runs started {info.runs_started}; last run {info.last_run_id or '-'}")
    if info.last_error:
        say(f"  last error: {info.last_error}")


@app.command("pause")
def pause(trigger_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """Stop watching."""
    _show(client(url).pause_trigger(trigger_id), json)


@app.command("resume")
def resume(trigger_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """Watch again (files that arrived while paused start runs)."""
    _show(client(url).resume_trigger(trigger_id), json)


@app.command("delete")
def delete(trigger_id: str, url: UrlOption = None) -> None:
    """Forget a trigger (the runs it started stay)."""
    client(url).delete_trigger(trigger_id)
    say(f"deleted trigger {trigger_id}")
