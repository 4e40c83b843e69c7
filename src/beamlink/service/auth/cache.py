"""Recently authenticated tokens, so a request does not pay a transaction just to learn who is asking.

Every authenticated request used to read the token, its user and the user's groups in a transaction of
its own: about a fifth of a task submission's time. The cache keeps the resulting :class:`Principal` by
token hash, exactly (:mod:`beamlink.service.db.cache`): any committed change to a token, user, group or
membership empties it. A token's own expiry is checked on every hit.
"""

from __future__ import annotations

from beamlink.service.auth.models import ApiToken, Group, GroupMember, User
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import utcnow
from beamlink.service.db.cache import ExactCache

__all__ = ["PrincipalCache"]


class PrincipalCache(ExactCache[str, Principal]):
    models = (ApiToken, User, Group, GroupMember)

    def _usable(self, value: Principal) -> bool:
        return value.token_expires_at is None or value.token_expires_at > utcnow()
