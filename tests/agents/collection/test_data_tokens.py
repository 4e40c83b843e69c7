"""Data tokens: what a signed grant allows, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from beamlink.errors import InvalidInput, PermissionDenied, TokenExpired
from beamlink.protocol.data_tokens import (
    DataGrant,
    key_from_hex,
    key_to_hex,
    new_key,
    normalize_prefix,
    open_token,
    sign,
    token_expiry,
    verify,
)

KEY = bytes(range(32))
NOW = 1_800_000_000.0


def token(path: str = "raw/run7", operations: tuple[str, ...] = ("read", "list"), ttl: float = 60) -> str:
    return sign(KEY, collection_id="c1", path=path, operations=operations, ttl_seconds=ttl, now=NOW)


def check(tok: str, path: str = "raw/run7/frame.h5", operation: str = "read", **kw: object) -> DataGrant:
    options: dict[str, object] = {"collection_id": "c1", "now": NOW + 1, **kw}
    return verify(KEY, tok, path=path, operation=operation, **options)  # type: ignore[arg-type]


def test_a_token_grants_its_operations_below_its_path_until_it_expires() -> None:
    grant = check(token())
    assert grant == DataGrant("c1", "raw/run7", frozenset({"read", "list"}), NOW + 60)
    assert check(token(), "raw/run7").path == "raw/run7"  # the prefix itself is covered
    assert check(token(), "/raw//run7/./sub/", "list").operations == {"read", "list"}


def test_the_token_is_compact_urlsafe_and_unpadded() -> None:
    body, mac = token().split(".")
    assert "=" not in body + mac
    claim = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert claim == {"c": "c1", "p": "raw/run7", "o": ["list", "read"], "e": NOW + 60}
    assert len(base64.urlsafe_b64decode(mac + "=")) == 32  # HMAC-SHA256


def test_expired_tokens_say_when_they_expired() -> None:
    with pytest.raises(TokenExpired, match=r"expired at 2027-01-15T08:01:00\+00:00 \(40 s ago\)"):
        check(token(ttl=60), now=NOW + 100)
    with pytest.raises(TokenExpired):
        check(token(ttl=60), now=NOW + 60)  # the expiry instant itself is too late


def test_another_collection_is_refused() -> None:
    with pytest.raises(PermissionDenied, match="for collection c1, not c2") as caught:
        check(token(), collection_id="c2")
    assert caught.value.details == {"token_collection": "c1", "collection": "c2"}


def test_an_operation_not_granted_is_refused() -> None:
    with pytest.raises(PermissionDenied, match=r"does not allow 'checksum' \(it allows list, read\)"):
        check(token(), operation="checksum")


@pytest.mark.parametrize(
    ("prefix", "path", "allowed"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c/d", True),
        ("a/b", "a/bc", False),  # whole components only
        ("a/b", "a", False),
        ("a/b", "", False),
        ("a/b", "a/b/../c", False),  # normalised before the check
        ("a/b", "a/x/../b/c", True),
        ("", "anything/at/all", True),
        ("/", "", True),
    ],
)
def test_paths_outside_the_prefix_are_refused(prefix: str, path: str, allowed: bool) -> None:
    tok = token(path=prefix)
    if allowed:
        check(tok, path)
    else:
        with pytest.raises(PermissionDenied, match="covers"):
            check(tok, path)


def test_a_path_climbing_out_of_the_collection_is_refused() -> None:
    with pytest.raises(InvalidInput, match="leads out"):
        check(token(path=""), "../etc/passwd")
    with pytest.raises(InvalidInput, match="leads out"):
        token(path="a/../../b")


def test_tampered_or_foreign_tokens_are_refused() -> None:
    body, mac = token(operations=("read",)).split(".")
    claim = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claim["o"] = ["read", "write"]
    forged = base64.urlsafe_b64encode(json.dumps(claim).encode()).rstrip(b"=").decode()
    for bad in (f"{forged}.{mac}", f"{body}.{mac[:-2]}AA", body, "", "not a token", f"{body}.!!"):
        with pytest.raises(PermissionDenied, match="signature is not valid"):
            check(bad)
    other = sign(new_key(), collection_id="c1", path="", operations=["read"], ttl_seconds=60, now=NOW)
    with pytest.raises(PermissionDenied, match="signature"):
        check(other)


def test_a_signed_but_malformed_claim_is_refused() -> None:
    body = base64.urlsafe_b64encode(b'{"c": "c1"}').rstrip(b"=").decode()
    digest = hmac.new(KEY, body.encode(), hashlib.sha256).digest()
    mac = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    with pytest.raises(PermissionDenied, match="malformed"):
        check(f"{body}.{mac}")


def test_open_token_then_check_each_path_of_a_batch() -> None:
    grant = open_token(KEY, token(), collection_id="c1", now=NOW)
    grant.check("raw/run7/a", "read")
    with pytest.raises(PermissionDenied):
        grant.check("raw/run8/a", "read")


@pytest.mark.parametrize(
    ("operations", "ttl", "problem"),
    [((), 60, "operations"), (("read", "delete"), 60, "operations"), (("read",), 0, "ttl_seconds")],
)
def test_signing_checks_its_arguments(operations: tuple[str, ...], ttl: float, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        sign(KEY, collection_id="c1", path="", operations=operations, ttl_seconds=ttl)


def test_keys() -> None:
    key = new_key()
    assert len(key) == 32
    assert key != new_key()
    assert key_from_hex(key_to_hex(key)) == key
    with pytest.raises(InvalidInput, match="hex"):
        key_from_hex("not hex")
    with pytest.raises(InvalidInput, match="at least 16 bytes"):
        key_from_hex("abcd")


def test_normalize_prefix() -> None:
    assert normalize_prefix("/a//b/./c/") == "a/b/c"
    assert normalize_prefix("a/../b") == "b"
    assert normalize_prefix("") == normalize_prefix("/") == normalize_prefix(".") == ""
    assert normalize_prefix("caf\\xe9") == "caf\\xe9"  # wire form passes through unchanged
    with pytest.raises(InvalidInput, match="NUL"):
        normalize_prefix("a\x00b")


def test_the_holder_reads_the_expiry_without_the_key_but_that_proves_nothing() -> None:
    assert token_expiry(token(ttl=60)) == NOW + 60
    body, _, _ = token(ttl=60).partition(".")
    forged = body + "." + "A" * 43
    assert token_expiry(forged) == NOW + 60  # readable, and still refused where it counts
    with pytest.raises(PermissionDenied, match="signature"):
        check(forged)
    for garbage in ("", "not a token", "e30.sig", base64.urlsafe_b64encode(b"[1]").decode()):
        with pytest.raises(InvalidInput, match="not a data token"):
            token_expiry(garbage)
