"""The local credentials file, ``$BEAMLINK_HOME/credentials.json`` (mode 0600).

Written by the service on its first start (for the local admin) and by ``beamlink login``; read by the SDK
and the CLI. It holds the service URL and one bearer token, nothing else secret.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ValidationError

from beamlink.errors import ConfigError

__all__ = ["Credentials", "read_credentials", "remove_credentials", "write_credentials"]


class Credentials(BaseModel):
    """What ``credentials.json`` holds."""

    url: str
    token: str
    token_id: str | None = None
    username: str | None = None
    expires_at: str | None = None


def write_credentials(path: Path, credentials: Credentials) -> None:
    """Write atomically with mode 0600, so no other user ever reads the token, even mid-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".credentials.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(credentials.model_dump_json(indent=2))
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_credentials(path: Path) -> Credentials | None:
    """The stored credentials, or None when there is no file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Credentials.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ConfigError(
            f"credentials file {path} is damaged ({exc.__class__.__name__}): "
            "delete it and run `beamlink login`",
            details={"path": str(path)},
        ) from exc


def remove_credentials(path: Path) -> bool:
    """Delete the file; True when there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
