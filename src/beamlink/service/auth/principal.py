"""Who is asking: the identity behind a request, with the groups it belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. Built once per request from the token; the permission layer needs nothing else."""

    id: str
    username: str
    kind: str = "user"
    is_admin: bool = False
    group_ids: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None
    token_expires_at: datetime | None = None
