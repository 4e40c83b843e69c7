"""Small shared types for tests (importable because pytest puts tests/ on the path)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from beamlink.sdk import Client


@dataclass
class UserHandle:
    username: str
    password: str
    client: Client


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


MakeUser = Callable[..., UserHandle]
RunCli = Callable[..., CliResult]
