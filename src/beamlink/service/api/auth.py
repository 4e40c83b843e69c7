"""``/v1/auth``: tokens (password and client-credentials grants), whoami, token management."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, status
from pydantic import Field, TypeAdapter, ValidationError

from beamlink.errors import InvalidInput
from beamlink.protocol.auth import (
    ClientCredentialsGrant,
    Identity,
    PasswordGrant,
    TokenCreate,
    TokenInfo,
    TokenIssued,
)
from beamlink.protocol.common import Page
from beamlink.service.api.deps import CurrentPrincipal, PageParams, State
from beamlink.service.auth import clients, tokens, users
from beamlink.service.auth.models import ApiToken, Group, User
from beamlink.service.auth.principal import Principal
from beamlink.service.db.paging import paginate

router = APIRouter(prefix="/v1/auth", tags=["auth"])

_GRANT: TypeAdapter[PasswordGrant | ClientCredentialsGrant] = TypeAdapter(
    Annotated[PasswordGrant | ClientCredentialsGrant, Field(discriminator="grant_type")]
)


async def _grant_body(request: Request) -> dict[str, Any]:
    """JSON or OAuth2 form encoding; client credentials may also come as HTTP Basic (as OAuth2 allows)."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        body: Any = dict(parse_qsl(raw.decode("utf-8", "replace")))
    else:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"the body is not valid JSON ({exc.msg}) at character {exc.pos}",
                details={"errors": [{"field": "body", "message": exc.msg}]},
            ) from exc
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", details={"errors": [{"field": "body"}]})
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic ") and "client_id" not in body:
        try:
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput("the Basic authorization header is malformed") from exc
        body.setdefault("grant_type", "client_credentials")
        body.update(client_id=client_id, client_secret=secret)
    return body


def _token_info(row: ApiToken, current: str | None) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        identity_id=row.identity_id,
        username=row.identity.username,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        current=row.id == current,
    )


@router.post(
    "/token", response_model=TokenIssued, summary="Get a token (password or client_credentials grant)."
)
async def issue(request: Request, state: State) -> TokenIssued:
    body = await _grant_body(request)
    try:
        grant = _GRANT.validate_python(body)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "grant_type", "message": e["msg"]}
            for e in exc.errors()
        ]
        if "grant_type" not in body:
            problems = [{"field": "grant_type", "message": "required: 'password' or 'client_credentials'"}]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidInput(f"invalid token request: {summary}", details={"errors": problems}) from None
    settings = state.settings
    with state.db.transaction() as session:
        if isinstance(grant, PasswordGrant):
            identity = users.authenticate_password(session, grant.username, grant.password)
            ttl = settings.token_ttl_seconds
        else:
            identity = clients.authenticate_client(session, grant.client_id, grant.client_secret)
            ttl = settings.client_token_ttl_seconds
        row, raw = tokens.issue_token(
            session, identity, name=grant.token_name or f"{grant.grant_type} login", ttl_seconds=ttl
        )
        return TokenIssued(
            access_token=raw,
            token_id=row.id,
            expires_in=ttl,
            expires_at=row.expires_at,
            identity_id=identity.id,
            username=identity.username,
        )


@router.get("/whoami", response_model=Identity, summary="Who the token belongs to.")
def whoami(state: State, principal: CurrentPrincipal) -> Identity:
    return identity_of(state, principal)


def identity_of(state: State, principal: Principal) -> Identity:
    with state.db.transaction() as session:
        user = session.get(User, principal.id)
        assert user is not None
        names = sorted(g.name for g in (session.get(Group, gid) for gid in principal.group_ids) if g)
        return Identity(
            id=user.id,
            username=user.username,
            kind=user.kind,
            display_name=user.display_name,
            is_admin=user.is_admin,
            groups=names,
        )


@router.get(
    "/tokens", response_model=Page[TokenInfo], summary="Your tokens (admins: all=true for everyone's)."
)
def list_tokens(
    state: State, principal: CurrentPrincipal, page: PageParams, all: bool = Query(False)
) -> Page[TokenInfo]:
    with state.db.transaction() as session:
        query = tokens.tokens_query(principal, all_users=all)
        rows, next_cursor = paginate(session, query, ApiToken, page.limit, page.cursor)
        return Page(items=[_token_info(t, principal.token_id) for t in rows], next_cursor=next_cursor)


@router.post(
    "/tokens",
    response_model=TokenIssued,
    status_code=status.HTTP_201_CREATED,
    summary="Create another token for yourself (for a script).",
)
def create_token(state: State, principal: CurrentPrincipal, body: TokenCreate) -> TokenIssued:
    ttl = body.ttl_seconds or state.settings.token_ttl_seconds
    with state.db.transaction() as session:
        user = session.get(User, principal.id)
        assert user is not None
        row, raw = tokens.issue_token(session, user, name=body.name, ttl_seconds=ttl)
        return TokenIssued(
            access_token=raw,
            token_id=row.id,
            expires_in=ttl,
            expires_at=row.expires_at,
            identity_id=user.id,
            username=user.username,
        )


@router.delete(
    "/tokens/{token_id}", response_model=TokenInfo, summary="Revoke a token ('current': this one)."
)
def revoke_token(state: State, principal: CurrentPrincipal, token_id: str) -> TokenInfo:
    target = principal.token_id if token_id == "current" else token_id
    with state.db.transaction() as session:
        row = tokens.revoke_token(session, principal, target or "")
        return _token_info(row, principal.token_id)
