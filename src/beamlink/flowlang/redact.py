"""Hide secrets before a document is shown, logged or stored as a run's visible output."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["ALWAYS_PRIVATE_KEYS", "PRIVATE_PREFIX", "REDACTED", "is_private_key", "redact"]

#: What a hidden value is replaced with. The key stays, so a reader sees that something was hidden.
REDACTED = "[redacted]"

#: Any key starting with this is private wherever it is (Globus Flows' rule for run state).
PRIVATE_PREFIX = "_private"

#: Keys that are always private: role tokens passed in the run input (``RunAs`` roles).
ALWAYS_PRIVATE_KEYS = frozenset({"_tokens"})


def is_private_key(key: str, private_keys: Iterable[str] = ()) -> bool:
    """Whether values under ``key`` must be hidden (``_private*``, ``_tokens`` or a named private key)."""
    return key.startswith(PRIVATE_PREFIX) or key in ALWAYS_PRIVATE_KEYS or key in set(private_keys)


def redact(document: Any, private_keys: Iterable[str] = ()) -> Any:
    """A copy of ``document`` with every private value replaced by :data:`REDACTED`.

    Private are: keys starting with ``_private`` and ``_tokens`` at any depth, and the names in
    ``private_keys`` at any depth (the ``__Private_Parameters`` names the step function collects in
    ``RunState.private_keys`` and ``StartAction.private_keys``). Matching by name at any depth hides
    more than strictly needed rather than less. ``document`` itself is not changed.
    """
    names = frozenset(private_keys) | ALWAYS_PRIVATE_KEYS
    return _redact(document, names)


def _redact(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and (key.startswith(PRIVATE_PREFIX) or key in names)
            else _redact(item, names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item, names) for item in value]
    return value
