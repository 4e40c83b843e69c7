"""``beamlink group create|add|remove|list|show|delete``."""

from __future__ import annotations

from typing import Annotated

import typer

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, print_json, print_table, when

app = typer.Typer(help="Groups of users, for sharing.", no_args_is_help=True)


@app.command("create")
def create(
    name: str,
    description: Annotated[str | None, typer.Option(help="What the group is for.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Create a group you own."""
    group = client(url).create_group(name, description=description)
    if json:
        print_json(group)
        return
    console.print(f"created group {group.name} ({group.id})", highlight=False, markup=False)


@app.command("add")
def add(
    group: Annotated[str, typer.Argument(help="Group name or id.")],
    username: str,
    manager: Annotated[bool, typer.Option("--manager", help="May add and remove members.")] = False,
    url: UrlOption = None,
) -> None:
    """Add a user (or a client's identity) to a group."""
    member = client(url).add_member(group, username, role="manager" if manager else "member")
    console.print(f"added {member.username} to {group} as {member.role}", highlight=False, markup=False)


@app.command("remove")
def remove(group: str, username: str, url: UrlOption = None) -> None:
    """Remove a member from a group."""
    client(url).remove_member(group, username)
    console.print(f"removed {username} from {group}", highlight=False, markup=False)


@app.command("list")
def list_(url: UrlOption = None, json: JsonOption = False) -> None:
    """Groups you own, belong to, or can see."""
    groups = client(url).list_groups()
    if json:
        print_json(groups)
        return
    print_table(
        "Groups",
        [
            ("Name", lambda g: g.name),
            ("Owner", lambda g: g.owner),
            ("Your role", lambda g: g.my_role),
            ("Description", lambda g: g.description),
            ("Created", lambda g: when(g.created_at)),
            ("ID", lambda g: g.id),
        ],
        groups,
    )


@app.command("show")
def show(group: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """A group with its members."""
    info = client(url).get_group(group)
    if json:
        print_json(info)
        return
    console.print(
        f"{info.name} (owner {info.owner}): {info.description or ''}", highlight=False, markup=False
    )
    print_table(
        "Members",
        [
            ("Username", lambda m: m.username),
            ("Role", lambda m: m.role),
            ("Added", lambda m: when(m.added_at)),
        ],
        info.members or [],
    )


@app.command("delete")
def delete(group: str, url: UrlOption = None) -> None:
    """Delete a group (its owner)."""
    client(url).delete_group(group)
    console.print(f"deleted group {group}", highlight=False, markup=False)
