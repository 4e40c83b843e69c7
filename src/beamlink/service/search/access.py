"""Visibility as words: each principal that may see an entry, and the entry's index, become one word of
the entry's ``access`` text (pure: no database).

On SQLite the full-text index holds these words in its own column, so a text query says "gel, in this
index, visible to public or to user X or to group Y" as one FTS5 expression and never touches the
visibility table hit by hit (that join was most of the cost of a broad query). The words are hashes:
letters and digits only, so the tokenizer keeps each whole, and nothing a person types matches one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["access_text", "access_word", "index_word"]


def access_word(principal_key: str) -> str:
    """The word for a visibility key (``public``, ``user:<id>``, ``group:<id>``, ...)."""
    return "v" + hashlib.blake2b(principal_key.encode(), digest_size=10).hexdigest()


def index_word(index_id: str) -> str:
    return access_word(f"index:{index_id}")


def access_text(index_id: str, keys: Iterable[str]) -> str:
    return " ".join([index_word(index_id), *(access_word(key) for key in sorted(keys))])
