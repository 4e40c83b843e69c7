"""Settings: environment (``BEAMLINK_*``), an optional TOML file, then defaults.

Precedence, highest first: values passed in code, environment variables, the TOML file, defaults. The
TOML file is ``$BEAMLINK_CONFIG`` when set, else ``$BEAMLINK_HOME/config.toml`` when it exists. A bad value
raises :class:`~beamlink.errors.ConfigError` naming the key and where the value came from.
"""

from __future__ import annotations

import getpass
import os
import ssl
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from beamlink.errors import ConfigError

__all__ = ["DEFAULT_PORT", "Settings", "default_home", "load_settings", "local_username"]

DEFAULT_PORT = 8420
ENV_PREFIX = "BEAMLINK_"


def local_username() -> str:
    """The OS user running this process (the first admin's default name, the login default)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "admin"


def default_home() -> Path:
    """``$BEAMLINK_HOME`` or ``~/.beamlink``."""
    raw = os.environ.get("BEAMLINK_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".beamlink"


class Settings(BaseSettings):
    """Service settings. Every field can be set as ``BEAMLINK_<NAME>`` or as ``name = ...`` in TOML."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    home: Path = Field(default_factory=default_home, description="Root of all local state.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite at $BEAMLINK_HOME/server/beamlink.db; "
        "postgresql+psycopg://user@host/db for PostgreSQL.",
    )
    host: str = Field(default="127.0.0.1", description="Interface the service listens on.")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="TCP port (0 picks a free one).")
    public_url: str | None = Field(
        default=None,
        description="URL clients and agents use to reach the service (default http://host:port).",
    )
    token_ttl_seconds: int = Field(
        default=14 * 24 * 3600, gt=0, description="Lifetime of tokens issued by a login."
    )
    client_token_ttl_seconds: int = Field(
        default=24 * 3600, gt=0, description="Lifetime of tokens issued by the client-credentials grant."
    )
    transfer_token_ttl_seconds: int = Field(
        default=6 * 3600,
        gt=0,
        description="Lifetime of the data tokens a transfer pulls from its source with; the destination "
        "agent asks for a fresh one before each expires, for as long as the transfer runs.",
    )
    compute_payload_limit: int = Field(
        default=10_000_000, gt=0, description="Largest serialized arguments of one task, in bytes."
    )
    compute_result_limit: int = Field(
        default=10_000_000,
        gt=0,
        description="Largest serialized result (or exception) of one task, in bytes.",
    )
    compute_result_ttl_seconds: int = Field(
        default=14 * 24 * 3600, gt=0, description="How long a finished task's result can be fetched."
    )
    compute_submission_ttl_seconds: int = Field(
        default=24 * 3600,
        gt=0,
        description="How long a batch's submission_id is remembered: the same batch sent again within it "
        "is answered with the first one's tasks; after it, it is queued anew.",
    )
    endpoint_lost_grace_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long an endpoint may stay disconnected before its running tasks are re-queued "
        "(up to each task's max_retries) or failed with EndpointLost.",
    )
    flow_max_steps: int = Field(
        default=10_000,
        ge=1,
        description="States a run may execute (retries included) before it fails "
        "with States.StepLimitExceeded: the guard against endless loops.",
    )
    flow_max_state_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="JSON size a run's state may reach before it fails with States.StateSizeExceeded.",
    )
    flow_allow_http_providers: bool = Field(
        default=False,
        description="Let flows call external Action Providers over plain http:// (development and tests; "
        "https:// is always allowed).",
    )
    smtp_url: str | None = Field(
        default=None,
        description="Mail server for the notify action's email, e.g. smtp://user:pass@mail.example.org:587 "
        "(smtps:// for TLS). Without it only webhooks are sent.",
    )
    smtp_from: str = Field(default="beamlink@localhost", description="Sender address of notify emails.")
    data_ca_file: Path | None = Field(
        default=None,
        description="CA certificates (PEM) the service trusts when it streams a file from a collection's "
        "https data server (the download route and the portal); default: the system's CAs.",
    )
    search_max_entry_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest content (JSON bytes) of one search entry; an ingest over it is refused.",
    )
    admin_username: str | None = Field(
        default=None, description="Name of the admin created on first start (default: the local user)."
    )
    admin_password: str | None = Field(
        default=None,
        description="Password of the admin created on first start (default: random, written to "
        "$BEAMLINK_HOME/server/admin-password).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_format: Literal["text", "json"] = Field(default="text", description="Log line format.")
    config_file: Path | None = Field(default=None, description="The TOML file these settings came from.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_ca_file")
    @classmethod
    def _ca_bundle(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser()
        if not path.is_file():
            raise ValueError(
                f"{path} is not a file: name the PEM file of the CA that signed the data servers"
            )
        try:
            ssl.create_default_context(cafile=path)  # fail at startup, not at the first download
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"{path} holds no usable CA certificate ({exc}): name a PEM file of CA certificates "
                "(-----BEGIN CERTIFICATE-----)"
            ) from None
        return path

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme = value.split(":", 1)[0]
        if not scheme.startswith(("sqlite", "postgresql")):
            raise ValueError(
                f"unsupported database scheme {scheme!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
            )
        if scheme == "postgresql":
            # Plain postgresql:// would pick psycopg2, which we do not ship; psycopg 3 is the driver.
            value = "postgresql+psycopg" + value[len("postgresql") :]
        return value

    @property
    def server_dir(self) -> Path:
        """Where the embedded database and server-side files live."""
        return self.home / "server"

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials.json"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.server_dir / 'beamlink.db'}"

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file is read by load_settings() and passed in as init values, so that an error can
        # name the file; here only code-given values and the environment remain.
        return (init_settings, env_settings)


def _config_file(home: Path) -> Path | None:
    explicit = os.environ.get("BEAMLINK_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"BEAMLINK_CONFIG names {path}, which is not a file: create it or unset BEAMLINK_CONFIG",
                details={"key": "BEAMLINK_CONFIG", "source": "environment", "path": str(path)},
            )
        return path
    candidate = home / "config.toml"
    return candidate if candidate.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}", details={"source": str(path)}
        ) from exc
    # Allow both a flat file and one with a [beamlink] table.
    table = data.get("beamlink", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [beamlink] must be a table", details={"source": str(path)})
    return table


def load_settings(**overrides: Any) -> Settings:
    """Build settings from code overrides, the environment and the TOML file; errors name key and source."""
    home_raw = overrides.get("home") or os.environ.get("BEAMLINK_HOME")
    home = Path(home_raw).expanduser() if home_raw else default_home()
    path = _config_file(home)
    file_values = _read_toml(path) if path else {}
    values: dict[str, Any] = {**file_values}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if path is not None:
        values.setdefault("config_file", path)
    try:
        # Code overrides and file values both arrive as init values; env beats file values, so pass
        # file values only where no env var is set.
        effective = {
            k: v for k, v in values.items() if k in overrides or f"{ENV_PREFIX}{k.upper()}" not in os.environ
        }
        return Settings(**effective)
    except ValidationError as exc:
        raise _config_error(exc, overrides, file_values, path) from None


def _config_error(
    exc: ValidationError, overrides: dict[str, Any], file_values: dict[str, Any], path: Path | None
) -> ConfigError:
    problems = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        env_name = f"{ENV_PREFIX}{key.upper()}"
        if key in overrides and overrides[key] is not None:
            source = "command-line option"
        elif env_name in os.environ:
            source = f"environment variable {env_name}"
        elif key in file_values:
            source = f"config file {path}"
        else:
            source = "default"
        if error["type"] == "extra_forbidden":
            message = f"unknown setting {key!r} (from {source}): remove it or check its spelling"
        else:
            message = f"setting {key!r} from {source}: {error['msg']} (got {error.get('input')!r})"
        problems.append({"key": key, "source": source, "message": message})
    text = "; ".join(p["message"] for p in problems)
    return ConfigError(f"invalid configuration: {text}", details={"problems": problems})
