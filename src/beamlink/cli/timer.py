"""``beamlink timer create|list|show|pause|resume|delete``: runs of a flow on a schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from beamlink.cli.context import UrlOption, client, parse_input
from beamlink.cli.output import JsonOption, console, print_json, print_table, when
from beamlink.errors import InvalidInput
from beamlink.protocol.flows import TimerInfo, TimerSchedule

__all__ = ["InputOption", "LabelOption", "app", "parse_input", "parse_time", "say"]

app = typer.Typer(
    help="Start runs of a flow once, every N seconds, or on a cron schedule.", no_args_is_help=True
)

InputOption = Annotated[
    str | None,
    typer.Option("--input", help="The run input: a JSON object, or @FILE to read one from a file."),
]
LabelOption = Annotated[str | None, typer.Option("--label", help="Label of each run started.")]
_TimeOption = Annotated[
    str | None, typer.Option(help="ISO time, e.g. 2030-01-01T12:00 (local unless it has a zone).")
]


def say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def parse_time(text: str | None, *, option: str) -> datetime | None:
    """An ISO time; one without a zone is local time, as a person at the keyboard means it."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{option}: {text!r} is not an ISO time: write e.g. 2030-01-01T12:00 or 2030-01-01T12:00:00Z",
            details={"field": option},
        ) from None
    return value if value.tzinfo is not None else value.astimezone()


def _schedule(
    once: bool, at: str | None, every: float | None, cron: str | None, start: str | None, end: str | None
) -> TimerSchedule:
    chosen = [
        name for name, given in (("--once", once), ("--every", every is not None), ("--cron", cron)) if given
    ]
    if len(chosen) != 1:
        raise InvalidInput(
            "give exactly one of --once [--at TIME], --every SECONDS or --cron 'EXPR' "
            f"(got {', '.join(chosen) or 'none'}); e.g. --every 600 or --cron '*/5 * * * *'",
            details={"field": "schedule"},
        )
    if at is not None and not once:
        raise InvalidInput("--at goes with --once: --once --at 2030-01-01T12:00", details={"field": "at"})
    kind = "once" if once else "interval" if every is not None else "cron"
    return TimerSchedule(
        type=kind,
        at=parse_time(at, option="--at"),
        every_seconds=every,
        cron=cron,
        start=parse_time(start, option="--start"),
        end=parse_time(end, option="--end"),
    )


def describe(schedule: TimerSchedule) -> str:
    if schedule.type == "once":
        text = f"once at {when(schedule.at)}"
    elif schedule.type == "interval":
        text = f"every {schedule.every_seconds:g} s"
    else:
        text = f"cron '{schedule.cron}' (UTC)"
    if schedule.end is not None:
        text += f" until {when(schedule.end)}"
    return text


def _summary(info: TimerInfo) -> str:
    upcoming = when(info.next_run_at)
    return f"timer {info.name} ({info.id}): {info.status}, {describe(info.schedule)}; next run {upcoming}"


@app.command("create")
def create(
    flow_id: Annotated[str, typer.Argument(help="The flow to run.")],
    name: Annotated[str, typer.Option("--name", help="What to call the timer.")],
    once: Annotated[bool, typer.Option("--once", help="Run once (at --at, default now).")] = False,
    at: _TimeOption = None,
    every: Annotated[float | None, typer.Option("--every", help="Run every SECONDS.", min=1)] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Run on a cron schedule (UTC), e.g. '*/5 * * * *'.")
    ] = None,
    start: _TimeOption = None,
    end: _TimeOption = None,
    input_: InputOption = None,
    label: LabelOption = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Start runs of FLOW_ID: --once [--at TIME], --every SECONDS or --cron 'EXPR' (with --start/--end)."""
    schedule = _schedule(once, at, every, cron, start, end)
    info = client(url).create_timer(
        flow_id, name, schedule=schedule, body=parse_input(input_), run_label=label
    )
    if json:
        print_json(info)
        return
    say(f"created {_summary(info)}")


@app.command("list")
def list_(
    flow_id: Annotated[str | None, typer.Option("--flow", help="Only timers of this flow.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="ACTIVE, PAUSED or ENDED.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Your timers."""
    rows = client(url).list_timers(flow_id=flow_id, status=status)
    if json:
        print_json(rows)
        return
    print_table(
        "Timers",
        [
            ("Timer ID", lambda t: t.id),
            ("Name", lambda t: t.name),
            ("Schedule", lambda t: describe(t.schedule)),
            ("Status", lambda t: t.status),
            ("Next run", lambda t: when(t.next_run_at)),
            ("Runs", lambda t: t.runs_started),
            ("Skipped", lambda t: t.ticks_skipped),
            ("Last error", lambda t: t.last_error),
        ],
        rows,
    )


@app.command("show")
def show(timer_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """A timer: schedule, next run, counts, last run and last error."""
    info = client(url).get_timer(timer_id)
    if json:
        print_json(info)
        return
    say(_summary(info))
    say(f"  flow {info.flow_id}; runs started {info.runs_started}, ticks skipped {info.ticks_skipped}")
    say(f"  last run {info.last_run_id or '-'} at {when(info.last_run_at)}")
    if info.last_error:
        say(f"  last error: {info.last_error}")


@app.command("pause")
def pause(timer_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """Start no runs until resumed."""
    info = client(url).pause_timer(timer_id)
    if json:
        print_json(info)
    else:
        say(_summary(info))


@app.command("resume")
def resume(timer_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """Start runs again from the next scheduled time."""
    info = client(url).resume_timer(timer_id)
    if json:
        print_json(info)
    else:
        say(_summary(info))


@app.command("delete")
def delete(timer_id: str, url: UrlOption = None) -> None:
    """Forget a timer (the runs it started stay)."""
    client(url).delete_timer(timer_id)
    say(f"deleted timer {timer_id}")
