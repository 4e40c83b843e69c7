"""Cursor paging, the one list style on the wire: ``?limit=&cursor=`` → ``{items, next_cursor}``.

Rows are ordered by (created_at, id); the cursor carries the last row's pair, so pages stay stable while
rows are added, and no OFFSET scan grows with the page number.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from beamlink.errors import InvalidInput

__all__ = ["MAX_LIMIT", "decode_cursor", "encode_cursor", "paginate"]

MAX_LIMIT = 1000
T = TypeVar("T")


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            "the cursor is not one this service issued: pass back next_cursor unchanged, or omit it",
            details={"field": "cursor"},
        ) from exc


def paginate(
    session: Session, query: Select[T], model: type[T], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """Run ``query`` for one page; ``model`` must have ``created_at`` and ``id`` columns."""
    columns: Any = model
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, got {limit}", details={"field": "limit"}
        )
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(
            or_(columns.created_at > created, and_(columns.created_at == created, columns.id > row_id))
        )
    rows: list[T] = list(session.scalars(query.order_by(columns.created_at, columns.id).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last: Any = rows[-1]
    return rows, encode_cursor(last.created_at, last.id)
