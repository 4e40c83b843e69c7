"""``beamlink user create|list``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, print_json, print_table, when

app = typer.Typer(help="People who can log in.", no_args_is_help=True)


@app.command("create")
def create(
    username: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make an administrator.")] = False,
    display_name: Annotated[str | None, typer.Option(help="Full name.")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Create a user (administrators only)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt(f"Password for {username}", hide_input=True, confirmation_prompt=True)
    user = client(url).create_user(username, password, display_name=display_name, email=email, is_admin=admin)
    if json:
        print_json(user)
        return
    console.print(f"created user {user.username} ({user.id})", highlight=False, markup=False)


@app.command("list")
def list_(url: UrlOption = None, json: JsonOption = False) -> None:
    """List users."""
    users = client(url).list_users()
    if json:
        print_json(users)
        return
    print_table(
        "Users",
        [
            ("Username", lambda u: u.username),
            ("Name", lambda u: u.display_name),
            ("Admin", lambda u: "yes" if u.is_admin else ""),
            ("Active", lambda u: "yes" if u.is_active else "no"),
            ("Created", lambda u: when(u.created_at)),
            ("ID", lambda u: u.id),
        ],
        users,
    )
