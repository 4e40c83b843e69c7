"""``beamlink up [-f site.yaml]`` and ``beamlink down [-f site.yaml]``: a whole site on this machine.

``up`` starts the site's service (or reuses one: started by an earlier ``up``, or a service of the same
home, or ``service.url``), writes each agent's profile from the site file, starts the agents through the
same code as ``beamlink endpoint start`` / ``collection start`` (registration, then ``spawn_daemon``),
waits until each is Running and prints a table. In the foreground (the default) Ctrl-C or SIGTERM runs
``down``; ``--detach`` returns at once. Without ``-f`` the built-in demo site is used (``cli/site.py``).

``down`` stops the agents (endpoints, then collections), then the service if ``up`` started it, and
reports each; it is safe to run twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import httpx
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from beamlink.agents.daemon import AgentKind, AgentProfile, AgentState, stop_daemon
from beamlink.cli import collection, endpoint
from beamlink.cli.output import console, print_table
from beamlink.cli.site import LoadedSite, ServiceRecord, SiteState, demo_site, load_site
from beamlink.errors import BeamlinkError, ConfigError, ServiceUnreachable, StartupError
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess, running_service, stop_service

__all__ = ["down", "keep_up", "site_home", "start_site", "stop_site", "up"]

SiteOption = Annotated[
    Path | None,
    typer.Option("-f", "--file", help="Site file (YAML) [default: the built-in demo site]."),
]
HomeOption = Annotated[Path | None, typer.Option("--home", help="Override the site's home (service.home).")]


@dataclass
class _Row:
    name: str
    kind: str
    status: str
    id: str | None


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _load(file: Path | None, home: Path | None) -> LoadedSite:
    return load_site(file, home=home) if file is not None else demo_site(home)


@contextlib.contextmanager
def site_home(home: Path) -> Iterator[None]:
    """Point BEAMLINK_HOME at the site home: the start commands, the SDK and every child read it there."""
    old = os.environ.get("BEAMLINK_HOME")
    os.environ["BEAMLINK_HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("BEAMLINK_HOME", None)
        else:
            os.environ["BEAMLINK_HOME"] = old


# -- the service ----------------------------------------------------------------------------------------


def _is_beamlink(url: str) -> bool:
    try:
        body = httpx.get(f"{url}/health", timeout=1.0).json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(body, dict) and body.get("status") == "ok" and "version" in body


def _listening(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        with socket.create_connection((target, port), timeout=1.0):
            return True
    except OSError:
        return False


def _ours(url: str, home: Path) -> bool:
    """Whether the service at ``url`` accepts the site home's credentials (a service of this home)."""
    try:
        with Client(url, home=home) as client:
            client.whoami()
    except BeamlinkError:
        return False
    return True


def _service(loaded: LoadedSite, port: int | None, state: SiteState | None) -> tuple[ServiceRecord, str]:
    """The service to use, started if needed, and what happened (for the table)."""
    config = loaded.site.service
    if config.url is not None:
        if port is not None:
            raise ConfigError(f"--port cannot be used: {loaded.source} uses the running service {config.url}")
        if not _is_beamlink(config.url):
            raise ServiceUnreachable(
                f"no beamlink service answers at {config.url} (service.url in {loaded.source}): start it, "
                "or remove service.url to let `beamlink up` start one"
            )
        if not _ours(config.url, loaded.home):
            raise StartupError(
                f"the service at {config.url} does not accept the credentials in {loaded.home}: log in first "
                f"with `BEAMLINK_HOME={loaded.home} beamlink login --url {config.url}`"
            )
        return ServiceRecord(url=config.url, started=False), "in use (service.url)"
    previous = state.service if state is not None else None
    if (
        previous is not None
        and previous.started
        and previous.pid is not None
        and previous.started_at is not None
        and running_service(previous.pid, previous.started_at) is not None
        and _is_beamlink(previous.url)
    ):
        return previous, "already running"
    port = port or config.port
    url = f"http://{config.host}:{port}"
    if _listening(config.host, port):
        beamlink = _is_beamlink(url)
        if beamlink and _ours(url, loaded.home):
            return ServiceRecord(url=url, started=False), "already running (not started by up)"
        what = "a beamlink service of another home" if beamlink else "another program"
        raise StartupError(
            f"port {port} on {config.host} is already in use by {what}: stop it, or choose another port "
            "with --port or service.port in the site file"
            + (f" (or use that service with service.url: {url})" if beamlink else ""),
            details={"host": config.host, "port": port},
        )
    process = ServiceProcess(loaded.home, port=port, host=config.host, database_url=config.database_url)
    with console.status(f"starting the service at {url} (home {loaded.home}) ..."):
        process.start(timeout=60)
    started_at = process.started_at()
    pid = process.detach()
    return ServiceRecord(url=url, started=True, pid=pid, started_at=started_at), "started"


