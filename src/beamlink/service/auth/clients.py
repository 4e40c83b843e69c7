"""Client credentials: an automation identity with a secret, owned by a person."""

from __future__ import annotations

import secrets

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from beamlink.errors import InvalidCredentials, NotFound
from beamlink.service.auth.models import ApiToken, Client, User
from beamlink.service.auth.passwords import hash_secret, verify_secret
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import new_id

__all__ = ["authenticate_client", "clients_query", "create_client", "delete_client"]

CLIENT_SUFFIX = "@clients"


def create_client(session: Session, owner: Principal, name: str) -> tuple[Client, str]:
    """A new client; returns it with its secret (shown once)."""
    client_id = new_id()
    secret = secrets.token_urlsafe(32)
    identity = User(username=f"{client_id}{CLIENT_SUFFIX}", kind="client", display_name=name)
    session.add(identity)
    session.flush()
    client = Client(
        id=client_id, name=name, secret_hash=hash_secret(secret), owner_id=owner.id, identity_id=identity.id
    )
    client.identity = identity
    session.add(client)
    session.flush()
    return client, secret


def clients_query(principal: Principal) -> Select[Client]:
    """The caller's clients (admins: all), for paging."""
    query = select(Client)
    if not principal.is_admin:
        query = query.where(Client.owner_id == principal.id)
    return query


def _visible(session: Session, principal: Principal, client_id: str) -> Client:
    client = session.get(Client, client_id)
    if client is None or (client.owner_id != principal.id and not principal.is_admin):
        raise NotFound(f"client {client_id} not found (or you have no access to it)")
    return client


def delete_client(session: Session, principal: Principal, client_id: str) -> None:
    """Delete the client, its identity and every token it holds."""
    client = _visible(session, principal, client_id)
    identity = client.identity
    for token in session.scalars(select(ApiToken).where(ApiToken.identity_id == identity.id)):
        session.delete(token)
    session.delete(client)
    session.delete(identity)


def authenticate_client(session: Session, client_id: str, secret: str) -> User:
    """The client's identity for an id/secret pair; a wrong id and a wrong secret look the same."""
    client = session.get(Client, client_id)
    ok = verify_secret(client.secret_hash if client else None, secret)
    if not ok or client is None or not client.identity.is_active:
        raise InvalidCredentials("the client id or client secret is wrong")
    return client.identity
