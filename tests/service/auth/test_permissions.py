"""The permission layer on a real database (both backends), without HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from beamlink.errors import InvalidInput, NotFound, PermissionDenied
from beamlink.protocol.auth import GroupCreate
from beamlink.service.auth import permissions
from beamlink.service.auth.groups import GROUP_POLICY, add_member, create_group
from beamlink.service.auth.models import Group, User
from beamlink.service.auth.principal import Principal
from beamlink.service.db.engine import Database

FLOWISH = permissions.Policy(
    object_type="group",  # reuse the groups table as "some owned object"
    implies={
        "viewer": frozenset(),
        "starter": frozenset({"viewer"}),
        "administrator": frozenset({"starter"}),
    },
)


def principal(user: User, groups: frozenset[str] = frozenset()) -> Principal:
    return Principal(id=user.id, username=user.username, is_admin=user.is_admin, group_ids=groups)


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.transaction() as s:
        yield s


@pytest.fixture
def people(session: Session) -> dict[str, User]:
    users = {
        name: User(username=name, kind="user", is_admin=name == "root") for name in ("a", "b", "c", "root")
    }
    session.add_all(users.values())
    session.flush()
    return users


def test_owner_and_admin_hold_every_role_and_others_see_nothing(
    session: Session, people: dict[str, User]
) -> None:
    obj = Group(name="thing", owner_id=people["a"].id)
    session.add(obj)
    session.flush()
    a, b, root = principal(people["a"]), principal(people["b"]), principal(people["root"])
    assert "administrator" in permissions.roles_of(session, a, FLOWISH, obj)
    assert "administrator" in permissions.roles_of(session, root, FLOWISH, obj)
    with pytest.raises(NotFound):
        permissions.require(session, b, FLOWISH, obj, "viewer", what="thing")
    with pytest.raises(NotFound):  # invisible beats forbidden: the answer must not reveal existence
        permissions.require(session, b, FLOWISH, obj, "administrator", what="thing")
    assert session.scalars(select(Group).where(permissions.visible_clause(b, FLOWISH, Group))).all() == []


def test_user_grant_with_implied_roles(session: Session, people: dict[str, User]) -> None:
    obj = Group(name="thing", owner_id=people["a"].id)
    session.add(obj)
    session.flush()
    permissions.grant(
        session,
        FLOWISH,
        obj,
        principal_type="user",
        principal_id=people["b"].id,
        role="starter",
        created_by=people["a"].id,
    )
    b = principal(people["b"])
    assert permissions.roles_of(session, b, FLOWISH, obj) == {"starter", "viewer"}
    permissions.require(session, b, FLOWISH, obj, "starter", what="thing")
    with pytest.raises(PermissionDenied, match="administrator"):
        permissions.require(session, b, FLOWISH, obj, "administrator", what="thing")
    listed = session.scalars(select(Group).where(permissions.visible_clause(b, FLOWISH, Group))).all()
    assert [g.name for g in listed] == ["thing"]
    c = principal(people["c"])
    assert session.scalars(select(Group).where(permissions.visible_clause(c, FLOWISH, Group))).all() == []


def test_group_public_and_all_authenticated_grants(session: Session, people: dict[str, User]) -> None:
    obj = Group(name="thing", owner_id=people["a"].id)
    team = Group(name="team", owner_id=people["a"].id)
    session.add_all([obj, team])
    session.flush()
    permissions.grant(
        session, FLOWISH, obj, principal_type="group", principal_id=team.id, role="viewer", created_by=None
    )
    in_team = principal(people["b"], frozenset({team.id}))
    outside = principal(people["c"])
    assert "viewer" in permissions.roles_of(session, in_team, FLOWISH, obj)
    assert permissions.roles_of(session, outside, FLOWISH, obj) == frozenset()

    permissions.grant(
        session,
        FLOWISH,
        obj,
        principal_type="all_authenticated_users",
        principal_id=None,
        role="viewer",
        created_by=None,
    )
    assert "viewer" in permissions.roles_of(session, outside, FLOWISH, obj)
    assert permissions.roles_of(session, None, FLOWISH, obj) == frozenset()  # anonymous: not authenticated

    permissions.grant(
        session, FLOWISH, obj, principal_type="public", principal_id=None, role="viewer", created_by=None
    )
    assert "viewer" in permissions.roles_of(session, None, FLOWISH, obj)


def test_grants_are_idempotent_and_roles_are_checked(session: Session, people: dict[str, User]) -> None:
    obj = Group(name="thing", owner_id=people["a"].id)
    session.add(obj)
    session.flush()
    first = permissions.grant(
        session, FLOWISH, obj, principal_type="public", principal_id=None, role="viewer", created_by=None
    )
    again = permissions.grant(
        session, FLOWISH, obj, principal_type="public", principal_id=None, role="viewer", created_by=None
    )
    assert first.id == again.id
    with pytest.raises(InvalidInput, match="unknown role 'owner'"):
        permissions.grant(
            session, FLOWISH, obj, principal_type="public", principal_id=None, role="owner", created_by=None
        )


def test_group_membership_gives_group_roles(session: Session, people: dict[str, User]) -> None:
    a = principal(people["a"])
    group = create_group(session, a, GroupCreate(name="beamline"))
    add_member(session, a, group.id, "b", "member")
    b = principal(people["b"], frozenset({group.id}))
    with pytest.raises(PermissionDenied):  # members see the group but may not manage it
        add_member(session, b, group.id, "c", "member")
    add_member(session, a, group.id, "b", "manager")
    add_member(session, b, group.id, "c", "member")
    assert GROUP_POLICY.closure("manager") == {"manager", "viewer"}
