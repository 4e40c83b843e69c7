"""A collection's config.yaml, and the YAML-to-model machinery it shares with endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from beamlink.agents.collection.config import (
    DEFAULT_CHUNK_SIZE,
    CollectionConfig,
    default_config_text,
    load_config,
    parse_config,
    parse_size,
)
from beamlink.agents.yaml_config import Section, parse_model
from beamlink.errors import ConfigError


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="coll.yaml")
    assert caught.value.message.startswith("coll.yaml: ")
    return caught.value


def test_only_root_path_is_required(tmp_path: Path) -> None:
    config = parse_config(f"root_path: {tmp_path}\n")
    assert config.root_path == tmp_path
    assert (config.listen, config.listen_host, config.listen_port) == ("127.0.0.1:0", "127.0.0.1", 0)
    assert config.advertise_url is None
    assert config.concurrency == 8
    assert config.checksum_algorithm == "xxh3"
    assert config.chunk_size == DEFAULT_CHUNK_SIZE == 64 << 20
    assert config.direct_writes is True


def test_a_full_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
root_path: {tmp_path}
display_name: Beamline 7 raw
description: frames
listen: "[::1]:8720"
advertise_url: https://dtn7.example.org:8720/
concurrency: 32
checksum_algorithm: BLAKE3
chunk_size: 8 MiB
direct_writes: false
"""
    )
    config = load_config(path)
    assert config.display_name == "Beamline 7 raw"
    assert (config.listen_host, config.listen_port) == ("::1", 8720)
    assert config.advertised(8720) == "https://dtn7.example.org:8720"
    assert config.concurrency == 32
    assert config.checksum_algorithm == "blake3"
    assert config.chunk_size == 8 << 20
    assert config.direct_writes is False


def test_the_advertised_url_defaults_to_the_bound_address(tmp_path: Path) -> None:
    assert parse_config(f"root_path: {tmp_path}\n").advertised(40123) == "http://127.0.0.1:40123"
    everywhere = parse_config(f"root_path: {tmp_path}\nlisten: 0.0.0.0:9000\n")
    assert not everywhere.advertised(9000).startswith("http://0.0.0.0")


def test_root_path_is_expanded_from_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    assert parse_config("root_path: ~/data\n").root_path == tmp_path / "data"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("display_name: x\n", "'root_path' is required; add root_path: <value>"),
        (
            "root_path: /no/such/dir\n",
            "root_path at line 1: /no/such/dir does not exist; create the directory",
        ),
        ("root_path: relative/dir\n", "root_path at line 1: use an absolute path (e.g. /data/beamline7)"),
        (
            "root_path: {root}\nconcurency: 4\n",
            "unknown key 'concurency' at line 2 (top level); did you mean ",
        ),
        ("root_path: {root}\nconcurrency: 0\n", "concurrency at line 2: must be at least 1, got 0"),
        (
            "root_path: {root}\nconcurrency: many\n",
            "concurrency at line 2: expected a whole number, got 'many'",
        ),
        (
            "root_path: {root}\n\nchecksum_algorithm: sha-256\n",
            "checksum_algorithm at line 3: unknown checksum algorithm 'sha-256'; did you mean 'sha256'? "
            "Choose one of: xxh3, blake3, sha256, md5",
        ),
        (
            "root_path: {root}\nlisten: localhost\n",
            "listen at line 2: expected host:port such as 127.0.0.1:8720",
        ),
        ("root_path: {root}\nlisten: 'h:70000'\n", "listen at line 2: expected host:port"),
        (
            "root_path: {root}\nadvertise_url: dtn7:8720\n",
            "advertise_url at line 2: expected an http:// or https://",
        ),
        ("root_path: {root}\nchunk_size: 1 KiB\n", "chunk_size at line 2: must be at least 65536, got 1024"),
        ("root_path: {root}\nchunk_size: lots\n", "chunk_size at line 2: expected a size such as 67108864"),
        (
            "- a\n- b\n",
            "must be a mapping of keys (root_path:, listen:, ...), not a list; see `beamlink collection",
        ),
        ("root_path: [\n", "not valid YAML at line 2"),
    ],
)
def test_mistakes_name_the_key_the_line_and_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    error = error_of(text.format(root=tmp_path))
    assert expected in error.message


def test_root_path_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert "is not a directory" in error_of(f"root_path: {tmp_path / 'file'}\n").message


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    error = error_of(f"root_path: {tmp_path}\nconcurrency: 0\nchunk_size: 1\n")
    assert [(p["key"], p["line"]) for p in error.details["problems"]] == [
        ("concurrency", 2),
        ("chunk_size", 3),
    ]
    assert error.details["file"] == "coll.yaml"


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the collection config"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("root", ["plain", "with space", "colon: and #hash", "ünïcode 数据"])
def test_default_config_text_loads_back(tmp_path: Path, root: str) -> None:
    (tmp_path / root).mkdir()
    text = default_config_text(tmp_path / root)
    assert text.startswith("#")
    config = parse_config(text)
    assert config.root_path == tmp_path / root
    assert config == CollectionConfig(root_path=tmp_path / root)


@pytest.mark.parametrize(
    ("given", "size"),
    [
        (65536, 65536),
        ("64 MiB", 64 << 20),
        ("8M", 8_000_000),
        ("1gib", 1 << 30),
        ("100", 100),
        (" 2 KB ", 2000),
    ],
)
def test_sizes(given: int | str, size: int) -> None:
    assert parse_size(given) == size


# -- the shared machinery, on a model of its own ----------------------------------------------------------


class _Inner(Section):
    depth: int = Field(default=1, ge=0)


class _Outer(Section):
    name: str = "x"
    inner: _Inner = Field(default_factory=_Inner)
    items: list[int] = Field(default_factory=list)


def test_parse_model_reports_nested_keys_with_their_lines() -> None:
    text = "name: ok\ninner:\n  deph: 3\nitems:\n  - 1\n  - two\n"
    with pytest.raises(ConfigError) as caught:
        parse_model(text, _Outer, source="t.yaml")
    message = caught.value.message
    assert "unknown key 'deph' at line 3 in inner; did you mean 'depth'?" in message
    assert "items[1] at line 6: expected a whole number, got 'two'" in message


def test_parse_model_of_an_empty_text_gives_the_defaults() -> None:
    assert parse_model("", _Outer, source="t.yaml") == _Outer()


def test_direct_writes_must_be_true_or_false(tmp_path: Path) -> None:
    message = error_of(f"root_path: {tmp_path}\ndirect_writes: sometimes\n").message
    assert "direct_writes" in message
    assert "line 2" in message
