"""A collection's ``config.yaml``: the directory it serves, its data server and how it moves bytes.

::

    root_path: /data/beamline7       # required: the directory this collection serves
    display_name: Beamline 7 raw data
    listen: 0.0.0.0:8720             # host:port of the data server (port 0: any free port)
    advertise_url: https://dtn7.example.org:8720   # what other agents use to reach it
    concurrency: 8                   # files in flight
    checksum_algorithm: xxh3         # xxh3 | blake3 | sha256 | md5
    chunk_size: 64 MiB               # large files move, and resume, in chunks of this size
    direct_writes: true              # large pulled files are written O_DIRECT (false: page cache)
    tls:                             # optional: encrypt the data plane
      cert_file: /etc/beamlink/data.pem   # this data server's certificate chain (PEM): it serves https
      key_file: /etc/beamlink/data.key    # its private key (PEM, not passphrase-protected)
      ca_file: /etc/beamlink/site-ca.pem  # CAs trusted when pulling from https data servers
                                          # (default: the system's)

Errors name the file, key, line and fix (see :mod:`beamlink.agents.yaml_config`). ``root_path`` must be
an absolute path (``~`` is expanded) to an existing directory, checked when the file is read. The TLS
files are loaded when the file is read too, so a wrong path, a key that does not match its certificate
or an unreadable CA bundle stops ``collection start`` with the key named, not the first transfer.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import socket
import ssl
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import yaml
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from beamlink.agents.collection.checksums import ALGORITHMS, DEFAULT_ALGORITHM, AlgorithmName
from beamlink.agents.collection.http11 import client_tls_context
from beamlink.agents.yaml_config import Explainer, Section, load_model, parse_model, unknown_choice
from beamlink.errors import ConfigError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EXPLAINER",
    "CollectionConfig",
    "TlsConfig",
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


def _tls_problem(key: str, message: str) -> PydanticCustomError:
    """An error about ``key`` of the tls section, reported at that key's line with ``message``."""
    return PydanticCustomError("tls", "{message}", {"key": key, "message": message})


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt for an encrypted key's passphrase on the terminal, which
    # hangs a daemon; an empty answer makes the load fail instead, and the error says what to do.
    return b""


