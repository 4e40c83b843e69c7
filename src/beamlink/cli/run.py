"""``beamlink run status|log|watch|cancel|resume|release|list``: follow and manage flow runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, print_json, print_table, when
from beamlink.protocol.flows import RunEvent, RunInfo
from beamlink.sdk import Client
from beamlink.sdk.flows import TERMINAL_RUN_STATUSES

__all__ = ["app", "watch_run"]

app = typer.Typer(help="Follow and manage flow runs.", no_args_is_help=True)


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _describe(info: RunInfo) -> str:
    text = (
        f"run {info.run_id} of {info.flow_title}: {info.status} — {info.display_status} ({info.steps} steps)"
    )
    if info.error:
        text += f"\n  {info.error}: {info.cause}"
    return text


def _event_line(event: RunEvent) -> str:
    where = f" {event.state_name}" if event.state_name else ""
    return f"{event.time.astimezone().strftime('%H:%M:%S.%f')[:-3]} {event.code}{where}: {event.description}"


def _live_table(info: RunInfo, events: list[RunEvent]) -> Table:
    table = Table(title=f"{info.flow_title} · {info.status} · {info.display_status}", title_justify="left")
    for header in ("Time", "Event", "State", "Description"):
        table.add_column(header, overflow="fold")
    for event in events[-30:]:
        table.add_row(
            event.time.astimezone().strftime("%H:%M:%S.%f")[:-3],
            event.code,
            event.state_name or "",
            event.description,
            style="red" if "Fail" in event.code else "green" if "Succeeded" in event.code else None,
        )
    return table


def watch_run(c: Client, run_id: str, *, as_json: bool = False, timeout: float | None = None) -> RunInfo:
    """Follow a run until it ends: a live table on a terminal, one line per event otherwise."""
    events: list[RunEvent] = []
    if as_json or not console.is_terminal:

        def line(event: RunEvent) -> None:
            if as_json:
                print_json(event)
            else:
                _say(_event_line(event))

        final = c.wait_run(run_id, timeout=timeout, on_event=line)
    else:
        with Live(_live_table(c.get_run(run_id), events), console=console, refresh_per_second=8) as live:
            while True:
                info = c.get_run(run_id)
                events.extend(c.iter_run_log(run_id, after=events[-1].seq if events else 0))
                live.update(_live_table(info, events))
                if info.status in TERMINAL_RUN_STATUSES:
                    break
                time.sleep(0.2)
        final = info
    if as_json:
        print_json(final)
    else:
        _say(_describe(final))
    return final


def _act(url: str | None, as_json: bool, call: Callable[[Client], RunInfo]) -> None:
    with client(url) as c:
        info = call(c)
    if as_json:
        print_json(info)
    else:
        _say(_describe(info))


@app.command("status")
def status(run_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """A run's status, current states and error."""
    _act(url, json, lambda c: c.get_run(run_id))


@app.command("log")
def log(run_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """Every event of a run (secrets hidden)."""
    with client(url) as c:
        events = list(c.iter_run_log(run_id))
    if json:
        print_json(events)
        return
    print_table(
        "Events",
        [
            ("#", lambda e: e.seq),
            ("Time", lambda e: e.time.astimezone().strftime("%H:%M:%S.%f")[:-3]),
            ("Event", lambda e: e.code),
            ("State", lambda e: e.state_name),
            ("Description", lambda e: e.description),
        ],
        events,
    )


@app.command("watch")
def watch(run_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """Follow a run step by step until it ends; exit 1 unless it SUCCEEDED."""
    with client(url) as c:
        final = watch_run(c, run_id, as_json=json)
    if final.status != "SUCCEEDED":
        raise typer.Exit(1)


@app.command("cancel")
def cancel(run_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """Cancel a run: its in-flight compute tasks and transfers are canceled too."""
    _act(url, json, lambda c: c.cancel_run(run_id))


@app.command("resume")
def resume(run_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """Resume an INACTIVE run."""
    _act(url, json, lambda c: c.resume_run(run_id))


@app.command("release")
def release(run_id: str, url: UrlOption = None) -> None:
    """Forget a finished run and its log."""
    with client(url) as c:
        c.release_run(run_id)
    _say(f"released run {run_id}")


@app.command("list")
def list_runs(
    status: Annotated[
        str | None, typer.Option("--status", help="ACTIVE, INACTIVE, SUCCEEDED, FAILED, ENDED (commas).")
    ] = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Only runs of this flow id.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Runs you can see."""
    with client(url) as c:
        runs = c.list_runs(status=status, flow_id=flow)
    if json:
        print_json(runs)
        return
    print_table(
        "Runs",
        [
            ("Run ID", lambda r: r.run_id),
            ("Flow", lambda r: r.flow_title),
            ("Label", lambda r: r.label),
            ("Status", lambda r: r.status),
            ("Now", lambda r: r.display_status),
            ("Started", lambda r: when(r.start_time)),
        ],
        runs,
    )
