"""The portal's signing key: derived from a random per-service secret kept in ``$BEAMLINK_HOME/server``.

The secret is made on first use (0600, created exclusively so two processes starting together agree) and
read back on every later start, so CSRF tokens survive a service restart. Deleting the file invalidates
every form a browser holds; nothing else depends on it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

__all__ = ["SECRET_FILE", "derived_key"]

log = logging.getLogger(__name__)

SECRET_FILE = "portal-secret"
_SECRET_BYTES = 32


def _read_or_create(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if len(text) >= 2 * _SECRET_BYTES:
        return bytes.fromhex(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_bytes(_SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it between our read and our create: use theirs
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(fresh.hex() + "\n")
    log.info("created the portal secret %s", path)
    return fresh


@functools.lru_cache(maxsize=16)
def derived_key(server_dir: Path, purpose: str) -> bytes:
    """A key for one purpose ("csrf", ...), so one secret can serve several without their tokens mixing."""
    secret = _read_or_create(server_dir / SECRET_FILE)
    return hmac.new(secret, f"beamlink-portal:{purpose}".encode(), hashlib.sha256).digest()
