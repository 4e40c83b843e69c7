"""The `beamlink` command as a newcomer runs it, as real processes against a real service."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess, free_port
from helpers import MakeUser, RunCli


def test_version(cli: RunCli) -> None:
    result = cli("--version")
    assert result.code == 0
    assert result.stdout.startswith("beamlink ")


def test_whoami_and_token_list_work_at_once_with_the_first_start_token(cli: RunCli, admin: Client) -> None:
    me = admin.whoami()
    result = cli("whoami")
    assert result.code == 0, result.stderr
    assert me.username in result.stdout
    assert "(admin)" in result.stdout
    as_json = json.loads(cli("whoami", "--json").stdout)
    assert as_json["id"] == me.id
    table = cli("token", "list")
    assert table.code == 0
    assert "local admin (first start)" in table.stdout
    assert "active (this one)" in table.stdout
    tokens = json.loads(cli("token", "list", "--json").stdout)
    assert any(t["current"] for t in tokens)


def test_login_whoami_token_logout_as_a_new_user(
    cli: RunCli, make_user: MakeUser, service: ServiceProcess, tmp_path: Path
) -> None:
    user = make_user()
    home = tmp_path / "laptop"
    login = cli(
        "login",
        "--url",
        service.url,
        "-u",
        user.username,
        "--password-stdin",
        input=user.password + "\n",
        home=home,
    )
    assert login.code == 0, login.stderr
    assert f"as {user.username}" in login.stdout
    creds = home / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert cli("whoami", home=home).stdout.startswith(user.username)

    created = cli("token", "create", "nightly script", "--json", home=home)
    token = json.loads(created.stdout)
    assert Client(service.url, token=token["access_token"]).whoami().username == user.username
    assert cli("token", "revoke", token["token_id"], home=home).code == 0

    assert cli("logout", home=home).stdout.strip() == "Logged out."
    assert not creds.exists()
    after = cli("whoami", "--url", service.url, home=home)
    assert after.code == 3
    assert "AUTHENTICATION_FAILED" in after.stderr


def test_wrong_password_exits_3_without_saying_which_part(
    cli: RunCli, make_user: MakeUser, service: ServiceProcess, tmp_path: Path
) -> None:
    user = make_user()
    result = cli(
        "login", "--url", service.url, "-u", user.username, "--password-stdin", input="nope\n", home=tmp_path
    )
    assert result.code == 3
    assert "INVALID_CREDENTIALS" in result.stderr
    assert "username or password is wrong" in result.stderr
    assert not (tmp_path / "credentials.json").exists()


def test_client_login_from_env_vars_as_facilities_keep_them(
    cli: RunCli, service: ServiceProcess, tmp_path: Path
) -> None:
    created = cli("client", "create", "instrument watcher")
    assert created.code == 0, created.stderr
    dotenv = dict(
        line.split("=", 1) for line in created.stdout.splitlines() if line.startswith("BEAMLINK_CLIENT")
    )
    assert set(dotenv) == {"BEAMLINK_CLIENT_ID", "BEAMLINK_CLIENT_SECRET"}
    result = cli("login", "--url", service.url, home=tmp_path, env=dotenv)
    assert result.code == 0, result.stderr
    assert f"{dotenv['BEAMLINK_CLIENT_ID']}@clients" in result.stdout
    listed = json.loads(cli("client", "list", "--json").stdout)
    assert dotenv["BEAMLINK_CLIENT_ID"] in {c["client_id"] for c in listed}
    assert cli("client", "delete", dotenv["BEAMLINK_CLIENT_ID"]).code == 0
    assert cli("whoami", home=tmp_path).code == 3
    bad = cli(
        "login",
        "--url",
        service.url,
        "--client-id",
        dotenv["BEAMLINK_CLIENT_ID"],
        "--client-secret",
        "wrong",
        home=tmp_path / "other",
    )
    assert bad.code == 3
    assert "client id or client secret is wrong" in bad.stderr


def test_user_and_group_commands(cli: RunCli, service: ServiceProcess) -> None:
    name = f"ada-{uuid.uuid4().hex[:6]}"
    made = cli(
        "user", "create", name, "--display-name", "Ada 'Countess' Lovelace", "--password-stdin", input="pw\n"
    )
    assert made.code == 0, made.stderr
    users = cli("user", "list")
    assert name in users.stdout
    assert "Ada 'Countess' Lovelace" in users.stdout
    group = f"[bold]xpcs {uuid.uuid4().hex[:6]}"
    assert cli("group", "create", group, "--description", "8-ID team").code == 0
    assert cli("group", "add", group, name, "--manager").code == 0
    shown = cli("group", "show", group)
    assert name in shown.stdout
    assert "manager" in shown.stdout
    assert group in cli("group", "list").stdout  # shown verbatim, not read as Rich markup
    assert cli("group", "remove", group, name).code == 0
    assert json.loads(cli("group", "show", group, "--json").stdout)["members"] == []
    missing = cli("group", "remove", group, name)
    assert missing.code == 1
    assert "NOT_FOUND" in missing.stderr


def test_unreachable_service_exits_4_naming_the_url(cli: RunCli, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("whoami", "--url", url, home=tmp_path)
    assert result.code == 4
    assert url in result.stderr
    assert "beamlink server" in result.stderr


def test_db_upgrade_and_current(cli: RunCli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first = cli("db", "upgrade", "--database-url", url, home=tmp_path)
    assert first.code == 0, first.stderr
    assert "upgraded from empty" in first.stdout
    assert "up to date" in cli("db", "upgrade", "--database-url", url, home=tmp_path).stdout
    assert "revision:" in cli("db", "current", "--database-url", url, home=tmp_path).stdout


def test_server_refuses_a_port_in_use_naming_it(cli: RunCli, service: ServiceProcess, tmp_path: Path) -> None:
    result = cli("server", "--port", str(service.port), home=tmp_path)
    assert result.code == 1
    assert f"port {service.port} on 127.0.0.1 is already in use" in result.stderr
    assert os.listdir(tmp_path) == [] or not (tmp_path / "credentials.json").exists()
