"""``Client``: one method per route of the service, keyword-only options, typed results."""

from __future__ import annotations

from typing import Any

from beamlink.protocol.auth import (
    ClientInfo,
    ClientWithSecret,
    GrantInfo,
    GroupInfo,
    Identity,
    MemberInfo,
    PrincipalType,
    TokenInfo,
    TokenIssued,
    UserInfo,
)
from beamlink.sdk._base import quote_segment as q
from beamlink.sdk.compute import ComputeMixin
from beamlink.sdk.flows import FlowsMixin
from beamlink.sdk.schedules import SchedulesMixin
from beamlink.sdk.search import SearchMixin
from beamlink.sdk.transfer import TransferMixin

__all__ = ["Client"]


class Client(ComputeMixin, TransferMixin, FlowsMixin, SchedulesMixin, SearchMixin):
    """A connection to one beamlink service. See :class:`BaseClient` for how url and token are found."""

    # -- service ----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/health", auth=False)
        return result

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/version", auth=False)
        return result

    # -- auth -------------------------------------------------------------------------------------

    def login(self, username: str, password: str, *, token_name: str | None = None) -> TokenIssued:
        """Exchange a password for a token, and use that token from now on."""
        issued = TokenIssued.model_validate(
            self._post_token(
                {
                    "grant_type": "password",
                    "username": username,
                    "password": password,
                    "token_name": token_name,
                }
            )
        )
        self._token = issued.access_token
        return issued

    def login_client(
        self, client_id: str, client_secret: str, *, token_name: str | None = None
    ) -> TokenIssued:
        """Exchange client credentials for a token, and use that token from now on."""
        issued = TokenIssued.model_validate(
            self._post_token(
                {
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "token_name": token_name,
                }
            )
        )
        self._token = issued.access_token
        return issued

    def whoami(self) -> Identity:
        return self._get_model(Identity, "/v1/auth/whoami")

    def list_tokens(self, *, all_users: bool = False, page_size: int | None = None) -> list[TokenInfo]:
        return list(self._walk(TokenInfo, "/v1/auth/tokens", page_size=page_size, all=all_users or None))

    def create_token(self, name: str, *, ttl_seconds: int | None = None) -> TokenIssued:
        return TokenIssued.model_validate(
            self.request("POST", "/v1/auth/tokens", json={"name": name, "ttl_seconds": ttl_seconds})
        )

    def revoke_token(self, token_id: str = "current") -> TokenInfo:
        return TokenInfo.model_validate(self.request("DELETE", f"/v1/auth/tokens/{q(token_id)}"))

    # -- users ------------------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        password: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        is_admin: bool = False,
    ) -> UserInfo:
        body = {
            "username": username,
            "password": password,
            "display_name": display_name,
            "email": email,
            "is_admin": is_admin,
        }
        return UserInfo.model_validate(self.request("POST", "/v1/users", json=body))

    def list_users(self, *, page_size: int | None = None) -> list[UserInfo]:
        return list(self._walk(UserInfo, "/v1/users", page_size=page_size))

    def get_user(self, user: str) -> UserInfo:
        return self._get_model(UserInfo, f"/v1/users/{q(user)}")

    def update_user(self, user: str, **changes: Any) -> UserInfo:
        """Change only the given fields (display_name, email, password, is_active, is_admin)."""
        return UserInfo.model_validate(self.request("PATCH", f"/v1/users/{q(user)}", json=changes))

    # -- clients ----------------------------------------------------------------------------------

    def create_client(self, name: str) -> ClientWithSecret:
        return ClientWithSecret.model_validate(self.request("POST", "/v1/clients", json={"name": name}))

    def list_clients(self, *, page_size: int | None = None) -> list[ClientInfo]:
        return list(self._walk(ClientInfo, "/v1/clients", page_size=page_size))

    def delete_client(self, client_id: str) -> None:
        self.request("DELETE", f"/v1/clients/{q(client_id)}")

    # -- groups -----------------------------------------------------------------------------------

    def create_group(self, name: str, *, description: str | None = None) -> GroupInfo:
        return GroupInfo.model_validate(
            self.request("POST", "/v1/groups", json={"name": name, "description": description})
        )

    def list_groups(self, *, page_size: int | None = None) -> list[GroupInfo]:
        return list(self._walk(GroupInfo, "/v1/groups", page_size=page_size))

    def get_group(self, group: str) -> GroupInfo:
        return self._get_model(GroupInfo, f"/v1/groups/{q(group)}")

    def delete_group(self, group: str) -> None:
        self.request("DELETE", f"/v1/groups/{q(group)}")

    def add_member(self, group: str, username: str, *, role: str = "member") -> MemberInfo:
        return MemberInfo.model_validate(
            self.request("POST", f"/v1/groups/{q(group)}/members", json={"username": username, "role": role})
        )

    def remove_member(self, group: str, username: str) -> None:
        self.request("DELETE", f"/v1/groups/{q(group)}/members/{q(username)}")

    def share_group(
        self, group: str, *, principal_type: PrincipalType, principal: str | None = None, role: str = "viewer"
    ) -> GrantInfo:
        body = {"principal_type": principal_type, "principal": principal, "role": role}
        return GrantInfo.model_validate(self.request("POST", f"/v1/groups/{q(group)}/grants", json=body))

    def list_group_grants(self, group: str) -> list[GrantInfo]:
        result: list[GrantInfo] = self._parse(
            list[GrantInfo], self.request("GET", f"/v1/groups/{q(group)}/grants")
        )
        return result

    def unshare_group(self, group: str, grant_id: str) -> None:
        self.request("DELETE", f"/v1/groups/{q(group)}/grants/{q(grant_id)}")
