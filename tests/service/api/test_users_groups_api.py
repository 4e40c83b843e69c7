"""Users, clients, groups and sharing; and one user never reaching another's objects."""

from __future__ import annotations

import uuid

import pytest

from beamlink.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from helpers import MakeUser

NASTY = [
    "Robert'); DROP TABLE users;--",
    "quote \" and ' both",
    "Ünïcødé 漢字 🔬",
    "[bold]not markup[/bold]",
    "100% \\ back\\slash",
]


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("text", NASTY)
def test_names_are_stored_and_shown_verbatim(admin: Client, make_user: MakeUser, text: str) -> None:
    user = make_user()
    name = unique(text)
    group = user.client.create_group(name, description=text)
    assert (group.name, group.description) == (name, text)
    assert user.client.get_group(group.id).name == name
    assert [g.name for g in user.client.list_groups()] == [name]
    token = user.client.create_token(text)
    assert {t.name for t in user.client.list_tokens()} >= {text}
    assert user.client.revoke_token(token.token_id).name == text
    changed = user.client.update_user(user.username, display_name=text)
    assert changed.display_name == text
    assert admin.create_client(text).name == text


def test_only_admins_create_users(make_user: MakeUser) -> None:
    user = make_user()
    with pytest.raises(PermissionDenied, match="administrator"):
        user.client.create_user("someone-else", "pw")


def test_duplicate_username_is_a_conflict(admin: Client) -> None:
    name = f"dup-{uuid.uuid4().hex[:6]}"
    admin.create_user(name, "pw")
    with pytest.raises(AlreadyExists, match=name):
        admin.create_user(name, "pw")


def test_username_with_whitespace_or_control_characters_is_refused(admin: Client) -> None:
    with pytest.raises(InvalidInput, match="username"):
        admin.create_user("two words", "pw")


def test_patch_changes_only_what_was_sent(make_user: MakeUser, service: ServiceProcess) -> None:
    user = make_user()
    user.client.update_user(user.username, display_name="Ada", email="ada@example.org")
    after = user.client.update_user(user.username, display_name="Ada L.")
    assert (after.display_name, after.email) == ("Ada L.", "ada@example.org")
    with pytest.raises(PermissionDenied, match="is_admin"):
        user.client.update_user(user.username, is_admin=True)
    user.client.update_user(user.username, password="new-password")
    Client(service.url, token="-").login(user.username, "new-password")


def test_user_b_cannot_read_list_or_change_user_a_objects(
    make_user: MakeUser, service: ServiceProcess
) -> None:
    a, b = make_user("a"), make_user("b")
    group = a.client.create_group(unique("a-private"))
    a_client = a.client.create_client(unique("a-bot"))
    a_token = a.client.create_token("a-script")

    for call in (
        lambda: b.client.get_group(group.id),
        lambda: b.client.get_group(group.name),
        lambda: b.client.add_member(group.id, b.username),
        lambda: b.client.delete_group(group.id),
        lambda: b.client.list_group_grants(group.id),
        lambda: b.client.share_group(group.id, principal_type="user", principal=b.username),
        lambda: b.client.delete_client(a_client.client_id),
        lambda: b.client.revoke_token(a_token.token_id),
    ):
        with pytest.raises(NotFound):
            call()
    assert b.client.list_groups() == []
    assert b.client.list_clients() == []
    assert {t.username for t in b.client.list_tokens()} == {b.username}
    with pytest.raises(PermissionDenied):
        b.client.update_user(a.username, display_name="hijacked")
    # Nothing of A's changed.
    assert a.client.get_group(group.id).members == []
    assert [c.client_id for c in a.client.list_clients()] == [a_client.client_id]
    assert next(t for t in a.client.list_tokens() if t.id == a_token.token_id).revoked_at is None


def test_membership_and_grants_make_a_group_visible(make_user: MakeUser) -> None:
    a, b, c = make_user("a"), make_user("b"), make_user("c")
    group = a.client.create_group(unique("beamline"))
    member = a.client.add_member(group.id, b.username)
    assert member.role == "member"
    seen = b.client.get_group(group.id)
    assert seen.my_role == "member"
    assert [m.username for m in seen.members or []] == [b.username]
    with pytest.raises(PermissionDenied, match="manager"):
        b.client.add_member(group.id, c.username)
    with pytest.raises(NotFound):
        c.client.get_group(group.id)

    grant = a.client.share_group(group.id, principal_type="all_authenticated_users", role="viewer")
    assert c.client.get_group(group.id).name == group.name
    assert group.id in {g.id for g in c.client.list_groups()}
    a.client.unshare_group(group.id, grant.id)
    with pytest.raises(NotFound):
        c.client.get_group(group.id)
    with pytest.raises(InvalidInput, match="unknown role"):
        a.client.share_group(group.id, principal_type="public", role="owner")

    a.client.remove_member(group.id, b.username)
    with pytest.raises(NotFound):
        b.client.get_group(group.id)


def test_whoami_lists_group_names(make_user: MakeUser) -> None:
    a, b = make_user("a"), make_user("b")
    group = a.client.create_group(unique("xpcs-team"))
    a.client.add_member(group.id, b.username, role="manager")
    assert group.name in b.client.whoami().groups


def test_only_the_owner_deletes_a_group(make_user: MakeUser) -> None:
    a, b = make_user("a"), make_user("b")
    group = a.client.create_group(unique("owned"))
    a.client.add_member(group.id, b.username, role="manager")
    with pytest.raises(PermissionDenied, match="owner"):
        b.client.delete_group(group.id)
    a.client.delete_group(group.id)
    with pytest.raises(NotFound):
        a.client.get_group(group.id)
