"""``beamlink login|logout|whoami``."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, err_console, print_json
from beamlink.config import local_username
from beamlink.credentials import Credentials, read_credentials, remove_credentials, write_credentials
from beamlink.errors import BeamlinkError
from beamlink.sdk import Client

__all__ = ["login", "logout", "whoami"]


def login(
    url: UrlOption = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Default: your login name.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    client_id: Annotated[
        str | None, typer.Option(envvar="BEAMLINK_CLIENT_ID", help="Log in as a client.")
    ] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(envvar="BEAMLINK_CLIENT_SECRET", show_default=False, help="The client's secret."),
    ] = None,
) -> None:
    """Log in and store a token in $BEAMLINK_HOME/credentials.json (mode 0600)."""
    sdk = Client(url)
    if client_id or client_secret:
        if not (client_id and client_secret):
            raise typer.BadParameter("give both --client-id and --client-secret (or both env vars)")
        issued = sdk.login_client(client_id, client_secret, token_name="beamlink login (client)")
    else:
        name = username or local_username()
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt(f"Password for {name}", hide_input=True)
        issued = sdk.login(name, password, token_name=f"beamlink login on {os.uname().nodename}")
    write_credentials(
        sdk.home / "credentials.json",
        Credentials(
            url=sdk.url,
            token=issued.access_token,
            token_id=issued.token_id,
            username=issued.username,
            expires_at=issued.expires_at.isoformat(),
        ),
    )
    console.print(
        f"Logged in to {sdk.url} as [bold]{issued.username}[/bold] "
        f"(token expires {issued.expires_at:%Y-%m-%d %H:%M} UTC)",
        highlight=False,
    )


def logout(url: UrlOption = None) -> None:
    """Revoke the stored token and delete the credentials file."""
    sdk = client(url)
    path = sdk.home / "credentials.json"
    if read_credentials(path) is None:
        console.print("not logged in")
        return
    try:
        sdk.revoke_token("current")
    except BeamlinkError as exc:  # the token may be expired already; forgetting it is what matters
        err_console.print(f"[yellow]note:[/yellow] the service did not revoke the token ({exc.code})")
    remove_credentials(path)
    console.print("Logged out.")


def whoami(url: UrlOption = None, json: JsonOption = False) -> None:
    """Show who the stored token belongs to."""
    sdk = client(url)
    me = sdk.whoami()
    if json:
        print_json(me)
        return
    role = " (admin)" if me.is_admin else ""
    console.print(f"{me.username}{role}", highlight=False, markup=False)
    console.print(
        f"  id:      {me.id}\n  service: {sdk.url}\n  groups:  {', '.join(me.groups) or '-'}",
        highlight=False,
        markup=False,
    )
