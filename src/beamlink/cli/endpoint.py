"""``beamlink endpoint configure|start|stop|restart|status|list|delete|logs [NAME]``."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Annotated, Any

import typer

from beamlink import serialize
from beamlink.agents.daemon import (
    AgentProfile,
)
from beamlink.cli.agent_profiles import (
    delete_profile,
    existing,
    is_up,
    print_logs,
    say,
    show_list,
    start_agent,
    stop_profile,
)
from beamlink.cli.agent_profiles import profile as profile_for
from beamlink.cli.context import UrlOption
from beamlink.cli.output import JsonOption, print_json, when
from beamlink.errors import AlreadyExists, BeamlinkError
from beamlink.protocol.compute import EndpointInfo, EndpointRegister
from beamlink.sdk import Client

if TYPE_CHECKING:
    from beamlink.agents.endpoint.config import EndpointConfig

app = typer.Typer(help="Compute endpoints: agents that run your functions.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Endpoint name (a profile in $BEAMLINK_HOME/endpoints/).")]
ENGINES = ("thread", "process", "parsl")


def _profile(name: str) -> AgentProfile:
    return profile_for("endpoint", name)


def _existing(name: str) -> AgentProfile:
    return existing("endpoint", name)


_say = say


@app.command("configure")
def configure(
    name: NameArg = "default",
    engine: Annotated[str, typer.Option(help="thread, process or parsl.")] = "thread",
) -> None:
    """Create an endpoint profile with a commented config.yaml to edit."""
    if engine not in ENGINES:
        raise typer.BadParameter(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    from beamlink.agents.endpoint.config import default_config_text

    profile = _profile(name)
    if profile.config_path.exists():
        raise AlreadyExists(
            f"endpoint {name!r} is already configured: edit {profile.config_path}, or delete it first "
            f"with `beamlink endpoint delete {name}`",
            details={"path": str(profile.config_path)},
        )
    profile.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    profile.config_path.write_text(default_config_text(engine), encoding="utf-8")
    _say(f"configured endpoint {name} ({engine} engine)")
    _say(f"  config: {profile.config_path}")
    _say(f"  start it with: beamlink endpoint start {name}")


def _register(profile: AgentProfile, config: EndpointConfig, url: str | None) -> dict[str, Any]:
    """Register with the service as the logged-in user (the owner); store the id and fresh secret."""
    identity = profile.read_identity() or {}
    client = Client(url or identity.get("service_url"))
    body = EndpointRegister(
        name=profile.name,
        description=config.description or config.display_name,
        host=socket.gethostname(),
        engine=config.engine.type,
        environment=serialize.environment(),
        allowed_functions=config.allowed_functions,
        config=config.model_dump(mode="json"),
    )
    try:
        registered = client.register_endpoint(body, endpoint_id=identity.get("endpoint_id"))
    finally:
        client.close()
    identity = {
        "endpoint_id": registered.id,
        "service_url": client.url,
        "agent_secret": registered.agent_secret,
    }
    profile.write_identity(identity)
    return identity


@app.command("start")
def start(
    name: NameArg = "default",
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run in this terminal (Ctrl-C stops).")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Register the endpoint (as its owner) and run it as a daemon; prints its id."""
    from beamlink.agents.endpoint.config import load_config

    def make_agent(profile: AgentProfile, config: EndpointConfig, identity: dict[str, Any]) -> Any:
        # Imported here: the agent pulls in the engines (and Parsl), which other commands do not need.
        from beamlink.agents.endpoint.agent import EndpointAgent

        return EndpointAgent(profile, config, identity)

    start_agent(
        "endpoint",
        name,
        foreground=foreground,
        load=lambda profile: load_config(profile.config_path),
        register=lambda profile, config: _register(profile, config, url),
        make_agent=make_agent,
    )


@app.command("stop")
def stop(name: NameArg = "default") -> None:
    """Stop the endpoint and every worker it started."""
    stop_profile("endpoint", name)


@app.command("restart")
def restart(name: NameArg = "default", url: UrlOption = None) -> None:
    """Stop the endpoint if it runs, then start it."""
    if is_up(_existing(name)):
        stop(name)
    start(name, foreground=False, url=url)


def _service_view(profile: AgentProfile) -> EndpointInfo | None:
    identity = profile.read_identity()
    if identity is None:
        return None
    try:
        with Client(identity.get("service_url")) as client:
            return client.get_endpoint(str(identity["endpoint_id"]))
    except BeamlinkError:
        return None


def _row(profile: AgentProfile) -> dict[str, Any]:
    identity = profile.read_identity() or {}
    info = _service_view(profile)
    return {
        "name": profile.name,
        "status": str(profile.state()),
        "endpoint_id": identity.get("endpoint_id"),
        "service_status": info.status if info else "unknown",
        "last_heartbeat": info.last_heartbeat if info else None,
        "engine": info.engine if info else None,
        "pid": profile.pid(),
        "config": str(profile.config_path),
    }


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """Every endpoint profile on this machine, its state, and what the service sees."""
    show_list(
        "endpoint",
        _row,
        [
            ("Name", lambda r: r["name"]),
            ("Status", lambda r: r["status"]),
            ("Endpoint ID", lambda r: r["endpoint_id"]),
            ("Service", lambda r: r["service_status"]),
            ("Last heartbeat", lambda r: when(r["last_heartbeat"])),
        ],
        json=json,
    )


@app.command("status")
def status(name: NameArg = "default", json: JsonOption = False) -> None:
    """One endpoint: local state, pid, and the service's view (online, last heartbeat, load)."""
    profile = _existing(name)
    row = _row(profile)
    info = _service_view(profile)
    if json:
        print_json({**row, "service": info.model_dump(mode="json") if info else None})
        return
    _say(f"endpoint {name}: {row['status']}" + (f" (pid {row['pid']})" if row["pid"] else ""))
    _say(f"  id:      {row['endpoint_id'] or '- (never started)'}")
    _say(f"  config:  {row['config']}")
    if info is None:
        _say("  service: unknown (not registered, or the service is unreachable)")
        return
    _say(f"  service: {info.status}, last heartbeat {when(info.last_heartbeat)}, host {info.host or '-'}")
    if info.stats:
        _say("  load:    " + ", ".join(f"{k}={v}" for k, v in sorted(info.stats.items())))


@app.command("delete")
def delete(
    name: NameArg = "default",
    force: Annotated[bool, typer.Option("--force", help="Stop it first if it runs.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete the endpoint: its registration at the service (and its tasks) and its local profile."""

    def unregister(identity: dict[str, Any]) -> None:
        with Client(identity.get("service_url")) as client:
            client.delete_endpoint(str(identity["endpoint_id"]), force=force)

    delete_profile("endpoint", name, force=force, yes=yes, unregister=unregister)


@app.command("logs")
def logs(
    name: NameArg = "default",
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
) -> None:
    """Print the endpoint's log."""
    print_logs("endpoint", name, lines, follow)
