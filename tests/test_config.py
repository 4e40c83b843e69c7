from __future__ import annotations

from pathlib import Path

import pytest

from beamlink.config import load_settings
from beamlink.errors import ConfigError


def test_defaults_put_everything_under_beamlink_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.home == tmp_path
    assert settings.port == 8420
    assert settings.host == "127.0.0.1"
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/server/beamlink.db"
    assert settings.credentials_path == tmp_path / "credentials.json"
    assert settings.effective_public_url == "http://127.0.0.1:8420"


def test_toml_file_then_environment_then_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text('port = 9001\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    settings = load_settings()
    assert (settings.port, settings.host, settings.log_level) == (9001, "0.0.0.0", "DEBUG")
    assert settings.config_file == tmp_path / "config.toml"
    monkeypatch.setenv("BEAMLINK_PORT", "9002")
    assert load_settings().port == 9002
    assert load_settings(port=9003).port == 9003


def test_beamlink_table_in_toml_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "site.toml"
    path.write_text("[beamlink]\nport = 9100\n")
    monkeypatch.setenv("BEAMLINK_CONFIG", str(path))
    assert load_settings().port == 9100


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_PORT", "eighty")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "'port'" in caught.value.message
    assert "environment variable BEAMLINK_PORT" in caught.value.message
    assert caught.value.details["problems"][0]["key"] == "port"


def test_bad_file_value_names_the_key_and_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("port = 70000\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "'port'" in caught.value.message
    assert f"config file {tmp_path / 'config.toml'}" in caught.value.message


def test_unknown_key_in_file_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings()


def test_invalid_toml_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_missing_explicit_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="BEAMLINK_CONFIG"):
        load_settings()


def test_database_url_scheme_is_checked_and_postgresql_uses_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAMLINK_DATABASE_URL", "mysql://x@y/z")
    with pytest.raises(ConfigError, match="BEAMLINK_DATABASE_URL"):
        load_settings()
    monkeypatch.setenv("BEAMLINK_DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h/db"
