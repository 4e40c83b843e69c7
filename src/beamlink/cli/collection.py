"""``beamlink collection configure|start|stop|restart|status|list|delete|logs NAME`` and access rules."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from beamlink.agents.daemon import (
    AgentProfile,
)
from beamlink.cli.agent_profiles import (
    delete_profile,
    existing,
    is_up,
    print_logs,
    profile,
    say,
    show_list,
    start_agent,
    stop_profile,
)
from beamlink.cli.context import UrlOption
from beamlink.cli.output import JsonOption, print_json, print_table, when
from beamlink.errors import AlreadyExists, BeamlinkError
from beamlink.protocol.collections import CollectionInfo, CollectionRegister, RuleCreate
from beamlink.sdk import Client

if TYPE_CHECKING:
    from beamlink.agents.collection.config import CollectionConfig

app = typer.Typer(help="Collections: agents that serve a directory and move data.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Collection name (a profile in $BEAMLINK_HOME/collections/).")]


@app.command("configure")
def configure(
    name: NameArg,
    root: Annotated[Path, typer.Option("--root", help="The directory the collection serves.")],
) -> None:
    """Create a collection profile with a commented config.yaml to edit."""
    from beamlink.agents.collection.config import default_config_text

    found = profile("collection", name)
    if found.config_path.exists():
        raise AlreadyExists(
            f"collection {name!r} is already configured: edit {found.config_path}, or delete it first "
            f"with `beamlink collection delete {name}`",
            details={"path": str(found.config_path)},
        )
    root = root.expanduser().resolve()
    found.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    found.config_path.write_text(default_config_text(root), encoding="utf-8")
    say(f"configured collection {name} (root {root})")
    say(f"  config: {found.config_path}")
    say(f"  start it with: beamlink collection start {name}")


def _register(found: AgentProfile, config: CollectionConfig, url: str | None) -> dict[str, Any]:
    """Register with the service as the logged-in user (the owner); store the id, secret and data key."""
    identity = found.read_identity() or {}
    client = Client(url or identity.get("service_url"))
    body = CollectionRegister(
        name=found.name,
        description=config.description or config.display_name,
        host=socket.gethostname(),
        root_path=str(config.root_path),
        config=config.model_dump(mode="json"),
    )
    try:
        registered = client.register_collection(body, collection_id=identity.get("collection_id"))
    finally:
        client.close()
    identity = {
        "collection_id": registered.id,
        "service_url": client.url,
        "agent_secret": registered.agent_secret,
        "data_key": registered.data_key,
    }
    found.write_identity(identity)
    return identity


@app.command("start")
def start(
    name: NameArg,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run in this terminal (Ctrl-C stops).")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Register the collection (as its owner) and run its agent as a daemon; prints its id."""
    from beamlink.agents.collection.config import load_config

    def make_agent(found: AgentProfile, config: CollectionConfig, identity: dict[str, Any]) -> Any:
        from beamlink.agents.collection.agent import CollectionAgent

        return CollectionAgent(found, config, identity)

    start_agent(
        "collection",
        name,
        foreground=foreground,
        load=lambda found: load_config(found.config_path),
        register=lambda found, config: _register(found, config, url),
        make_agent=make_agent,
    )


@app.command("stop")
def stop(name: NameArg) -> None:
    """Stop the collection's agent."""
    stop_profile("collection", name)


@app.command("restart")
def restart(name: NameArg, url: UrlOption = None) -> None:
    """Stop the agent if it runs, then start it."""
    if is_up(existing("collection", name)):
        stop(name)
    start(name, foreground=False, url=url)


def _service_view(found: AgentProfile) -> CollectionInfo | None:
    identity = found.read_identity()
    if identity is None:
        return None
    try:
        with Client(identity.get("service_url")) as client:
            return client.get_collection(str(identity["collection_id"]))
    except BeamlinkError:
        return None


def _row(found: AgentProfile) -> dict[str, Any]:
    identity = found.read_identity() or {}
    info = _service_view(found)
    return {
        "name": found.name,
        "status": str(found.state()),
        "collection_id": identity.get("collection_id"),
        "service_status": info.status if info else "unknown",
        "last_heartbeat": info.last_heartbeat if info else None,
        "root_path": info.root_path if info else None,
        "data_url": info.data_url if info else None,
        "pid": found.pid(),
        "config": str(found.config_path),
    }


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """Every collection profile on this machine, its state, and what the service sees."""
    show_list(
        "collection",
        _row,
        [
            ("Name", lambda r: r["name"]),
            ("Status", lambda r: r["status"]),
            ("Collection ID", lambda r: r["collection_id"]),
            ("Service", lambda r: r["service_status"]),
            ("Root", lambda r: r["root_path"]),
            ("Last heartbeat", lambda r: when(r["last_heartbeat"])),
        ],
        json=json,
    )


