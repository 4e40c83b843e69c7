"""A collection's ``config.yaml``: the directory it serves, its data server and how it moves bytes.

::

    root_path: /data/beamline7       # required: the directory this collection serves
    display_name: Beamline 7 raw data
    listen: 0.0.0.0:8720             # host:port of the data server (port 0: any free port)
    advertise_url: https://dtn7.example.org:8720   # what other agents use to reach it
    concurrency: 8                   # files in flight
    checksum_algorithm: xxh3         # xxh3 | blake3 | sha256 | md5
    chunk_size: 64 MiB               # large files move, and resume, in chunks of this size

Errors name the file, key, line and fix (see :mod:`beamlink.agents.yaml_config`). ``root_path`` must be
an absolute path (``~`` is expanded) to an existing directory, checked when the file is read.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import yaml
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from beamlink.agents.collection.checksums import ALGORITHMS, DEFAULT_ALGORITHM, AlgorithmName
from beamlink.agents.yaml_config import Explainer, Section, load_model, parse_model, unknown_choice

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EXPLAINER",
    "CollectionConfig",
    "default_config_text",
    "load_config",
    "parse_config",
    "parse_size",
]

DEFAULT_CHUNK_SIZE = 64 << 20
_MIN_CHUNK = 64 << 10
_MAX_CHUNK = 4 << 30
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 10**6, "mb": 10**6, "mib": 1 << 20}
_UNITS |= {"g": 10**9, "gb": 10**9, "gib": 1 << 30}
_SIZE = re.compile(r"\s*(\d+)\s*([a-zA-Z]*)\s*")


def parse_size(value: int | str) -> int:
    """Bytes from ``65536``, ``"64 MiB"``, ``"8M"`` (K/M/G are powers of 1000, KiB/MiB/GiB of 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 64 MiB, got a boolean")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size such as 67108864, '64 MiB' or '8M', got {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


class CollectionConfig(Section):
    """The whole of a collection's ``config.yaml``; only ``root_path`` is required."""

    root_path: Path = Field(description="The directory this collection serves; every path is inside it.")
    display_name: str | None = Field(default=None, description="Shown instead of the collection's name.")
    description: str | None = None
    listen: str = Field(
        default="127.0.0.1:0",
        description="host:port the data server binds; port 0 takes any free port, 0.0.0.0 every interface.",
    )
    advertise_url: str | None = Field(
        default=None,
        description="URL other agents use to reach the data server (default: built from the bound address).",
    )
    concurrency: int = Field(default=8, ge=1, description="Files in flight at once.")
    checksum_algorithm: AlgorithmName = Field(
        default=DEFAULT_ALGORITHM,
        description="Hash used to verify chunks and files, and for sync_level checksum.",
    )
    chunk_size: int = Field(
        default=DEFAULT_CHUNK_SIZE,
        ge=_MIN_CHUNK,
        le=_MAX_CHUNK,
        description="Large files move in chunks of this many bytes; a restart loses at most one chunk.",
    )
    heartbeat_period: float = Field(default=30.0, gt=0, description="Seconds between heartbeats.")
    same_host_copy: bool = Field(
        default=True,
        description="Copy locally (copy_file_range) when the source collection is on this host; false "
        "pulls over HTTP anyway (hosts that share a name but not a filesystem, e.g. containers).",
    )

    @field_validator("root_path", mode="before")
    @classmethod
    def _root_path(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise ValueError(f"use an absolute path (e.g. /data/beamline7), not {value!r}")
        if not path.exists():
            raise ValueError(f"{value} does not exist; create the directory or correct root_path")
        if not path.is_dir():
            raise ValueError(f"{value} is not a directory; a collection serves a directory")
        return path

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, port = _split_host_port(value)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @field_validator("advertise_url")
    @classmethod
    def _advertise_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"expected an http:// or https:// URL such as https://dtn7.example.org:8720, got {value!r}"
            )
        return value.rstrip("/")

    @field_validator("checksum_algorithm", mode="before")
    @classmethod
    def _algorithm(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ALGORITHMS:
            return value.lower()
        raise unknown_choice("checksum_algorithm", value, list(ALGORITHMS), what="checksum algorithm")

    @field_validator("chunk_size", mode="before")
    @classmethod
    def _chunk_size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @property
    def listen_host(self) -> str:
        return _split_host_port(self.listen)[0]

    @property
    def listen_port(self) -> int:
        """The configured port; 0 means the data server picks a free one when it binds."""
        return _split_host_port(self.listen)[1]

    def advertised(self, bound_port: int) -> str:
        """The URL to publish once the data server is bound to ``bound_port``.

        ``advertise_url`` when set; otherwise ``http://<host>:<port>`` with the listen host, or this
        machine's fully qualified name when it listens on every interface (0.0.0.0 or ::).
        """
        if self.advertise_url:
            return self.advertise_url
        host = self.listen_host
        if host in ("0.0.0.0", "::"):
            host = socket.getfqdn()
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{bound_port}"


def _split_host_port(value: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` → (host, port); errors say the form expected."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", value.strip())
    if match is None:
        raise PydanticCustomError("bad_listen", "bad listen address", {"value": value})
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if match.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise PydanticCustomError("bad_listen", "bad listen address", {"value": value}) from None
    if not 0 <= port <= 65535:
        raise PydanticCustomError("bad_listen", "bad listen address", {"value": value})
    return host, port


class _CollectionExplainer(Explainer):
    what: ClassVar[str] = "collection config"
    keys_hint: ClassVar[str] = "root_path:, listen:, ..."
    example: ClassVar[str] = "beamlink collection configure"

    def problem(self, kind: str, ctx: dict[str, Any], value: Any, key: str) -> str | None:
        if kind == "bad_listen":
            return (
                f"expected host:port such as 127.0.0.1:8720, 0.0.0.0:0 or [::1]:8720 (port 0 to 65535), "
                f"got {ctx['value']!r}"
            )
        return None


EXPLAINER = _CollectionExplainer()


def load_config(path: Path) -> CollectionConfig:
    """Read and validate ``path``; ConfigError names the file, key, line and fix."""
    return load_model(path, CollectionConfig, explainer=EXPLAINER)


def parse_config(text: str, *, source: str = "config.yaml") -> CollectionConfig:
    """Validate config text (``source`` names it in errors)."""
    return parse_model(text, CollectionConfig, source=source, explainer=EXPLAINER)


_TEMPLATE = """\
# beamlink collection configuration. Only root_path is required.
{root}
# display_name: Beamline 7 raw data
# description: Detector frames from beamline 7
listen: 127.0.0.1:0           # host:port of the data server; port 0 takes any free port,
                              # 0.0.0.0 listens on every interface
# advertise_url: https://dtn7.example.org:8720   # how other agents reach it (default: the bound address)
concurrency: 8                # files in flight at once
checksum_algorithm: xxh3      # xxh3 | blake3 | sha256 | md5
chunk_size: 64 MiB            # large files move, and resume after a restart, in chunks of this size
# same_host_copy: true        # copy locally when the source is on this host (false: always pull over HTTP)
# heartbeat_period: 30
"""


def default_config_text(root_path: str | Path) -> str:
    """A commented config.yaml for ``beamlink collection configure`` (it loads back as a valid config)."""
    root = str(Path(root_path).expanduser())
    # safe_dump quotes the path when a plain YAML value would change it (': ', '#', a leading '*').
    line = yaml.safe_dump({"root_path": root}, width=1 << 30, allow_unicode=True).strip()
    return _TEMPLATE.format(root=line)
