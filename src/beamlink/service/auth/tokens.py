"""Bearer tokens: issue, authenticate, list, revoke."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from beamlink.errors import AuthenticationFailed, NotFound, TokenExpired, TokenRevoked
from beamlink.service.auth.models import ApiToken, GroupMember, User
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import utcnow

__all__ = [
    "TOKEN_PREFIX",
    "authenticate",
    "hash_token",
    "issue_token",
    "principal_of",
    "revoke_token",
    "tokens_query",
]

TOKEN_PREFIX = "blk_"
# Recording every use would turn every read into a write; once a minute is enough to show activity.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(session: Session, user: User, *, name: str, ttl_seconds: int) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns the row and the secret (shown once, stored only as a hash)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(
        token_hash=hash_token(raw),
        identity_id=user.id,
        name=name,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    row.identity = user
    session.add(row)
    session.flush()
    return row, raw


def authenticate(session: Session, raw: str) -> Principal:
    """The principal a bearer token stands for, or an AuthenticationFailed subclass saying why not."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if row is None:
        raise AuthenticationFailed(
            "the bearer token is not valid: log in again with `beamlink login`", details={"reason": "unknown"}
        )
    now = utcnow()
    if row.revoked_at is not None:
        raise TokenRevoked("this token was revoked: log in again with `beamlink login`")
    if row.expires_at <= now:
        raise TokenExpired(
            f"this token expired at {row.expires_at.isoformat()}: log in again with `beamlink login`",
            details={"expired_at": row.expires_at.isoformat()},
        )
    user = row.identity
    if not user.is_active:
        raise AuthenticationFailed(
            "this account is disabled: ask an administrator", details={"reason": "inactive"}
        )
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        row.last_used_at = now
    return principal_of(session, user, token=row)


def principal_of(session: Session, user: User, *, token: ApiToken | None = None) -> Principal:
    """The principal of ``user`` with its groups: what a request with its token would carry. The flow
    engine acts as a run's owner through this, long after the starting request ended."""
    groups = frozenset(
        session.scalars(select(GroupMember.group_id).where(GroupMember.identity_id == user.id)).all()
    )
    return Principal(
        id=user.id,
        username=user.username,
        kind=user.kind,
        is_admin=user.is_admin,
        group_ids=groups,
        token_id=token.id if token else None,
        token_expires_at=token.expires_at if token else None,
    )


def tokens_query(principal: Principal, *, all_users: bool = False) -> Select[ApiToken]:
    """The caller's tokens (an admin may ask for everyone's), for paging."""
    query = select(ApiToken)
    if not (all_users and principal.is_admin):
        query = query.where(ApiToken.identity_id == principal.id)
    return query


def revoke_token(session: Session, principal: Principal, token_id: str) -> ApiToken:
    """Revoke one of the caller's tokens (admins: anyone's). Revoking twice is harmless."""
    row = session.get(ApiToken, token_id)
    if row is None or (row.identity_id != principal.id and not principal.is_admin):
        raise NotFound(f"token {token_id} not found (or you have no access to it)")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
