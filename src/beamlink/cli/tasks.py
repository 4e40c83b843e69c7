"""``beamlink task status|result|output|cancel|list``."""

from __future__ import annotations

import json as json_module
from typing import Annotated, Any

import typer

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, err_console, print_json, print_table, when
from beamlink.errors import TaskFailed, TaskPending
from beamlink.protocol.compute import TaskInfo
from beamlink.sdk.compute import decode_result

app = typer.Typer(help="Tasks: runs of functions on endpoints.", no_args_is_help=True)


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _took(info: TaskInfo) -> str:
    if info.completed_at is None:
        return "-"
    return f"{(info.completed_at - info.created_at).total_seconds():.3f} s"


@app.command("status")
def status(task_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """A task's state and its timestamped history."""
    info = client(url).get_task(task_id)
    if json:
        print_json(info)
        return
    _say(f"task {info.id}: {info.state} (attempt {info.attempt}, took {_took(info)})")
    _say(f"  function {info.function_id} on endpoint {info.endpoint_id}")
    for step in info.transitions:
        _say(f"  {step.at.astimezone().isoformat(timespec='milliseconds')}  {step.state}")
    if info.error:
        _say(f"  error: [{info.error.code}] {info.error.message}")


@app.command("result")
def result(
    task_id: str,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the task to finish.")] = 0.0,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Print a task's return value (repr, or JSON with --json); a failed task prints its error."""
    outcome = client(url).get_task_result(task_id, timeout=wait or None)
    try:
        value: Any = decode_result(outcome)
    except TaskPending:
        raise
    except TaskFailed as exc:
        err_console.print(
            f"task {task_id} {outcome.state}: [{exc.code}] ", end="", highlight=False, markup=False
        )
        err_console.print(exc.message, markup=False, highlight=False)
        if exc.remote_traceback:
            err_console.print(exc.remote_traceback, markup=False, highlight=False)
        raise typer.Exit(1) from None
    except Exception as exc:  # the function's own exception, rebuilt here
        err_console.print(
            f"task {task_id} failed: {type(exc).__name__}: {exc}", markup=False, highlight=False
        )
        remote = getattr(exc, "remote_traceback", None)
        if remote:
            err_console.print(remote, markup=False, highlight=False)
        raise typer.Exit(1) from None
    if json:
        try:
            print(json_module.dumps(value, indent=2, default=repr))
        except (TypeError, ValueError):
            print(json_module.dumps(repr(value)))
        return
    print(repr(value))


@app.command("output")
def output(task_id: str, url: UrlOption = None) -> None:
    """What the task printed (stdout, then stderr; bounded by the endpoint's output_limit)."""
    captured = client(url).get_task_output(task_id)
    if captured.stdout:
        print(captured.stdout, end="" if captured.stdout.endswith("\n") else "\n")
    if captured.stderr:
        err_console.print(captured.stderr, markup=False, highlight=False, end="")


@app.command("cancel")
def cancel(task_ids: list[str], url: UrlOption = None) -> None:
    """Cancel tasks: a queued one is removed, a running one is stopped (process and parsl engines)."""
    for info in client(url).cancel_tasks(task_ids):
        note = "" if info.state == "cancelled" else " (cancel sent to the endpoint)"
        _say(f"{info.id}: {info.state}{note}")


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="Only tasks in this state.")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Only tasks of this endpoint id.")] = None,
    group: Annotated[str | None, typer.Option(help="Only tasks of this task group.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Your tasks."""
    tasks = client(url).list_tasks(state=state, endpoint_id=endpoint, task_group_id=group)
    if json:
        print_json(tasks)
        return
    print_table(
        "Tasks",
        [
            ("Task ID", lambda t: t.id),
            ("State", lambda t: t.state),
            ("Function ID", lambda t: t.function_id),
            ("Submitted", lambda t: when(t.created_at)),
            ("Took", _took),
            ("Error", lambda t: t.error.code if t.error else ""),
        ],
        tasks,
    )
