"""``/v1/users``: people. Admins create them; anyone signed in may list them to know whom to share with."""

from __future__ import annotations

from fastapi import APIRouter, status

from beamlink.errors import PermissionDenied
from beamlink.protocol.auth import UserCreate, UserInfo, UserUpdate
from beamlink.protocol.common import Page
from beamlink.service.api.deps import CurrentPrincipal, PageParams, State
from beamlink.service.auth import users
from beamlink.service.auth.models import User
from beamlink.service.db.paging import paginate

router = APIRouter(prefix="/v1/users", tags=["users"])


def user_info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        is_admin=user.is_admin,
        is_active=user.is_active,
        created_at=user.created_at,
    )


@router.post(
    "", response_model=UserInfo, status_code=status.HTTP_201_CREATED, summary="Create a user (admins)."
)
def create_user(state: State, principal: CurrentPrincipal, body: UserCreate) -> UserInfo:
    if not principal.is_admin:
        raise PermissionDenied("only an administrator may create users")
    with state.db.transaction() as session:
        return user_info(users.create_user(session, body))


@router.get("", response_model=Page[UserInfo], summary="List users.")
def list_users(state: State, principal: CurrentPrincipal, page: PageParams) -> Page[UserInfo]:
    with state.db.transaction() as session:
        rows, next_cursor = paginate(session, users.users_query(), User, page.limit, page.cursor)
        infos = [user_info(u) for u in rows]
    if not principal.is_admin:
        # Others see who exists, not their e-mail addresses.
        infos = [i.model_copy(update={"email": None}) if i.id != principal.id else i for i in infos]
    return Page(items=infos, next_cursor=next_cursor)


@router.get("/{user}", response_model=UserInfo, summary="Show a user (by id or username).")
def get_user(state: State, principal: CurrentPrincipal, user: str) -> UserInfo:
    with state.db.transaction() as session:
        info = user_info(users.get_user(session, principal, user))
    if not principal.is_admin and info.id != principal.id:
        info = info.model_copy(update={"email": None})
    return info


@router.patch("/{user}", response_model=UserInfo, summary="Change a user (only the fields sent).")
def update_user(state: State, principal: CurrentPrincipal, user: str, body: UserUpdate) -> UserInfo:
    with state.db.transaction() as session:
        target = users.get_user(session, principal, user)
        return user_info(users.update_user(session, principal, target, body))