# -- the agents -----------------------------------------------------------------------------------------


def _agents(loaded: LoadedSite) -> list[tuple[AgentKind, str]]:
    kinds: list[tuple[AgentKind, str]] = [("collection", n) for n in loaded.site.collections]
    return kinds + [("endpoint", n) for n in loaded.site.endpoints]


def _write_profile(loaded: LoadedSite, kind: AgentKind, name: str) -> AgentProfile:
    """The profile `beamlink <kind> configure` would make, with the config written from the site."""
    found = AgentProfile(kind, name, loaded.home)
    if kind == "collection":
        loaded.collection_root(name).mkdir(parents=True, exist_ok=True)
        text = loaded.collection_config_text(name)
    else:
        text = loaded.endpoint_config_text(name)
    running = found.exists() and found.state() == AgentState.RUNNING
    current = found.config_path.read_text(encoding="utf-8") if found.config_path.is_file() else None
    if current == text:
        return found
    if running:
        _say(f"{kind} {name}: the site changed its config; `beamlink down` then `beamlink up` applies it")
        return found
    found.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    found.config_path.write_text(text, encoding="utf-8")
    return found


_STARTERS: dict[AgentKind, Callable[..., None]] = {"endpoint": endpoint.start, "collection": collection.start}


def _start(found: AgentProfile, url: str) -> _Row:
    if found.state() == AgentState.RUNNING:
        _say(f"{found.label} already running (pid {found.pid()})")
        return _row(found)
    try:
        _STARTERS[found.kind](found.name, foreground=False, url=url)
    except BeamlinkError as exc:
        _say(f"{found.label} failed to start: {exc.message}")
        return _Row(found.name, found.kind, "Failed", None)
    return _row(found)


def _row(found: AgentProfile) -> _Row:
    identity = found.read_identity() or {}
    return _Row(found.name, found.kind, str(found.state()), identity.get(f"{found.kind}_id"))


def _start_all(loaded: LoadedSite, url: str) -> list[_Row]:
    profiles = [_write_profile(loaded, kind, name) for kind, name in _agents(loaded)]
    if not profiles:
        return []
    # In parallel: each start spends most of its time waiting for its daemon (Parsl's above all).
    with (
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
        ThreadPoolExecutor(max_workers=len(profiles)) as pool,
    ):
        tasks = {p.label: progress.add_task(f"starting {p.label}", total=1) for p in profiles}

        def start(found: AgentProfile) -> _Row:
            row = _start(found, url)
            progress.update(tasks[found.label], completed=1, description=f"{found.label}: {row.status}")
            return row

        return list(pool.map(start, profiles))


def _table(rows: list[_Row]) -> None:
    print_table(
        "Site",
        [
            ("Name", lambda r: r.name),
            ("Kind", lambda r: r.kind),
            ("Status", lambda r: r.status),
            ("ID", lambda r: r.id),
        ],
        rows,
    )