@app.command("status")
def status(name: NameArg, json: JsonOption = False) -> None:
    """One collection: local state, pid, and the service's view."""
    found = existing("collection", name)
    row = _row(found)
    if json:
        print_json(row)
        return
    say(f"collection {name}: {row['status']}" + (f" (pid {row['pid']})" if row["pid"] else ""))
    say(f"  id:      {row['collection_id'] or '- (never started)'}")
    say(f"  config:  {row['config']}")
    if row["service_status"] == "unknown":
        say("  service: unknown (not registered, or the service is unreachable)")
        return
    say(f"  service: {row['service_status']}, last heartbeat {when(row['last_heartbeat'])}")
    say(f"  root:    {row['root_path'] or '-'}")
    say(f"  data:    {row['data_url'] or '-'}")


@app.command("delete")
def delete(
    name: NameArg,
    force: Annotated[bool, typer.Option("--force", help="Stop it first if it runs.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete the collection's registration at the service (never its files) and its local profile."""

    def unregister(identity: dict[str, Any]) -> None:
        with Client(identity.get("service_url")) as client:
            client.delete_collection(str(identity["collection_id"]), force=force)

    delete_profile("collection", name, force=force, yes=yes, unregister=unregister)


@app.command("logs")
def logs(
    name: NameArg,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
) -> None:
    """Print the collection agent's log."""
    print_logs("collection", name, lines, follow)


# -- access ------------------------------------------------------------------------------------------

rules_app = typer.Typer(help="Who may read or write where in a collection.", no_args_is_help=True)
app.add_typer(rules_app, name="rule")

CollectionArg = Annotated[str, typer.Argument(help="Collection id, or the name of one of yours.")]


@rules_app.command("add")
def rule_add(
    collection: CollectionArg,
    principal: Annotated[str, typer.Argument(help="User or group name (or id).")],
    group: Annotated[bool, typer.Option("--group", help="PRINCIPAL is a group.")] = False,
    path: Annotated[str, typer.Option("--path", help="Path prefix the rule covers (default: all).")] = "",
    write: Annotated[bool, typer.Option("--write", help="read-write instead of read.")] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Give a user or a group read (or read-write) access under a path."""
    body = RuleCreate(
        principal_type="group" if group else "user",
        principal=principal,
        path=path,
        permission="read-write" if write else "read",
    )
    with Client(url) as client:
        rule = client.add_collection_rule(collection, body)
    if json:
        print_json(rule.model_dump(mode="json"))
        return
    say(f"rule {rule.id}: {rule.principal_type} {rule.principal_name} may {rule.permission} /{rule.path}")


@rules_app.command("list")
def rule_list(collection: CollectionArg, url: UrlOption = None, json: JsonOption = False) -> None:
    """The collection's access rules (its owner)."""
    with Client(url) as client:
        rules = client.list_collection_rules(collection)
    if json:
        print_json([r.model_dump(mode="json") for r in rules])
        return
    print_table(
        "Access rules",
        [
            ("Rule ID", lambda r: r.id),
            ("Who", lambda r: f"{r.principal_type} {r.principal_name or r.principal_id}"),
            ("Path", lambda r: "/" + r.path),
            ("Permission", lambda r: r.permission),
        ],
        rules,
    )


@rules_app.command("delete")
def rule_delete(
    collection: CollectionArg, rule_id: Annotated[str, typer.Argument()], url: UrlOption = None
) -> None:
    """Remove an access rule."""
    with Client(url) as client:
        client.delete_collection_rule(collection, rule_id)
    say(f"deleted rule {rule_id}")


@app.command("set")
def set_(
    collection: CollectionArg,
    public_read: Annotated[
        bool | None, typer.Option("--public-read/--no-public-read", help="Anyone may read (the portal).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
    url: UrlOption = None,
) -> None:
    """Change a collection's description or public read access."""
    with Client(url) as client:
        info = client.update_collection(collection, public_read=public_read, description=description)
    say(f"collection {info.name}: public read {'on' if info.public_read else 'off'}")
