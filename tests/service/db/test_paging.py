from __future__ import annotations

import pytest
from sqlalchemy import select

from beamlink.errors import InvalidInput
from beamlink.service.auth.models import User
from beamlink.service.db.engine import Database
from beamlink.service.db.paging import paginate


def test_cursor_pages_walk_every_row_once(database: Database) -> None:
    with database.transaction() as session:
        for i in range(7):
            session.add(User(username=f"u{i}", kind="user"))
    seen: list[str] = []
    cursor = None
    with database.transaction() as session:
        while True:
            rows, cursor = paginate(session, select(User), User, 3, cursor)
            seen += [r.username for r in rows]
            if cursor is None:
                break
    assert sorted(seen) == [f"u{i}" for i in range(7)]
    assert len(seen) == 7


def test_bad_cursor_and_limit_are_named(database: Database) -> None:
    with database.transaction() as session:
        with pytest.raises(InvalidInput, match="cursor"):
            paginate(session, select(User), User, 3, "not-a-cursor")
        with pytest.raises(InvalidInput, match="limit"):
            paginate(session, select(User), User, 0, None)
