"""``/v1/clients``: client credentials for automation, owned by the person who made them."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from beamlink.protocol.auth import ClientCreate, ClientInfo, ClientWithSecret
from beamlink.protocol.common import Page
from beamlink.service.api.deps import CurrentPrincipal, PageParams, State
from beamlink.service.auth import clients
from beamlink.service.auth.models import Client
from beamlink.service.db.paging import paginate

router = APIRouter(prefix="/v1/clients", tags=["clients"])


def client_info(client: Client) -> ClientInfo:
    return ClientInfo(
        client_id=client.id,
        name=client.name,
        owner_id=client.owner_id,
        identity_id=client.identity_id,
        username=client.identity.username,
        created_at=client.created_at,
    )


@router.post(
    "",
    response_model=ClientWithSecret,
    status_code=status.HTTP_201_CREATED,
    summary="Create a client; its secret is shown only in this answer.",
)
def create_client(state: State, principal: CurrentPrincipal, body: ClientCreate) -> ClientWithSecret:
    with state.db.transaction() as session:
        client, secret = clients.create_client(session, principal, body.name)
        return ClientWithSecret(**client_info(client).model_dump(), client_secret=secret)


@router.get("", response_model=Page[ClientInfo], summary="Your clients.")
def list_clients(state: State, principal: CurrentPrincipal, page: PageParams) -> Page[ClientInfo]:
    with state.db.transaction() as session:
        rows, next_cursor = paginate(
            session, clients.clients_query(principal), Client, page.limit, page.cursor
        )
        return Page(items=[client_info(c) for c in rows], next_cursor=next_cursor)


@router.delete(
    "/{client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a client and revoke everything it holds.",
)
def delete_client(state: State, principal: CurrentPrincipal, client_id: str) -> Response:
    with state.db.transaction() as session:
        clients.delete_client(session, principal, client_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
