"""Data-plane tokens: short-lived grants, signed by the service, checked by a collection agent.

The service signs a token that lets one agent (the destination of a transfer) read from another
agent's data server; the source agent checks it with the shared key, with no call to the service. A
token names one collection, one path prefix and the operations allowed under it, and expires soon::

    token = urlsafe_b64(claim) + "." + urlsafe_b64(HMAC-SHA256(key, urlsafe_b64(claim)))   # no padding
    claim = {"c": "<collection id>", "e": <expiry, unix seconds>, "o": ["list", "read"], "p": "raw/run7"}

``p`` is a root-relative, normalised collection path in wire form (see
:func:`beamlink.agents.collection.paths.to_wire`); ``""`` covers the whole collection. It matches whole
path components: ``"a/b"`` covers ``"a/b"`` and ``"a/b/c"``, never ``"a/bc"``. Operations:

============ ============================================================================
``read``     file bytes (``GET /v1/files/...``, ``POST /v1/batch``)
``list``     metadata: stat, directory pages, the transfer walk
``checksum`` digests of files or byte ranges
``write``    reserved for a push model; no route takes it yet
============ ============================================================================

Stdlib only (the service imports it to sign, agents to verify). Messages never contain the token or
the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import posixpath
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from beamlink.errors import InvalidInput, PermissionDenied, TokenExpired

__all__ = [
    "KEY_BYTES",
    "OPERATIONS",
    "DataGrant",
    "covers",
    "key_from_hex",
    "key_to_hex",
    "new_key",
    "normalize_prefix",
    "open_token",
    "sign",
    "token_expiry",
    "verify",
]

OPERATIONS = frozenset({"read", "list", "checksum", "write"})
KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class DataGrant:
    """What a verified token allows: ``operations`` on ``path`` and below in ``collection_id``."""

    collection_id: str
    path: str
    operations: frozenset[str]
    expires: float
    """Unix time after which the token is refused."""

    def check(self, path: str, operation: str) -> None:
        """PermissionDenied unless this grant allows ``operation`` on normalised ``path``.

        For a request on many paths (a batch), so the token is decoded and its MAC checked only once.
        """
        if not covers(self.path, path):
            raise PermissionDenied(
                f"the data token covers '{self.path or '/'}' and what is below it, not '{path or '/'}'",
                details={"token_path": self.path, "path": path},
            )
        if operation not in self.operations:
            allowed = ", ".join(sorted(self.operations))
            raise PermissionDenied(
                f"the data token does not allow '{operation}' (it allows {allowed})",
                details={"operation": operation, "operations": sorted(self.operations)},
            )


def new_key() -> bytes:
    """A fresh random signing key (32 bytes)."""
    return secrets.token_bytes(KEY_BYTES)


def key_to_hex(key: bytes) -> str:
    """``key`` as hex text, for config files and the agent's registration message."""
    return key.hex()


