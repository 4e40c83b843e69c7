"""How the SDK finds the service and a token, and how it reports errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamlink.credentials import Credentials, write_credentials
from beamlink.errors import AuthenticationFailed, ConfigError, NotFound, ServiceUnreachable
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess, free_port


def test_url_and_token_come_from_the_credentials_file(service: ServiceProcess) -> None:
    client = Client(home=service.home)
    assert client.url == service.url
    assert client.whoami().is_admin


def test_environment_beats_the_credentials_file(
    service: ServiceProcess, admin: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_credentials(tmp_path / "credentials.json", Credentials(url="http://127.0.0.1:1", token="stale"))
    issued = admin.create_token("env")
    monkeypatch.setenv("BEAMLINK_URL", service.url)
    monkeypatch.setenv("BEAMLINK_TOKEN", issued.access_token)
    assert Client(home=tmp_path).whoami().id == admin.whoami().id


def test_client_credentials_from_the_environment(
    service: ServiceProcess, admin: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    created = admin.create_client("env bot")
    monkeypatch.setenv("BEAMLINK_CLIENT_ID", created.client_id)
    monkeypatch.setenv("BEAMLINK_CLIENT_SECRET", created.client_secret)
    assert Client(service.url, home=tmp_path).whoami().kind == "client"


def test_a_stored_token_for_another_service_is_not_sent(service: ServiceProcess, tmp_path: Path) -> None:
    write_credentials(tmp_path / "credentials.json", Credentials(url="http://elsewhere:1", token="secret"))
    with pytest.raises(AuthenticationFailed, match="needs a bearer token"):
        Client(service.url, home=tmp_path).whoami()


def test_unreachable_service_is_a_typed_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnreachable, match=url):
        Client(url, token="x").whoami()


def test_api_errors_arrive_as_the_same_classes(admin: Client) -> None:
    with pytest.raises(NotFound) as caught:
        admin.get_group("no-such-group")
    assert caught.value.code == "NOT_FOUND"


def test_damaged_credentials_file_says_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text("{not json")
    with pytest.raises(ConfigError, match="beamlink login"):
        Client(home=tmp_path)


def test_lists_are_cursor_pages_and_the_sdk_walks_them(admin: Client) -> None:
    names = [admin.create_group(f"paged {i} {admin.whoami().id[:4]}-{id(admin)}").name for i in range(5)]
    first = admin.request("GET", "/v1/groups", params={"limit": 2})
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    walked = [g.name for g in admin.list_groups(page_size=2)]
    assert set(names) <= set(walked)
    assert len(walked) == len(set(walked))
