"""Password and client-secret hashing with argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_secret", "needs_rehash", "verify_secret"]

_hasher = PasswordHasher()
# A fixed hash to verify against when the user does not exist, so a wrong username costs the same time
# as a wrong password and the timing tells nothing.
_DUMMY = _hasher.hash("beamlink-dummy-password")


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY, secret) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