def key_from_hex(text: str) -> bytes:
    """The key :func:`key_to_hex` wrote; InvalidInput for text that is not hex of at least 16 bytes."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise InvalidInput("a data-token key must be hex text (as key_to_hex writes it)") from None
    if len(key) < 16:
        raise InvalidInput(f"a data-token key must have at least 16 bytes, this one has {len(key)}")
    return key


def normalize_prefix(path: str) -> str:
    """``path`` as a root-relative prefix: ``"/a//b/./c/"`` → ``"a/b/c"``; the root is ``""``.

    Refuses ``..`` that climbs above the root and NUL, which no collection path may hold. (The agent
    normalises request paths with the same rules before checking them.)
    """
    if "\x00" in path:
        raise InvalidInput("a path in a data token cannot contain a NUL character")
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise InvalidInput(f"the path {path!r} leads out of the collection with '..'")
        elif part not in ("", "."):
            depth += 1
    clean = posixpath.normpath("/" + path).lstrip("/")
    return "" if clean == "." else clean


def covers(prefix: str, path: str) -> bool:
    """Whether normalised ``prefix`` covers normalised ``path`` (whole components only)."""
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def sign(
    key: bytes,
    *,
    collection_id: str,
    path: str,
    operations: Iterable[str],
    ttl_seconds: float,
    now: float | None = None,
) -> str:
    """A token granting ``operations`` on ``path`` (and below) of ``collection_id`` for ``ttl_seconds``."""
    ops = sorted(set(operations))
    unknown = [op for op in ops if op not in OPERATIONS]
    if unknown or not ops:
        raise InvalidInput(
            f"data-token operations must be some of {', '.join(sorted(OPERATIONS))}; got {ops or 'none'}",
            details={"operations": ops},
        )
    if ttl_seconds <= 0:
        raise InvalidInput(f"ttl_seconds must be positive, got {ttl_seconds}")
    issued = time.time() if now is None else now
    claim = {"c": collection_id, "p": normalize_prefix(path), "o": ops, "e": round(issued + ttl_seconds, 3)}
    body = _b64(json.dumps(claim, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_mac(key, body))}"


def verify(
    key: bytes, token: str, *, collection_id: str, path: str, operation: str, now: float | None = None
) -> DataGrant:
    """The grant in ``token`` if it allows ``operation`` on ``path`` of ``collection_id`` now.

    TokenExpired once past its expiry (the message says when); PermissionDenied for a bad signature,
    another collection, a path outside the token's prefix or an operation it does not grant.
    ``path`` is normalised here too, so callers may pass it as it came.
    """
    grant = open_token(key, token, collection_id=collection_id, now=now)
    grant.check(normalize_prefix(path), operation)
    return grant


def open_token(key: bytes, token: str, *, collection_id: str, now: float | None = None) -> DataGrant:
    """The grant in ``token`` after checking its signature, expiry and collection, not yet a path.

    For requests on many paths: open once, then :meth:`DataGrant.check` each path.
    """
    body, dot, mac = token.partition(".")
    try:
        given = _unb64(mac) if dot else b""
    except (ValueError, binascii.Error):
        given = b""
    # compare_digest on equal-length inputs runs in constant time; a malformed MAC simply fails it.
    if not hmac.compare_digest(_mac(key, body), given):
        raise PermissionDenied(
            "the data token's signature is not valid (tampered with, or signed with another key)"
        )
    grant = _grant(body)
    clock = time.time() if now is None else now
    if clock >= grant.expires:
        when = datetime.fromtimestamp(grant.expires, UTC).isoformat(timespec="seconds")
        raise TokenExpired(
            f"the data token expired at {when} ({clock - grant.expires:.0f} s ago); ask the service for a "
            "new one (the transfer retries with a fresh token)",
            details={"expired_at": grant.expires},
        )
    if grant.collection_id != collection_id:
        raise PermissionDenied(
            f"the data token is for collection {grant.collection_id}, not {collection_id}",
            details={"token_collection": grant.collection_id, "collection": collection_id},
        )
    return grant


def token_expiry(token: str) -> float:
    """The unix time after which ``token`` is refused, read from its claim without the key.

    For the holder of a token (the destination agent, which has no key) to know when to ask for a
    fresh one. The signature is not checked, so this is never a reason to trust a token. InvalidInput
    for text that is not a token.
    """
    body, _, _ = token.partition(".")
    try:
        return float(json.loads(_unb64(body))["e"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidInput("not a data token: its claim has no readable expiry") from None


def _grant(body: str) -> DataGrant:
    """The claim of a token whose signature checked out (so a malformed one is a signing bug)."""
    try:
        claim = json.loads(_unb64(body))
        return DataGrant(
            collection_id=str(claim["c"]),
            path=str(claim["p"]),
            operations=frozenset(str(op) for op in claim["o"]),
            expires=float(claim["e"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise PermissionDenied("the data token's claim is malformed") from None


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii", "replace"), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
