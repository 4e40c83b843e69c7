"""Users: create, update, log in with a password, and the first-start admin."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from beamlink.config import local_username
from beamlink.errors import AlreadyExists, InvalidCredentials, NotFound, PermissionDenied
from beamlink.protocol.auth import UserCreate, UserUpdate
from beamlink.service.auth.models import User
from beamlink.service.auth.passwords import hash_secret, needs_rehash, verify_secret
from beamlink.service.auth.principal import Principal

__all__ = ["authenticate_password", "create_user", "get_user", "update_user", "users_query"]

log = logging.getLogger(__name__)


def create_user(session: Session, body: UserCreate) -> User:
    if User.by_username(session, body.username) is not None:
        raise AlreadyExists(
            f"a user named {body.username!r} already exists: choose another username",
            details={"field": "username"},
        )
    user = User(
        username=body.username,
        kind="user",
        display_name=body.display_name,
        email=body.email,
        password_hash=hash_secret(body.password),
        is_admin=body.is_admin,
    )
    session.add(user)
    session.flush()
    log.info("created user %s (admin=%s)", user.username, user.is_admin)
    return user


def get_user(session: Session, principal: Principal, user_id_or_name: str) -> User:
    user = session.get(User, user_id_or_name) or User.by_username(session, user_id_or_name)
    if user is None or user.kind != "user":
        raise NotFound(f"user {user_id_or_name!r} not found")
    return user


def users_query() -> Select[User]:
    """People, not clients. Any signed-in user may list them, to know whom to share with."""
    return select(User).where(User.kind == "user")


def update_user(session: Session, principal: Principal, user: User, body: UserUpdate) -> User:
    """Apply the fields that were set. People change their own profile; admins change anyone's flags."""
    changes = body.model_dump(exclude_unset=True)
    if user.id != principal.id and not principal.is_admin:
        raise PermissionDenied("only an administrator may change another user")
    if ({"is_admin", "is_active"} & changes.keys()) and not principal.is_admin:
        raise PermissionDenied(
            "only an administrator may change is_admin or is_active",
            details={"fields": sorted({"is_admin", "is_active"} & changes.keys())},
        )
    for key, value in changes.items():
        if key == "password":
            user.password_hash = hash_secret(value)
        else:
            setattr(user, key, value)
    return user


def authenticate_password(session: Session, username: str, password: str) -> User:
    """The user for a username/password pair. Every failure says the same thing, in the same time."""
    user = User.by_username(session, username)
    usable = user is not None and user.kind == "user" and user.is_active
    ok = verify_secret(user.password_hash if usable and user is not None else None, password)
    if not ok or user is None or not usable:
        raise InvalidCredentials("the username or password is wrong")
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_secret(password)
    return user


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def create_first_admin(
    session: Session, username: str | None, password: str | None
) -> tuple[User, str] | None:
    """On an empty service, create the admin; returns it with its password, or None when users exist."""
    if count_users(session) > 0:
        return None
    chosen = password or secrets.token_urlsafe(18)
    user = create_user(
        session,
        UserCreate(
            username=username or local_username(),
            password=chosen,
            display_name="Administrator",
            is_admin=True,
        ),
    )
    return user, chosen
