"""Shared CLI options and the SDK client a command talks through."""

from __future__ import annotations

from typing import Annotated

import typer

from beamlink.sdk import Client

__all__ = ["UrlOption", "client"]

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="BEAMLINK_URL", help="Service URL (default: from `beamlink login`)."),
]


def client(url: str | None = None) -> Client:
    return Client(url)
