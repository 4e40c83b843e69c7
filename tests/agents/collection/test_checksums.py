"""Checksum algorithms by name, whole files and ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import xxhash
from blake3 import blake3

from beamlink.agents.collection.checksums import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    hash_bytes,
    hash_file,
    new_hasher,
)
from beamlink.errors import InvalidInput

DATA = bytes(range(256)) * 5000  # 1.28 MB: more than one read buffer

REFERENCE = {
    "xxh3": lambda b: xxhash.xxh3_128(b).hexdigest(),
    "blake3": lambda b: blake3(b).hexdigest(),
    "sha256": lambda b: hashlib.sha256(b).hexdigest(),
    "md5": lambda b: hashlib.md5(b).hexdigest(),
}


def test_the_default_is_xxh3_and_every_algorithm_is_listed() -> None:
    assert DEFAULT_ALGORITHM == "xxh3"
    assert set(ALGORITHMS) == set(REFERENCE)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_digests_match_the_reference_implementation(tmp_path: Path, algorithm: str) -> None:
    path = tmp_path / "data"
    path.write_bytes(DATA)
    expected = REFERENCE[algorithm](DATA)
    assert hash_bytes(DATA, algorithm) == expected
    assert hash_file(path, algorithm) == expected
    assert hash_file(path, algorithm, buffer=bytearray(4096)) == expected
    hasher = new_hasher(algorithm)
    for start in range(0, len(DATA), 7777):
        hasher.update(DATA[start : start + 7777])
    assert hasher.hexdigest() == expected


@pytest.mark.parametrize(("start", "length"), [(0, 0), (10, 100), (65536, 1 << 20), (len(DATA) - 5, None)])
def test_a_range_of_a_file(tmp_path: Path, start: int, length: int | None) -> None:
    path = tmp_path / "data"
    path.write_bytes(DATA)
    end = None if length is None else start + length
    assert hash_file(path, "xxh3", start=start, length=length) == hash_bytes(DATA[start:end], "xxh3")


def test_a_range_past_the_end_hashes_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"abc")
    assert hash_file(path, "sha256", start=1, length=100) == hashlib.sha256(b"bc").hexdigest()


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert hash_file(path, "md5") == hashlib.md5(b"").hexdigest()


def test_an_unknown_algorithm_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidInput, match="xxh3, blake3, sha256, md5"):
        new_hasher("crc32")


def test_negative_ranges_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="negative"):
        hash_file(path, "xxh3", start=-1)
