"""Caches of what the database said, kept exactly: emptied by any commit that wrote the tables they read.

The service is the only writer of its tables, so a cache emptied after each commit that touched them
never serves a stale answer; the TTL only bounds what a change made behind its back (a hand-edited
database) can go unseen. ``generation`` guards the read-then-put race: a value read across a clear is
not kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

__all__ = ["ExactCache", "on_commit_touching"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def on_commit_touching(
    sessions: sessionmaker[Session], models: tuple[type[Any], ...], callback: Callable[[], None]
) -> None:
    """Call ``callback`` after each commit that inserted, updated or deleted rows of ``models``.

    Seen: objects flushed by the ORM, and ORM-enabled bulk ``update(Model)``/``delete(Model)``
    statements. Not seen: statements on the bare table and writes from outside the service.
    """
    marker = f"beamlink.touched.{id(callback)}"

    def after_flush(session: Session, _context: Any) -> None:
        touched = (*session.new, *session.dirty, *session.deleted)
        if any(isinstance(obj, models) for obj in touched):
            session.info[marker] = True

    def do_orm_execute(state: ORMExecuteState) -> None:
        mapper = state.bind_mapper
        if (state.is_update or state.is_delete) and mapper is not None and issubclass(mapper.class_, models):
            state.session.info[marker] = True

    def after_commit(session: Session) -> None:
        if session.info.pop(marker, False):
            callback()

    def after_rollback(session: Session, _transaction: Any) -> None:
        session.info.pop(marker, None)

    event.listen(sessions, "after_flush", after_flush)
    event.listen(sessions, "do_orm_execute", do_orm_execute)
    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", after_rollback)


class ExactCache(Generic[K, V]):
    """Least-recently-used values by key, dropped after ``ttl_seconds`` or any commit to ``models``."""

    models: tuple[type[Any], ...] = ()

    def __init__(self, *, ttl_seconds: float = 30.0, max_entries: int = 4096) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        """Read before reading the database; :meth:`put` drops a value read across a later clear."""
        return self._generation

    def _usable(self, value: V) -> bool:
        """Whether a cached value may still be served (beyond the TTL); subclasses add their own test."""
        return True

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, cached_at = entry
            if time.monotonic() - cached_at > self.ttl_seconds or not self._usable(value):
                del self._entries[key]  # the slow path reads it again (and says why it is gone)
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a change committed while this value was being read: it may be stale
            self._entries[key] = (value, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Empty the cache after any commit that wrote one of :attr:`models`."""
        on_commit_touching(sessions, self.models, self.clear)
