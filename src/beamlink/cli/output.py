"""How the CLI prints: tables for people, ``--json`` for scripts, errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["JsonOption", "console", "err_console", "print_json", "print_table", "when"]

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # errors stay one greppable line

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def print_json(value: Any) -> None:
    # Plain print, not Rich: scripts need exact JSON, without markup or wrapping.
    print(json.dumps(_plain(value), indent=2, ensure_ascii=False, default=str))


def when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


Column = tuple[str, Callable[[Any], Any]]


def print_table(title: str | None, columns: Sequence[Column], rows: Iterable[Any]) -> None:
    table = Table(title=title, title_justify="left", header_style="bold")
    for header, _ in columns:
        # Ids are copied and pasted: never fold them across lines.
        is_id = header.endswith("ID")
        table.add_column(header, overflow="fold", no_wrap=is_id, min_width=36 if is_id else None)
    count = 0
    for row in rows:
        # Values are user data: never let Rich read markup out of a name like "[bold]".
        table.add_row(*[_escape(getter(row)) for _, getter in columns])
        count += 1
    if count == 0:
        console.print(f"[dim]no {title.lower() if title else 'rows'}[/dim]")
        return
    console.print(table)


def _escape(value: Any) -> str:
    return escape("-" if value is None else str(value))
