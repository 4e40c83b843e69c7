"""Small formatting helpers the templates use (dates, sizes, durations, status colours, JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

__all__ = ["FILTERS", "human_bytes", "status_class"]

# Status words of every domain (runs, transfers, agents, actions) mapped to a badge colour.
_STATUS_CLASSES = {
    "succeeded": "ok",
    "success": "ok",
    "online": "ok",
    "connected": "ok",
    "done": "ok",
    "active": "live",
    "running": "live",
    "retrying": "warn",
    "inactive": "warn",
    "waiting": "warn",
    "offline": "off",
    "disconnected": "off",
    "never-connected": "off",
    "ended": "off",
    "canceled": "off",
    "failed": "bad",
    "caught": "warn",
}

# What a person reads on an agent's badge (the rows say online/offline).
AGENT_LABELS = {"online": "Connected", "offline": "Disconnected", "never-connected": "Never connected"}


def status_class(status: str | None) -> str:
    return _STATUS_CLASSES.get((status or "").lower(), "neutral")


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"  # pragma: no cover - the loop returns at TB


def timestamp(value: datetime | None) -> str:
    """UTC, to the second; the page script shows it in the reader's own time zone."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    return str(timedelta(seconds=round(seconds)))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str)


def agent_label(status: str) -> str:
    return AGENT_LABELS.get(status, status)


def short_id(value: str | None) -> str:
    return (value or "")[:8]


def scalar(value: Any) -> str:
    """A metadata value as one line of text (lists joined, objects as compact JSON)."""
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "—" if value is None else str(value)


FILTERS: dict[str, Callable[..., Any]] = {
    "bytes": human_bytes,
    "timestamp": timestamp,
    "iso": iso,
    "pretty_json": pretty_json,
    "agent_label": agent_label,
    "short_id": short_id,
    "scalar": scalar,
    "status_class": status_class,
}
