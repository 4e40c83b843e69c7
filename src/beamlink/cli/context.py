"""Shared CLI options and the SDK client a command talks through."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Any

import typer

from beamlink.errors import InvalidInput
from beamlink.sdk import Client

__all__ = ["UrlOption", "client", "parse_input"]

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="BEAMLINK_URL", help="Service URL (default: from `beamlink login`)."),
]


def client(url: str | None = None) -> Client:
    return Client(url)


def parse_input(text: str | None, *, option: str = "--input") -> dict[str, Any]:
    """A JSON object given inline or as ``@FILE``; InvalidInput names the option and the problem."""
    if text is None:
        return {}
    source = "the argument"
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidInput(
                f"{option}: cannot read {path}: {exc.strerror}", details={"field": option}
            ) from None
        source = str(path)
    try:
        value = jsonlib.loads(text)
    except ValueError as exc:
        raise InvalidInput(
            f'{option}: {source} is not JSON ({exc}); write e.g. \'{{"sample": "A1"}}\' or @input.json',
            details={"field": option},
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"{option} must be a JSON object, not {type(value).__name__}", details={"field": option}
        )
    return value
