"""The service as an operating-system process: first start, restart, refusal to start, shutdown."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from beamlink.credentials import read_credentials
from beamlink.errors import StartupError
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess


def test_first_start_creates_an_admin_and_a_private_token_then_restart_keeps_them(
    db_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with ServiceProcess(home, database_url=db_url) as service:
        creds = read_credentials(home / "credentials.json")
        assert creds is not None
        assert creds.url == service.url
        assert stat.S_IMODE((home / "credentials.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((home / "server" / "admin-password").stat().st_mode) == 0o600
        admin = Client(service.url, home=home)
        me = admin.whoami()
        assert me.is_admin
        password = (home / "server" / "admin-password").read_text().strip()
        Client(service.url, token="-").login(me.username, password)
        group = admin.create_group("kept across restarts")
    # Same port, same database: the token and the group survive; no second admin is made.
    with ServiceProcess(home, port=service.port, database_url=db_url) as again:
        admin = Client(again.url, home=home)
        assert admin.whoami().id == me.id
        assert admin.get_group(group.id).name == "kept across restarts"
        assert [u.username for u in admin.list_users()] == [me.username]


def test_sigterm_shuts_down_gracefully_with_exit_code_0(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path).start()
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(15) == 0
    log = service.log_path.read_text()
    assert "shutting down" in log
    assert "shutdown complete" in log


def test_sigint_also_shuts_down_gracefully(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path).start()
    assert service.process is not None
    service.process.send_signal(signal.SIGINT)
    assert service.process.wait(15) == 0
    assert "shutdown complete" in service.log_path.read_text()


def test_database_path_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    bad = blocker / "sub" / "beamlink.db"
    with pytest.raises(StartupError) as caught:
        ServiceProcess(tmp_path / "home", database_url=f"sqlite:///{bad}").start(timeout=20)
    assert str(blocker / "sub") in caught.value.message
    assert "BEAMLINK_HOME" in caught.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any directory, so this cannot fail as root")
def test_read_only_database_directory_is_named(tmp_path: Path) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        with pytest.raises(StartupError, match=str(readonly)):
            ServiceProcess(tmp_path / "home", database_url=f"sqlite:///{readonly / 'b.db'}").start(timeout=20)
    finally:
        readonly.chmod(0o700)


def test_bad_setting_stops_the_server_with_the_key_and_source(tmp_path: Path) -> None:
    env = {**os.environ, "BEAMLINK_HOME": str(tmp_path), "BEAMLINK_LOG_LEVEL": "loud"}
    done = subprocess.run(
        [sys.executable, "-m", "beamlink", "server"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert "'log_level'" in done.stderr
    assert "environment variable BEAMLINK_LOG_LEVEL" in done.stderr


def test_json_logs_carry_the_request_id(tmp_path: Path) -> None:
    import json

    import httpx

    with ServiceProcess(tmp_path, env={"BEAMLINK_LOG_FORMAT": "json"}) as service:
        httpx.get(f"{service.url}/health", headers={"X-Request-ID": "json-trace-1"})
    lines = [json.loads(line) for line in service.log_path.read_text().splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry.get("request_id") == "json-trace-1"]
    assert access
    assert access[0]["path"] == "/health"
    assert access[0]["status"] == 200
    assert "duration_ms" in access[0]
