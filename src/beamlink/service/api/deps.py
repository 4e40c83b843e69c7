"""Dependencies every router shares: the service state, the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from beamlink.errors import AuthenticationFailed
from beamlink.service.auth.principal import Principal
from beamlink.service.auth.tokens import authenticate, hash_token
from beamlink.service.db.paging import MAX_LIMIT
from beamlink.service.state import ServiceState

__all__ = ["CurrentPrincipal", "OptionalPrincipal", "PageParams", "State", "get_state", "principal_of_token"]

_bearer = HTTPBearer(auto_error=False, description="A token from POST /v1/auth/token or `beamlink login`.")


# The dependencies are ``async`` although they do no I/O on the fast path: FastAPI runs a plain ``def``
# dependency in the thread pool, and two such hops were a measurable share of a task submission.


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.beamlink
    return state


State = Annotated[ServiceState, Depends(get_state)]


async def principal_of_token(state: ServiceState, raw: str) -> Principal:
    """The principal a raw token stands for, through the principal cache; an AuthenticationFailed
    subclass says why not. Shared by bearer tokens here and the portal's session cookie."""
    token_hash = hash_token(raw)
    principal = state.principals.get(token_hash)
    if principal is not None:
        return principal
    generation = state.principals.generation

    def read() -> Principal:
        with state.db.transaction() as session:
            return authenticate(session, raw)

    principal = await anyio.to_thread.run_sync(read)
    if principal.token_expires_at is not None:
        state.principals.put(token_hash, principal, generation)
    return principal


async def _principal(
    state: ServiceState, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    if credentials is None:
        return None
    return await principal_of_token(state, credentials.credentials)


async def optional_principal(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal | None:
    return await _principal(state, credentials)


async def current_principal(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    principal = await _principal(state, credentials)
    if principal is None:
        raise AuthenticationFailed(
            "this route needs a bearer token: run `beamlink login`, or send `Authorization: Bearer <token>`",
            details={"reason": "missing"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


@dataclass(frozen=True)
class _Paging:
    limit: int
    cursor: str | None


async def _paging(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page.")] = None,
) -> _Paging:
    return _Paging(limit, cursor)


PageParams = Annotated[_Paging, Depends(_paging)]