# -- up -------------------------------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def keep_up(loaded: LoadedSite) -> None:
    """Stay in the foreground until Ctrl-C or SIGTERM, saying when an agent stops on its own."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    _say("the site is up; Ctrl-C stops it (`beamlink up --detach` returns instead)")
    profiles = [AgentProfile(kind, name, loaded.home) for kind, name in _agents(loaded)]
    reported: set[str] = set()
    while True:
        time.sleep(1.0)
        for found in profiles:
            state = found.state()
            if state != AgentState.RUNNING and found.label not in reported:
                reported.add(found.label)
                _say(f"{found.label} is {state}: see `beamlink {found.kind} logs {found.name}`")


def start_site(loaded: LoadedSite, port: int | None, *, stop_on_failure: bool) -> ServiceRecord:
    """Start (or reuse) the site's service and agents, print the table; StartupError if an agent fails.

    Call it inside :func:`site_home`. ``stop_on_failure`` stops the whole site when an agent fails."""
    loaded.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = SiteState.read(loaded.home)
    if state is not None and state.source != loaded.source:
        raise ConfigError(
            f"the home {loaded.home} is in use by the site {state.source}: give this site a home of its own "
            f"(service.home or --home), or stop that one first with `beamlink down`",
            details={"home": str(loaded.home), "site": state.source},
        )
    service, how = _service(loaded, port, state)
    # Recorded before any agent starts, so `down` can stop a site that failed half way.
    SiteState(
        source=loaded.source,
        service=service,
        collections=sorted({*loaded.site.collections, *(state.collections if state else [])}),
        endpoints=sorted({*loaded.site.endpoints, *(state.endpoints if state else [])}),
    ).write(loaded.home)
    _say(f"service at {service.url}: {how}")
    rows = _start_all(loaded, service.url)
    service_row = _Row("service", "service", "Running", service.url)
    _table([service_row, *rows])
    failed = [r for r in rows if r.status != str(AgentState.RUNNING)]
    if failed:
        names = ", ".join(f"{r.kind} {r.name}" for r in failed)
        if stop_on_failure:
            stop_site(loaded)
        raise StartupError(
            f"not every agent is running ({names}); see `beamlink <kind> logs NAME` in "
            f"BEAMLINK_HOME={loaded.home}"
            + ("" if stop_on_failure else ", and `beamlink down` stops the rest")
        )
    _say(f"use it: export BEAMLINK_HOME={loaded.home} BEAMLINK_URL={service.url}")
    return service


def up(
    file: SiteOption = None,
    home: HomeOption = None,
    port: Annotated[int | None, typer.Option("--port", help="Override service.port.")] = None,
    detach: Annotated[
        bool,
        typer.Option("-d", "--detach", help="Return once the site is up (stop it with `beamlink down`)."),
    ] = False,
) -> None:
    """Start a site: the service and the site's collections and endpoints; Ctrl-C stops them."""
    loaded = _load(file, home)
    _say(f"site: {loaded.source} (home {loaded.home})")
    watching = False
    try:
        with site_home(loaded.home):
            start_site(loaded, port, stop_on_failure=not detach)
            if detach:
                return
            watching = True
            keep_up(loaded)
    except KeyboardInterrupt:
        _say("stopping the site ...")
        with site_home(loaded.home):
            stop_site(loaded)
        if not watching:  # interrupted while starting: not a clean run
            raise typer.Exit(130) from None


# -- down -----------------------------------------------------------------------------------------------


def _stop_agent(found: AgentProfile) -> str:
    if not found.exists():
        return f"{found.label}: not configured"
    if found.state() not in (AgentState.RUNNING, AgentState.DISCONNECTED):
        return f"{found.label}: not running"
    try:
        pid = stop_daemon(found)
    except BeamlinkError as exc:
        return f"{found.label}: {exc.message}"
    return (
        f"stopped {found.label} (pid {pid})"
        if pid
        else f"{found.label}: not running (stale pid file removed)"
    )


def stop_site(loaded: LoadedSite) -> None:
    state = SiteState.read(loaded.home)
    if state is not None and state.source != loaded.source:
        # Another site's record: stop only the agents this site names, and leave that site's service.
        _say(f"the home {loaded.home} was brought up by the site {state.source}; its service is left alone")
        state = None
    endpoints = sorted({*loaded.site.endpoints, *(state.endpoints if state else [])})
    collections = sorted({*loaded.site.collections, *(state.collections if state else [])})
    # Endpoints first: a running flow step hands its task back while the collections still serve data.
    order: list[tuple[AgentKind, list[str]]] = [("endpoint", endpoints), ("collection", collections)]
    for kind, names in order:
        profiles = [AgentProfile(kind, name, loaded.home) for name in names]
        with ThreadPoolExecutor(max_workers=max(1, len(profiles))) as pool:
            for line in pool.map(_stop_agent, profiles):
                _say(line)
    service = state.service if state is not None else None
    if service is None:
        _say("service: none recorded by `beamlink up` (nothing to stop)")
    elif not service.started:
        _say(f"service at {service.url}: left running (not started by `beamlink up`)")
    elif service.pid is not None and service.started_at is not None:
        if stop_service(service.pid, service.started_at):
            _say(f"stopped the service at {service.url} (pid {service.pid})")
        else:
            _say(f"service at {service.url}: not running")
    if state is not None:
        SiteState.remove(loaded.home)


def down(file: SiteOption = None, home: HomeOption = None) -> None:
    """Stop a site's agents, then its service if `beamlink up` started it."""
    loaded = _load(file, home)
    _say(f"site: {loaded.source} (home {loaded.home})")
    with site_home(loaded.home):
        stop_site(loaded)
