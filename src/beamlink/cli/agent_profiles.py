"""What ``beamlink endpoint`` and ``beamlink collection`` share: profiles, stop, logs, delete, rows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol

import typer

from beamlink.agents.daemon import (
    DETACHED_ENV,
    AgentKind,
    AgentProfile,
    AgentState,
    PidFile,
    configure_logging,
    follow_log,
    list_profiles,
    report_failed,
    run_until_stopped,
    spawn_daemon,
    stop_daemon,
    tail_log,
    validate_name,
)
from beamlink.cli.output import console, print_json, print_table
from beamlink.config import default_home
from beamlink.errors import BeamlinkError, NotFound

__all__ = [
    "delete_profile",
    "existing",
    "is_up",
    "print_logs",
    "profile",
    "say",
    "show_list",
    "start_agent",
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


class _Agent(Protocol):
    async def run(
        self, stop: asyncio.Event, *, pid_file: PidFile | None = None, detached: bool = False
    ) -> None: ...


def start_agent(
    kind: AgentKind,
    name: str,
    *,
    foreground: bool,
    load: Callable[[AgentProfile], Any],
    register: Callable[[AgentProfile, Any], dict[str, Any]],
    make_agent: Callable[[AgentProfile, Any, dict[str, Any]], _Agent],
) -> None:
    """``beamlink <kind> start``: validate the config, register as the owner, then run the agent here
    (``--foreground``) or as a daemon that reports back whether it connected.

    The daemon is this same command run again with DETACHED_ENV set: it reuses the stored identity
    instead of registering twice, and reports a failure to the waiting parent instead of a terminal.
    """
    found = existing(kind, name)
    detached_child = os.environ.get(DETACHED_ENV) == "1"
    try:
        config = load(found)
        if found.state() == AgentState.RUNNING:
            PidFile(found).acquire()  # raises Conflict naming the running pid
        identity = found.read_identity() if detached_child else register(found, config)
        if identity is None:
            raise NotFound(f"{kind} {name!r} has no {kind}.json: start it without --foreground once")
        agent_id = identity[f"{kind}_id"]
        if foreground or detached_child:
            if not detached_child:
                say(f"{kind} {name} ({agent_id}) running in the foreground; Ctrl-C stops it")
            configure_logging(found, foreground=not detached_child)
            pid_file = PidFile(found)
            pid_file.acquire()
            try:
                agent = make_agent(found, config, identity)
                run_until_stopped(lambda stop: agent.run(stop, pid_file=pid_file, detached=detached_child))
            finally:
                pid_file.release()
            return
    except BeamlinkError as exc:
        if detached_child:
            report_failed(found, exc.message)
        raise
    info = spawn_daemon(found, [sys.executable, "-m", "beamlink", kind, "start", name])
    connected = "connected" if info.get("connected") else "not connected yet (it keeps trying)"
    say(f"started {kind} {name}: {agent_id} (pid {info['pid']}, {connected})")
