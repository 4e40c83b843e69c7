"""Start a service as a child process and wait until it is healthy; used by `beamlink demo`, `beamlink up`
and the test suite, so all three run the service exactly as `beamlink server` does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from beamlink.errors import StartupError

__all__ = ["ServiceProcess", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """One `beamlink server` child process with its own ``BEAMLINK_HOME`` and log file."""

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = Path(home)
        self.host = host
        self.port = port or free_port(host)
        self.database_url = database_url
        self.extra_env = dict(env or {})
        self.log_path = self.home / "server" / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, timeout: float = 30.0) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.extra_env, "BEAMLINK_HOME": str(self.home)}
        if self.database_url:
            env["BEAMLINK_DATABASE_URL"] = self.database_url
        command = [sys.executable, "-m", "beamlink", "server", "--host", self.host, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> float:
        """Seconds it took to answer /health; StartupError (with the log's tail) if it died or hung."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StartupError(
                    f"the service exited with code {self.process.returncode}:\n{self.log_tail()}",
                    details={"log": str(self.log_path)},
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise StartupError(
            f"the service did not become healthy in {timeout:.0f} s:\n{self.log_tail()}",
            details={"log": str(self.log_path)},
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout``; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
