"""What an entry's content is made into for searching (pure: no database): its words, its leaf values
under dotted field names, and the files it references."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from beamlink.errors import InvalidInput

__all__ = [
    "FIELD_NAME",
    "FILE_KEYS",
    "MAX_FIELDS",
    "FieldValue",
    "FileReference",
    "check_field_name",
    "date_key",
    "entry_text",
    "field_values",
    "file_references",
]

#: A dotted path of content keys, as filters, facets and sorts name a field.
FIELD_NAME = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
#: Leaf values indexed for one entry (Globus allows 1,000 distinct fields per index).
MAX_FIELDS = 2000
_VALUE_CHARS = 1024
_KEY_CHARS = 256
_TEXT_CHARS = 1_000_000
#: Content keys whose values are file references (one, or a list).
FILE_KEYS = ("files", "images", "thumbnail")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")


@dataclass(frozen=True)
class FieldValue:
    field: str
    text: str
    key: str
    number: float | None
    date: str | None


@dataclass(frozen=True)
class FileReference:
    collection: str
    path: str
    kind: str
    pointer: str


def check_field_name(name: str, *, where: str) -> str:
    if not FIELD_NAME.fullmatch(name):
        raise InvalidInput(
            f"{where}: {name!r} is not a field name: write content keys joined by dots (letters, digits, "
            "'_' and '-'), e.g. 'sample.name'",
            details={"field": where, "value": name},
        )
    return name


def date_key(value: str) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC for an ISO 8601 date or date-time; None for anything else."""
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


#: Top-level content keys that are data for the portal to draw, not values to filter, facet or search.
UNINDEXED_KEYS = frozenset({"plots"})


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if not path and key in UNINDEXED_KEYS:
                continue  # hundreds of numbers per plot: each would be a row to write and to search
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, path)
    elif value is not None and path:
        yield path, value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def field_values(content: dict[str, Any]) -> list[FieldValue]:
    """Every leaf of ``content`` (arrays flattened into their field); InvalidInput past MAX_FIELDS."""
    found: list[FieldValue] = []
    for path, value in _leaves(content, ""):
        if not FIELD_NAME.fullmatch(path):
            continue  # keys with spaces or punctuation stay searchable as text, but not as fields
        text = _as_text(value)[:_VALUE_CHARS]
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            number = float(value)
        date = date_key(value) if isinstance(value, str) else None
        found.append(FieldValue(path, text, text[:_KEY_CHARS].lower(), number, date))
        if len(found) > MAX_FIELDS:
            raise InvalidInput(
                f"content has more than {MAX_FIELDS} values to index: keep bulky data (arrays of numbers, "
                "say) in a file the record references, or under a 'plots' key",
                details={"field": "content", "limit": MAX_FIELDS},
            )
    return found


def _words(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in UNINDEXED_KEYS:  # plot data is numbers nobody searches for
                yield from _words(item)
    elif isinstance(value, list):
        for item in value:
            yield from _words(item)
    elif isinstance(value, str):
        yield value
    elif value is not None and not isinstance(value, bool):
        yield _as_text(value)


def entry_text(subject: str, content: dict[str, Any]) -> str:
    """The words full-text search matches: the subject and every string and number of the content."""
    return " ".join([subject, *_words(content)])[:_TEXT_CHARS]


def file_references(content: dict[str, Any]) -> list[FileReference]:
    """The ``{collection, path}`` objects under ``files``, ``images`` and ``thumbnail``.

    A malformed reference raises InvalidInput with its JSON pointer; the collection is resolved by the
    caller (it needs the database).
    """
    found: list[FileReference] = []
    for key in FILE_KEYS:
        value = content.get(key)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for position, item in enumerate(items):
            pointer = f"/content/{key}" + (f"/{position}" if isinstance(value, list) else "")
            if not (
                isinstance(item, dict)
                and isinstance(item.get("collection"), str)
                and isinstance(item.get("path"), str)
                and item["collection"]
                and item["path"]
            ):
                raise InvalidInput(
                    f"{pointer}: a file reference is an object with 'collection' (id or name) and 'path': "
                    f"{json.dumps(item)[:120]}",
                    details={"field": pointer},
                )
            found.append(FileReference(item["collection"], item["path"], key, pointer))
    return found