class TlsConfig(Section):
    """The ``tls`` section: this data server's certificate (it then serves https) and the CAs trusted
    when pulling from other agents' https data servers."""

    cert_file: Path | None = Field(
        default=None,
        description="Certificate chain (PEM) of this data server; with key_file, it serves https.",
    )
    key_file: Path | None = Field(default=None, description="Private key (PEM) of cert_file.")
    ca_file: Path | None = Field(
        default=None,
        description="CA certificates (PEM) trusted when this agent pulls from https data servers "
        "(default: the system's).",
    )

    @field_validator("cert_file", "key_file", "ca_file", mode="before")
    @classmethod
    def _readable_file(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise ValueError(f"use an absolute path (e.g. /etc/beamlink/data.pem), not {value!r}")
        if not path.exists():
            raise ValueError(f"{value} does not exist; correct the path or create the file")
        if not path.is_file():
            raise ValueError(f"{value} is not a file; name a PEM file")
        if not os.access(path, os.R_OK):
            raise ValueError(
                f"{value} is not readable by this user ({_user()}); give the agent's user read access"
            )
        return path

    @model_validator(mode="after")
    def _loads(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            given = "cert_file" if missing == "key_file" else "key_file"
            raise _tls_problem(
                missing,
                f"tls.{given} is set but tls.{missing} is not: a data server needs both its certificate "
                f"chain and its private key; add tls.{missing} (or remove tls.{given} to serve plain http)",
            )
        # Load them now so that a bad file stops `collection start` with the key named, rather than the
        # data server failing to start (or a pull failing) later.
        try:
            self.server_context()
            if self.ca_file is not None:
                self.client_context()
        except ConfigError as exc:
            raise _tls_problem(str(exc.details["key"]), str(exc.details["problem"])) from None
        return self

    @property
    def serves_https(self) -> bool:
        return self.cert_file is not None and self.key_file is not None

    def server_context(self) -> ssl.SSLContext | None:
        """The data server's TLS context (TLS 1.2 at least), or None when it serves plain http.

        ConfigError (naming the key and the fix) when the files do not load."""
        if self.cert_file is None or self.key_file is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file, password=_no_passphrase)
        except (ssl.SSLError, OSError) as exc:
            raise _file_problem("key_file", _chain_problem(self.cert_file, self.key_file, exc)) from None
        return context

    def client_context(self) -> ssl.SSLContext:
        """The (shared) context pulls from https data servers use: certificate and host name verified
        against ``ca_file``, or the system's CAs. ConfigError when ``ca_file`` does not load."""
        try:
            return client_tls_context(self.ca_file)
        except (ssl.SSLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
            raise _file_problem(
                "ca_file",
                f"{self.ca_file} holds no usable CA certificate ({reason or exc}); name a PEM file of CA "
                "certificates (-----BEGIN CERTIFICATE-----)",
            ) from None


def _file_problem(key: str, problem: str) -> ConfigError:
    return ConfigError(f"tls.{key}: {problem}", details={"key": key, "problem": problem})


def _chain_problem(cert_file: Path, key_file: Path, exc: ssl.SSLError | OSError) -> str:
    """Why a certificate and key did not load, with the fix."""
    reason = (exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror) or str(exc)
    try:
        key_text = key_file.read_text(errors="replace")
    except OSError:
        key_text = ""
    if "ENCRYPTED" in key_text:
        return (
            f"{key_file} is protected by a passphrase, which an agent cannot type; write an unencrypted "
            f"copy readable only by the agent's user (openssl pkey -in {key_file} -out <new file>)"
        )
    if reason in ("KEY_VALUES_MISMATCH", "X509_CHECK_PRIVATE_KEY") or "mismatch" in reason.lower():
        return f"{key_file} is not the private key of the certificate in {cert_file}; name the matching key"
    return (
        f"cannot load the certificate {cert_file} with the key {key_file} ({reason}); both must be PEM "
        "files (-----BEGIN CERTIFICATE----- / -----BEGIN ... PRIVATE KEY-----) and belong together"
    )


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # no passwd entry (some containers)
        return f"uid {os.geteuid()}"


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
    direct_writes: bool = Field(
        default=True,
        description="Write large files pulled over the network O_DIRECT, past the page cache (less CPU, "
        "steadier speed); false writes through the page cache (a filesystem whose direct I/O is slow).",
    )
    tls: TlsConfig = Field(
        default_factory=TlsConfig,
        description="Encryption of the data plane: this data server's certificate and key (it then serves "
        "https), and the CAs trusted when pulling from https data servers.",
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

    @field_validator("tls", mode="before")
    @classmethod
    def _tls(cls, value: Any) -> Any:
        return {} if value is None else value  # a bare `tls:` (everything commented out) is no TLS

    @model_validator(mode="after")
    def _https_advertised(self) -> CollectionConfig:
        if self.tls.serves_https and self.advertise_url and urlsplit(self.advertise_url).scheme != "https":
            # Other agents would speak plain HTTP to a TLS port, and the tokens would be sent before
            # the handshake failed: refuse rather than advertise a URL that cannot work.
            raise PydanticCustomError(
                "tls",
                "{message}",
                {
                    "key": "advertise_url",
                    "message": f"{self.advertise_url} is http:// but tls.cert_file makes the data server "
                    "serve https; write https:// in advertise_url (or remove the tls section)",
                },
            )
        return self

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

        ``advertise_url`` when set; otherwise ``http(s)://<host>:<port>`` (https when ``tls`` has a
        certificate) with the listen host, or this machine's fully qualified name when it listens on
        every interface (0.0.0.0 or ::): the name its certificate should carry.
        """
        if self.advertise_url:
            return self.advertise_url
        host = self.listen_host
        if host in ("0.0.0.0", "::"):
            host = socket.getfqdn()
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.tls.serves_https else "http"
        return f"{scheme}://{shown}:{bound_port}"


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
# direct_writes: true         # write large pulled files O_DIRECT (false: through the page cache)
# heartbeat_period: 30
# tls:                        # encrypt the data plane (absolute paths to PEM files)
#   cert_file: /etc/beamlink/data.pem   # this data server's certificate chain: it then serves https
#   key_file: /etc/beamlink/data.key    # its private key (unencrypted, readable by the agent only)
#   ca_file: /etc/beamlink/site-ca.pem  # CAs trusted when pulling from https data servers (default:
#                                       # the system's)
"""


def default_config_text(root_path: str | Path) -> str:
    """A commented config.yaml for ``beamlink collection configure`` (it loads back as a valid config)."""
    root = str(Path(root_path).expanduser())
    # safe_dump quotes the path when a plain YAML value would change it (': ', '#', a leading '*').
    line = yaml.safe_dump({"root_path": root}, width=1 << 30, allow_unicode=True).strip()
    return _TEMPLATE.format(root=line)
