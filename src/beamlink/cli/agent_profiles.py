"""What ``beamlink endpoint`` and ``beamlink collection`` share: profiles, stop, logs, delete, rows."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import typer

from beamlink.agents.daemon import (
    AgentKind,
    AgentProfile,
    AgentState,
    follow_log,
    list_profiles,
    stop_daemon,
    tail_log,
    validate_name,
)
from beamlink.cli.output import console, print_json, print_table
from beamlink.config import default_home
from beamlink.errors import NotFound

__all__ = [
    "delete_profile",
    "existing",
    "is_up",
    "print_logs",
    "profile",
    "say",
    "show_list",
    "stop_profile",
]


def say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def profile(kind: AgentKind, name: str) -> AgentProfile:
    return AgentProfile(kind, validate_name(name), default_home())


def existing(kind: AgentKind, name: str) -> AgentProfile:
    found = profile(kind, name)
    found.state()  # NotFound, naming `beamlink <kind> configure NAME`, when it does not exist
    return found


def stop_profile(kind: AgentKind, name: str) -> None:
    pid = stop_daemon(existing(kind, name))
    if pid:
        say(f"stopped {kind} {name} (pid {pid})")
    else:
        say(f"{kind} {name} was not running; removed its stale pid file")


def is_up(found: AgentProfile) -> bool:
    return found.state() in (AgentState.RUNNING, AgentState.DISCONNECTED)


def delete_profile(
    kind: AgentKind, name: str, *, force: bool, yes: bool, unregister: Callable[[dict[str, Any]], None]
) -> None:
    """Stop (with ``force``), confirm, unregister at the service, and remove the local profile."""
    found = existing(kind, name)
    if is_up(found) and force:
        stop_daemon(found)
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete {kind} {name} at the service and here?", abort=True)
    identity = found.read_identity()
    if identity is not None:
        with contextlib.suppress(NotFound):  # already gone at the service
            unregister(identity)
    found.delete()
    say(f"deleted {kind} {name}")


def print_logs(kind: AgentKind, name: str, lines: int, follow: bool) -> None:
    found = existing(kind, name)
    for line in tail_log(found, lines):
        print(line)
    if follow:
        try:
            for line in follow_log(found):
                print(line, flush=True)
        except KeyboardInterrupt:
            pass


def show_list(
    kind: AgentKind,
    row: Callable[[AgentProfile], dict[str, Any]],
    columns: list[tuple[str, Callable[[dict[str, Any]], Any]]],
    *,
    json: bool,
) -> None:
    rows = [row(p) for p in list_profiles(default_home(), kind)]
    if json:
        print_json(rows)
        return
    print_table(f"{kind.capitalize()}s", columns, rows)
