"""Fresh data tokens for a running transfer, asked for on the collection WebSocket spoken by hand: only
the destination's agent gets one, with the job's scope and a later expiry, and only while the transfer is
ACTIVE; otherwise the answer says why."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from websockets.sync.client import ClientConnection

from beamlink.protocol.collections import CollectionRegister
from beamlink.protocol.data_tokens import token_expiry, verify
from beamlink.protocol.transfers import (
    TOKEN_ASK_LATER,
    TransferCreate,
    TransferError,
    TransferItem,
    TransferToken,
)
from beamlink.service.launcher import ServiceProcess
from helpers import MakeUser, UserHandle
from ws_helpers import agent_socket, receive

SIX_HOURS = 6 * 3600  # the default of BEAMLINK_TRANSFER_TOKEN_TTL_SECONDS


@dataclass
class Registered:
    id: str
    secret: str
    data_key: bytes


def register(user: UserHandle, name: str, root: Path) -> Registered:
    found = user.client.register_collection(
        CollectionRegister(name=name, host="test-host", root_path=str(root))
    )
    return Registered(found.id, found.agent_secret, bytes.fromhex(found.data_key))


@contextmanager
def collection_agent(service: ServiceProcess, collection: Registered) -> Iterator[ClientConnection]:
    hello = {"type": "collection_hello", "agent_version": "test", "host": "test-host", "root_path": "/"}
    with agent_socket(service, collection.id, collection.secret, hello, "collection_welcome") as ws:
        yield ws


def ask(ws: ClientConnection, transfer_id: str) -> TransferToken:
    ws.send(json.dumps({"type": "transfer_token_request", "transfer_id": transfer_id}))
    return TransferToken.model_validate(receive(ws, "transfer_token"))


def claim(token: str) -> dict[str, Any]:
    """The scope of a token: everything in its claim but the expiry."""
    body = token.split(".")[0]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.pop("e")
    return data


def submit(user: UserHandle) -> str:
    body = TransferCreate(
        source="instrument",
        destination="facility",
        items=[
            TransferItem(source_path="raw/run7/a.h5", destination_path="in/a.h5"),
            TransferItem(source_path="raw/run7/b.h5", destination_path="in/b.h5"),
        ],
    )
    return user.client.submit_transfer(body).id


def refusal(answer: TransferToken) -> TransferError:
    assert answer.token is None
    assert answer.error is not None
    return answer.error


def test_the_destination_gets_a_fresh_token_with_the_job_scope(
    service: ServiceProcess, make_user: MakeUser, tmp_path: Path
) -> None:
    user = make_user("tokens")
    source = register(user, "instrument", tmp_path)
    destination = register(user, "facility", tmp_path)
    with collection_agent(service, source), collection_agent(service, destination) as ws:
        transfer_id = submit(user)
        job = receive(ws, "transfer_job")
        first = job["source"]["token"]
        time.sleep(0.01)  # so that the fresh token's expiry is later
        answer = ask(ws, transfer_id)

    assert answer.token is not None
    assert answer.expires_at is not None
    assert answer.error is None
    assert (
        claim(answer.token)
        == claim(first)
        == {"c": source.id, "p": "raw/run7", "o": ["checksum", "list", "read"]}
    )
    assert token_expiry(answer.token) == answer.expires_at.timestamp() > token_expiry(first)
    assert abs(answer.expires_at.timestamp() - (time.time() + SIX_HOURS)) < 60
    verify(source.data_key, answer.token, collection_id=source.id, path="raw/run7/a.h5", operation="read")
    events = user.client.transfer_events(transfer_id)
    assert [e.code for e in events].count("TOKEN_RENEWED") == 1


def test_a_token_is_refused_to_another_collection_an_unknown_or_ended_transfer_and_later_while_inactive(
    service: ServiceProcess, make_user: MakeUser, tmp_path: Path
) -> None:
    user = make_user("tokens")
    source = register(user, "instrument", tmp_path)
    destination = register(user, "facility", tmp_path)
    with collection_agent(service, destination) as ws:
        with collection_agent(service, source) as source_ws:
            transfer_id = submit(user)
            receive(ws, "transfer_job")
            not_mine = refusal(ask(source_ws, transfer_id))
            assert not_mine.code == "NOT_FOUND"
            assert source.id in not_mine.message
            assert refusal(ask(ws, "no-such-transfer")).code == "NOT_FOUND"
        # The source is away: the transfer waits, and a token may be had once it runs again.
        deadline = time.monotonic() + 10
        while user.client.get_transfer(transfer_id).state != "INACTIVE":
            assert time.monotonic() < deadline, "the transfer never became INACTIVE"
            time.sleep(0.05)
        later = refusal(ask(ws, transfer_id))
        assert later.code == TOKEN_ASK_LATER
        assert "ask again" in later.message

        user.client.cancel_transfer(transfer_id)
        ended = refusal(ask(ws, transfer_id))
        assert ended.code == "TRANSFER_ENDED"
        assert "FAILED" in ended.message
    assert "TOKEN_RENEWED" not in [e.code for e in user.client.transfer_events(transfer_id)]


def test_a_token_answer_carries_a_token_with_its_expiry_or_an_error() -> None:
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    assert TransferToken(transfer_id="t", token="x", expires_at=expiry).token == "x"
    assert TransferToken(transfer_id="t", error=TransferError(code="C", message="m")).error is not None


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"token": "x"},
        {"expires_at": datetime(2030, 1, 1, tzinfo=UTC), "error": {"code": "C", "message": "m"}},
        {
            "token": "x",
            "expires_at": datetime(2030, 1, 1, tzinfo=UTC),
            "error": {"code": "C", "message": "m"},
        },
    ],
    ids=["nothing", "token-without-expiry", "expiry-with-error", "token-and-error"],
)
def test_a_token_answer_with_neither_or_a_mix_is_invalid(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="either token and expires_at, or error"):
        TransferToken(transfer_id="t", **fields)
