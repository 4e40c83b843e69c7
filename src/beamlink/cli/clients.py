"""``beamlink client create|list|delete``: credentials for automation."""

from __future__ import annotations

from typing import Annotated

import typer

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, print_json, print_table, when

app = typer.Typer(help="Client credentials for scripts and instruments.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the client is for, e.g. 'beamline 8-ID watcher'.")],
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Create a client; its secret is printed once, in .env form."""
    created = client(url).create_client(name)
    if json:
        print_json(created)
        return
    console.print(
        f"created client {created.name!r}; store these (the secret is not shown again):",
        highlight=False,
        markup=False,
    )
    print(f"BEAMLINK_CLIENT_ID={created.client_id}")
    print(f"BEAMLINK_CLIENT_SECRET={created.client_secret}")


@app.command("list")
def list_(url: UrlOption = None, json: JsonOption = False) -> None:
    """List your clients."""
    clients = client(url).list_clients()
    if json:
        print_json(clients)
        return
    print_table(
        "Clients",
        [
            ("Client ID", lambda c: c.client_id),
            ("Name", lambda c: c.name),
            ("Identity", lambda c: c.username),
            ("Created", lambda c: when(c.created_at)),
        ],
        clients,
    )


@app.command("delete")
def delete(client_id: str, url: UrlOption = None) -> None:
    """Delete a client; its tokens stop working at once."""
    client(url).delete_client(client_id)
    console.print(f"deleted client {client_id}", highlight=False, markup=False)
