"""REST bodies of the auth domain: tokens, identities, users, clients, groups, grants."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ClientCreate",
    "ClientCredentialsGrant",
    "ClientInfo",
    "ClientWithSecret",
    "GrantCreate",
    "GrantInfo",
    "GroupCreate",
    "GroupInfo",
    "Identity",
    "MemberAdd",
    "MemberInfo",
    "PasswordGrant",
    "PrincipalType",
    "TokenCreate",
    "TokenInfo",
    "TokenIssued",
    "UserCreate",
    "UserInfo",
    "UserUpdate",
]

# Names are stored and shown verbatim: any printable text (quotes, unicode, SQL-looking text) is fine,
# control characters are not, and surrounding whitespace is a typo we strip.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120, pattern=r"^[^\s\x00-\x1f\x7f]+$"),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
IdentityKind = Literal["user", "client"]
PrincipalType = Literal["user", "group", "public", "all_authenticated_users"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasswordGrant(_Strict):
    """People log in with a username and password."""

    grant_type: Literal["password"]
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)
    token_name: str | None = Field(default=None, max_length=200, description="Label for the issued token.")


class ClientCredentialsGrant(_Strict):
    """Automation logs in with a client id and secret."""

    grant_type: Literal["client_credentials"]
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    token_name: str | None = Field(default=None, max_length=200)


class TokenIssued(BaseModel):
    """The answer to a token request: the secret token, shown only this once."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    token_id: str
    expires_in: int
    expires_at: datetime
    identity_id: str
    username: str


class TokenCreate(_Strict):
    """Create an extra named token for yourself (for a script, say)."""

    name: Name
    ttl_seconds: int | None = Field(default=None, gt=0, description="Lifetime; default the service's.")


class TokenInfo(BaseModel):
    """A token as listed: never the secret."""

    id: str
    name: str
    identity_id: str
    username: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    current: bool = Field(default=False, description="True for the token that made this request.")


class Identity(BaseModel):
    """Who a token belongs to (``whoami``)."""

    id: str
    username: str
    kind: IdentityKind
    display_name: str | None
    is_admin: bool
    groups: list[str] = Field(default_factory=list, description="Names of the groups the identity is in.")


class UserCreate(_Strict):
    username: Username
    password: Password
    display_name: Name | None = None
    email: str | None = Field(default=None, max_length=320)
    is_admin: bool = False


class UserUpdate(_Strict):
    """PATCH body: only the fields that are set change."""

    display_name: Name | None = None
    email: str | None = Field(default=None, max_length=320)
    password: Password | None = None
    is_active: bool | None = None
    is_admin: bool | None = None


class UserInfo(BaseModel):
    id: str
    username: str
    display_name: str | None
    email: str | None
    is_admin: bool
    is_active: bool
    created_at: datetime


class ClientCreate(_Strict):
    name: Name


class ClientInfo(BaseModel):
    client_id: str
    name: str
    owner_id: str
    identity_id: str
    username: str = Field(description="The client's own identity, used in grants: <client_id>@clients.")
    created_at: datetime


class ClientWithSecret(ClientInfo):
    client_secret: str = Field(description="Shown only once: store it (e.g. in a .env file).")


class GroupCreate(_Strict):
    name: Name
    description: str | None = Field(default=None, max_length=2000)


class MemberAdd(_Strict):
    username: str = Field(min_length=1)
    role: Literal["member", "manager"] = "member"


class MemberInfo(BaseModel):
    identity_id: str
    username: str
    role: str
    added_at: datetime


class GroupInfo(BaseModel):
    id: str
    name: str
    description: str | None
    owner_id: str
    owner: str
    created_at: datetime
    my_role: str | None = Field(default=None, description="owner, manager, member, or null (admin/grant).")
    members: list[MemberInfo] | None = Field(default=None, description="Present when showing one group.")


class GrantCreate(_Strict):
    """Give a principal a role on an object."""

    principal_type: PrincipalType
    principal: str | None = Field(
        default=None, description="Username (user) or group id/name (group); empty for public/all users."
    )
    role: str = Field(min_length=1, max_length=60)


class GrantInfo(BaseModel):
    id: str
    object_type: str
    object_id: str
    principal_type: PrincipalType
    principal_id: str | None
    principal_name: str | None
    role: str
    created_at: datetime
