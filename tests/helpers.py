"""Small shared types for tests (importable because pytest puts tests/ on the path)."""

from __future__ import annotations

import time
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


class SendfileLog(list[int]):
    """The bytes each ``os.sendfile`` call sent (calls that raised are not listed).

    A call is listed when it returns, which may be after the client has read everything it sent: a test
    that checks while the server may still be in the call asks :meth:`total`.
    """

    def total(self, expected: int, timeout: float = 5.0) -> int:
        """The bytes sent so far, once they reach ``expected`` (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while sum(self) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return sum(self)
