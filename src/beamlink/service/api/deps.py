"""Dependencies every router shares: the service state, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from beamlink.errors import AuthenticationFailed
from beamlink.service.auth.principal import Principal
from beamlink.service.auth.tokens import authenticate
from beamlink.service.state import ServiceState

__all__ = ["CurrentPrincipal", "OptionalPrincipal", "State"]

_bearer = HTTPBearer(auto_error=False, description="A token from POST /v1/auth/token or `beamlink login`.")


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.beamlink
    return state


State = Annotated[ServiceState, Depends(get_state)]


def _principal(state: ServiceState, credentials: HTTPAuthorizationCredentials | None) -> Principal | None:
    if credentials is None:
        return None
    with state.db.transaction() as session:
        return authenticate(session, credentials.credentials)


def optional_principal(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal | None:
    return _principal(state, credentials)


def current_principal(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    principal = _principal(state, credentials)
    if principal is None:
        raise AuthenticationFailed(
            "this route needs a bearer token: run `beamlink login`, or send `Authorization: Bearer <token>`",
            details={"reason": "missing"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
