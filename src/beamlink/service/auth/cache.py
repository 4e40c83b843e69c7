"""Recently authenticated tokens, so a request does not pay a transaction just to learn who is asking.

Every authenticated request used to read the token, its user and the user's groups in a transaction of
its own: about a fifth of a task submission's time. The cache keeps the resulting :class:`Principal` by
token hash. It is exact, not merely short-lived: any committed change to a token, user, group or
membership made through the ORM empties it (the service is the only writer of those tables), and the
TTL only bounds what a change made behind the service's back (a hand-edited database) can go unseen.
A token's own expiry is checked on every hit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from beamlink.service.auth.models import ApiToken, Group, GroupMember, User
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import utcnow

__all__ = ["PrincipalCache"]

_AUTH_MODELS = (ApiToken, User, Group, GroupMember)
_CHANGED = "beamlink.auth_changed"


class PrincipalCache:
    def __init__(self, *, ttl_seconds: float = 30.0, max_entries: int = 4096) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Principal, datetime, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        """Read before authenticating; :meth:`put` drops a principal read across a later clear."""
        return self._generation

    def get(self, token_hash: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(token_hash)
            if entry is None:
                return None
            principal, expires_at, cached_at = entry
            if time.monotonic() - cached_at > self.ttl_seconds or expires_at <= utcnow():
                del self._entries[token_hash]  # the slow path says why (expired) and refreshes
                return None
            self._entries.move_to_end(token_hash)
            return principal

    def put(self, token_hash: str, principal: Principal, expires_at: datetime, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # an auth change committed while this principal was being read: it may be stale
            self._entries[token_hash] = (principal, expires_at, time.monotonic())
            self._entries.move_to_end(token_hash)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Empty the cache after any commit that wrote a token, user, group or membership."""

        def after_flush(session: Session, _context: Any) -> None:
            touched = (*session.new, *session.dirty, *session.deleted)
            if any(isinstance(obj, _AUTH_MODELS) for obj in touched):
                session.info[_CHANGED] = True

        def after_commit(session: Session) -> None:
            if session.info.pop(_CHANGED, False):
                self.clear()

        def after_rollback(session: Session) -> None:
            session.info.pop(_CHANGED, None)

        event.listen(sessions, "after_flush", after_flush)
        event.listen(sessions, "after_commit", after_commit)
        event.listen(sessions, "after_soft_rollback", lambda session, _tx: after_rollback(session))
