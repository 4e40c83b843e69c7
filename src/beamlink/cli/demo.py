"""``beamlink demo``: the main job, run end to end on this machine.

Until the flows and apps land it shows the foundation: an embedded service starts in a fresh home, is
healthy, answers as the local admin, and stops cleanly.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from beamlink.cli.output import console, print_table, when
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess

__all__ = ["demo"]


def demo(
    home: Annotated[
        Path | None, typer.Option(help="BEAMLINK_HOME for the demo [default: a new temp dir].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port for the demo service [default: a free one].")] = None,
) -> None:
    """Start an embedded service, show it healthy, and stop it."""
    with tempfile.TemporaryDirectory(prefix="beamlink-demo-") as scratch:
        root = home or Path(scratch)
        service = ServiceProcess(root, port=port)
        console.rule("[bold]beamlink demo")
        with console.status(f"starting the service at {service.url} (home {root}) ..."):
            started = time.monotonic()
            service.start()
            took = time.monotonic() - started
        console.print(f"[green]✓[/green] service healthy in {took:.2f} s at {service.url}")
        try:
            sdk = Client(service.url, home=root)
            health = sdk.health()
            version = sdk.version()
            me = sdk.whoami()
            console.print(
                f"[green]✓[/green] /health: {health['status']} (database {health['database']}, "
                f"schema {version['schema_revision']}, beamlink {version['version']})"
            )
            console.print(
                f"[green]✓[/green] logged in as the local admin [bold]{me.username}[/bold] "
                f"with the token written to {root / 'credentials.json'}"
            )
            print_table(
                "Tokens",
                [
                    ("Name", lambda t: t.name),
                    ("Expires", lambda t: when(t.expires_at)),
                    ("ID", lambda t: t.id),
                ],
                sdk.list_tokens(),
            )
        finally:
            with console.status("stopping the service ..."):
                code = service.stop()
        console.print(
            f"[green]✓[/green] service stopped cleanly (exit code {code})"
            if code == 0
            else f"[red]✗[/red] service exited with code {code}; log: {service.log_path}"
        )
        console.print("[dim]Next: `beamlink server` runs it for real; see README.md.[/dim]")
        if code != 0:
            raise typer.Exit(1)
