"""The ``beamlink`` command: one Typer app, a module per noun, errors printed as one clear line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import beamlink
from beamlink.cli import (
    app as apps,
)
from beamlink.cli import (
    clients,
    collection,
    endpoint,
    files,
    flow,
    functions,
    groups,
    run,
    search,
    tasks,
    timer,
    tokens,
    transfer,
    trigger,
    up,
    users,
)
from beamlink.cli.demo import demo
from beamlink.cli.login import login, logout, whoami
from beamlink.cli.output import err_console
from beamlink.cli.server import db_app, server
from beamlink.errors import AuthenticationFailed, BeamlinkError, ServiceUnreachable

__all__ = ["app", "main"]

app = typer.Typer(
    name="beamlink",
    help="Link instruments to computation: transfers, compute endpoints, flows, search, portal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"beamlink {beamlink.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """beamlink: self-hosted instrument-to-computation flows."""


app.command("server")(server)
app.command("demo")(demo)
app.command("login")(login)
app.command("logout")(logout)
app.command("whoami")(whoami)
app.command("ls")(files.ls)
app.command("stat")(files.stat)
app.command("mkdir")(files.mkdir)
app.command("mv")(files.mv)
app.command("rm")(transfer.rm)
app.command("up")(up.up)
app.command("down")(up.down)
app.add_typer(db_app, name="db")
app.add_typer(tokens.app, name="token")
app.add_typer(users.app, name="user")
app.add_typer(clients.app, name="client")
app.add_typer(groups.app, name="group")
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(collection.app, name="collection")
app.add_typer(transfer.app, name="transfer")
app.add_typer(functions.app, name="function")
app.add_typer(tasks.app, name="task")
app.add_typer(flow.app, name="flow")
app.add_typer(run.app, name="run")
app.add_typer(timer.app, name="timer")
app.add_typer(trigger.app, name="trigger")
app.add_typer(search.app, name="search")
app.add_typer(apps.app, name="app")

# Exit codes scripts can rely on.
EXIT_ERROR = 1
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4


def main() -> None:
    try:
        app()
    except BeamlinkError as exc:
        err_console.print(f"[bold red]Error[/bold red] [{exc.code}]: ", end="", highlight=False)
        err_console.print(exc.message, markup=False, highlight=False)
        if isinstance(exc, AuthenticationFailed):
            sys.exit(EXIT_AUTH)
        if isinstance(exc, ServiceUnreachable):
            sys.exit(EXIT_UNREACHABLE)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
