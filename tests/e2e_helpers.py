"""Helpers for whole-system tests: a person with their own BEAMLINK_HOME, driving the real CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from beamlink.protocol.transfers import TransferInfo
from beamlink.sdk import Client
from helpers import CliResult


@dataclass
class Person:
    """A user with a home of their own (credentials.json, endpoint profiles) and an SDK client."""

    username: str
    password: str
    home: Path
    url: str
    client: Client
    started: list[str] = field(default_factory=list)
    started_collections: list[str] = field(default_factory=list)

    def cli(self, *args: str, input: str | None = None, timeout: float = 120) -> CliResult:
        env = {
            **os.environ,
            "BEAMLINK_HOME": str(self.home),
            "BEAMLINK_URL": self.url,
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        done = subprocess.run(
            [sys.executable, "-m", "beamlink", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def profile(self, name: str) -> Path:
        return self.home / "endpoints" / name

    def configure(self, name: str, config: str) -> Path:
        result = self.cli("endpoint", "configure", name)
        assert result.code == 0, result.stderr
        path = self.profile(name) / "config.yaml"
        path.write_text(config)
        return path

    def start(self, name: str) -> str:
        result = self.cli("endpoint", "start", name)
        assert result.code == 0, result.stderr + result.stdout
        self.started.append(name)
        return result.stdout.split(": ", 1)[1].split(" ", 1)[0]

    def configure_collection(self, name: str, root: Path, extra: str = "") -> Path:
        result = self.cli("collection", "configure", name, "--root", str(root))
        assert result.code == 0, result.stderr
        path = self.home / "collections" / name / "config.yaml"
        path.write_text(f"root_path: {root}\nheartbeat_period: 1\n{extra}")
        return path

    def start_collection(self, name: str) -> str:
        result = self.cli("collection", "start", name)
        assert result.code == 0, result.stderr + result.stdout
        self.started_collections.append(name)
        return result.stdout.split(": ", 1)[1].split(" ", 1)[0]

    def daemon_pid(self, name: str) -> int:
        return int((self.profile(name) / "daemon.pid").read_text().split()[0])


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


THREAD_CONFIG = """\
engine:
  type: thread
  max_workers: 4
heartbeat_period: 1
"""

PROCESS_CONFIG = """\
engine:
  type: process
  max_workers: 2
heartbeat_period: 1
"""


@dataclass
class DemoSite:
    """The built-in demo site brought up by `beamlink up` in a temporary home (``demo_site`` fixture)."""

    home: Path
    url: str

    def cli(self, *args: str, timeout: float = 300) -> CliResult:
        env = {**os.environ, "BEAMLINK_HOME": str(self.home), "COLUMNS": "200", "NO_COLOR": "1"}
        env.pop("BEAMLINK_URL", None)
        done = subprocess.run(
            [sys.executable, "-m", "beamlink", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def client(self) -> Client:
        return Client(self.url, home=self.home)

    @property
    def local(self) -> Path:
        return self.home / "data" / "local"

    @property
    def remote(self) -> Path:
        return self.home / "data" / "remote"

    @property
    def portal(self) -> Path:
        return self.home / "data" / "portal"


# -- transfer fixtures' data ----------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path) with its sha256."""
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def big_file(path: Path, size: int) -> str:
    """``size`` bytes (whole MiB) of data that differs in every MiB, cheaply; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(size >> 20):
            f.write(block[i:] + block[:i])
    return sha256(path)


def scan_tree(tmp_path: Path) -> tuple[Path, Path]:
    """(source, empty destination): a scan of 40 small frames (batches), an empty file, a non-ASCII name
    and a 5 MiB file (ranges, several 1 MiB chunks)."""
    source, destination = tmp_path / "instrument", tmp_path / "facility"
    (source / "scan 001" / "frames").mkdir(parents=True)
    for i in range(40):
        (source / "scan 001" / "frames" / f"frame_{i:04d}.dat").write_bytes(os.urandom(4096 + i))
    (source / "scan 001" / "empty.dat").write_bytes(b"")
    (source / "scan 001" / "métadonnées.json").write_text('{"energy": 8.0}')
    (source / "scan 001" / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 17))
    destination.mkdir()
    return source, destination


def transfer_scan(person: Person, roots: tuple[Path, Path]) -> TransferInfo:
    """``beamlink transfer instrument:'scan 001' facility:copy --recursive --verify-checksum --wait``
    between the collections holding :func:`scan_tree`'s ``roots``, checked: it succeeds, the copy is the
    source, and all 43 files and the big file's bytes are counted. Returns the transfer."""
    done = person.cli(
        "transfer", "instrument:scan 001", "facility:copy", "--recursive", "--verify-checksum", "--wait"
    )
    assert done.code == 0, done.stderr + done.stdout
    assert "SUCCEEDED" in done.stdout
    source, destination = roots
    assert tree_digest(destination / "copy") == tree_digest(source / "scan 001")
    (info,) = person.client.list_transfers()
    assert info.counts.files == 43
    assert info.counts.bytes_transferred >= 5 * 1024 * 1024
    assert info.counts.faults == 0
    return info
