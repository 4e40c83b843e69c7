"""Exact caches: emptied by commits that wrote their tables (however written through the ORM), not by
others or by rollbacks; a value read across a clear is not kept; TTL and size bound the rest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import String, create_engine, delete, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from beamlink.service.db.cache import ExactCache


class _Base(DeclarativeBase):
    pass


class Watched(_Base):
    __tablename__ = "watched"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class Other(_Base):
    __tablename__ = "other"
    id: Mapped[int] = mapped_column(primary_key=True)


class WatchedCache(ExactCache[str, str]):
    models = (Watched,)


@pytest.fixture
def sessions() -> Iterator[sessionmaker[Session]]:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    yield sessionmaker(engine)
    engine.dispose()


def filled(sessions: sessionmaker[Session]) -> WatchedCache:
    cache = WatchedCache()
    cache.watch(sessions)
    cache.put("k", "v", cache.generation)
    return cache


def test_any_orm_write_to_a_watched_table_empties_the_cache(sessions: sessionmaker[Session]) -> None:
    writes = [
        lambda s: s.add(Watched(id=1, name="a")),
        lambda s: s.get(Watched, 1).__setattr__("name", "b"),
        lambda s: s.execute(update(Watched).where(Watched.id == 1).values(name="c")),
        lambda s: s.execute(delete(Watched).where(Watched.id == 1)),
    ]
    for write in writes:
        cache = filled(sessions)
        with sessions.begin() as session:
            write(session)
        assert cache.get("k") is None


def test_other_tables_reads_and_rollbacks_leave_it(sessions: sessionmaker[Session]) -> None:
    cache = filled(sessions)
    with sessions.begin() as session:
        session.add(Other(id=1))
        session.get(Watched, 1)
    session = sessions()
    with session.begin():
        session.add(Watched(id=2, name="never"))
        session.flush()
        session.rollback()
    session.close()
    assert cache.get("k") == "v"


def test_a_value_read_across_a_clear_is_not_kept() -> None:
    cache = WatchedCache()
    generation = cache.generation
    cache.clear()  # a commit lands while the value is being read
    cache.put("k", "stale", generation)
    assert cache.get("k") is None


def test_ttl_and_size_bound_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("beamlink.service.db.cache.time.monotonic", lambda: clock[0])
    cache = WatchedCache(ttl_seconds=5, max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(key, key, cache.generation)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, "b", "c")
    clock[0] += 6
    assert cache.get("b") is None
