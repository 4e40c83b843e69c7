"""Auth through the public HTTP surface of a real service process, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from beamlink.errors import (
    AuthenticationFailed,
    InvalidCredentials,
    InvalidInput,
    MethodNotAllowed,
    RouteNotFound,
    TokenExpired,
    TokenRevoked,
)
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from helpers import MakeUser


def test_health_version_and_openapi_need_no_token(service: ServiceProcess) -> None:
    assert httpx.get(f"{service.url}/health").json()["status"] == "ok"
    version = httpx.get(f"{service.url}/version").json()
    assert version["api_version"] == "v1"
    assert version["schema_revision"]
    assert httpx.get(f"{service.url}/docs").status_code == 200
    paths = httpx.get(f"{service.url}/openapi.json").json()["paths"]
    assert "/v1/auth/token" in paths


def test_password_grant_gives_a_working_token(make_user: MakeUser, service: ServiceProcess) -> None:
    user = make_user()
    issued = Client(service.url, token="-").login(user.username, user.password)
    assert issued.token_type == "bearer"
    assert issued.expires_in > 0
    me = Client(service.url, token=issued.access_token).whoami()
    assert (me.username, me.kind, me.is_admin) == (user.username, "user", False)


def test_form_encoded_grant_as_oauth2_clients_send_it(make_user: MakeUser, service: ServiceProcess) -> None:
    user = make_user()
    answer = httpx.post(
        f"{service.url}/v1/auth/token",
        data={"grant_type": "password", "username": user.username, "password": user.password},
    )
    assert answer.status_code == 200
    assert answer.json()["access_token"].startswith("blk_")


def test_wrong_password_and_unknown_user_answer_the_same_401(
    make_user: MakeUser, service: ServiceProcess
) -> None:
    user = make_user()
    answers = [
        httpx.post(
            f"{service.url}/v1/auth/token",
            json={"grant_type": "password", "username": name, "password": password},
        )
        for name, password in ((user.username, "wrong"), ("nobody-at-all", user.password))
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["code"] == "INVALID_CREDENTIALS"
    assert user.username not in answers[0].text
    with pytest.raises(InvalidCredentials):
        Client(service.url, token="-").login(user.username, "wrong")


def test_client_credentials_grant(admin: Client, service: ServiceProcess) -> None:
    created = admin.create_client("beamline 8-ID watcher")
    assert created.username == f"{created.client_id}@clients"
    bot = Client(service.url, client_id=created.client_id, client_secret=created.client_secret)
    me = bot.whoami()
    assert (me.username, me.kind) == (created.username, "client")
    basic = base64.b64encode(f"{created.client_id}:{created.client_secret}".encode()).decode()
    via_basic = httpx.post(
        f"{service.url}/v1/auth/token",
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials"},
    )
    assert via_basic.status_code == 200
    with pytest.raises(InvalidCredentials, match="client id or client secret"):
        Client(service.url, token="-").login_client(created.client_id, "not-the-secret")
    admin.delete_client(created.client_id)
    with pytest.raises(AuthenticationFailed):  # its tokens die with it
        Client(service.url, token=bot.token).whoami()


def test_revoked_token_is_refused(make_user: MakeUser, service: ServiceProcess) -> None:
    user = make_user()
    extra = user.client.create_token("script")
    scripted = Client(service.url, token=extra.access_token)
    assert scripted.whoami().username == user.username
    user.client.revoke_token(extra.token_id)
    with pytest.raises(TokenRevoked):
        scripted.whoami()
    listed = {t.id: t for t in user.client.list_tokens()}
    assert listed[extra.token_id].revoked_at is not None


def test_expired_token_is_refused(make_user: MakeUser, service: ServiceProcess) -> None:
    user = make_user()
    short = user.client.create_token("short-lived", ttl_seconds=1)
    time.sleep(1.2)
    with pytest.raises(TokenExpired, match="expired"):
        Client(service.url, token=short.access_token).whoami()


def test_missing_and_garbage_tokens(service: ServiceProcess) -> None:
    bare = httpx.get(f"{service.url}/v1/auth/whoami")
    assert bare.status_code == 401
    assert bare.json()["code"] == "AUTHENTICATION_FAILED"
    assert bare.headers["www-authenticate"] == "Bearer"
    with pytest.raises(AuthenticationFailed, match="not valid"):
        Client(service.url, token="blk_made_up").whoami()


def test_tokens_list_marks_the_current_one_and_never_shows_secrets(admin: Client) -> None:
    tokens = admin.list_tokens()
    assert sum(t.current for t in tokens) == 1
    assert all("blk_" not in t.model_dump_json() for t in tokens)


def test_malformed_json_body_is_a_422_naming_the_problem(admin: Client, service: ServiceProcess) -> None:
    headers = {"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"}
    answer = httpx.post(f"{service.url}/v1/groups", content=b'{"name": ', headers=headers)
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "INVALID_INPUT"
    assert "not valid JSON" in body["message"]


def test_missing_and_wrong_fields_are_named(admin: Client, service: ServiceProcess) -> None:
    with pytest.raises(InvalidInput) as caught:
        admin.request("POST", "/v1/groups", json={"description": "no name"})
    assert caught.value.details["errors"][0]["field"] == "name"
    with pytest.raises(InvalidInput) as caught:
        admin.request("POST", "/v1/users", json={"username": "x", "password": "y", "is_admin": "perhaps"})
    assert [e["field"] for e in caught.value.details["errors"]] == ["is_admin"]
    with pytest.raises(InvalidInput, match="grant_type"):
        admin.request("POST", "/v1/auth/token", json={"username": "x"}, auth=False)


def test_unknown_route_and_wrong_method(admin: Client) -> None:
    with pytest.raises(RouteNotFound, match="/v1/nowhere"):
        admin.request("GET", "/v1/nowhere")
    with pytest.raises(MethodNotAllowed):
        admin.request("PUT", "/v1/auth/whoami")


def test_request_id_is_echoed_or_made(service: ServiceProcess) -> None:
    answer = httpx.get(f"{service.url}/health", headers={"X-Request-ID": "trace-123"})
    assert answer.headers["x-request-id"] == "trace-123"
    assert len(httpx.get(f"{service.url}/health").headers["x-request-id"]) == 16
    # The access log carries the id too.
    deadline = time.monotonic() + 5
    while "[trace-123] GET /health 200" not in service.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "[trace-123] GET /health 200" in service.log_path.read_text()
