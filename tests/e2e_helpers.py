"""Helpers for whole-system tests: a person with their own BEAMLINK_HOME, driving the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

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
