"""Start a service as a child process and wait until it is healthy; used by `beamlink demo`, `beamlink up`
and the test suite, so all three run the service exactly as `beamlink server` does.

`beamlink up --detach` lets the service outlive the command that started it (:meth:`ServiceProcess.detach`)
and `beamlink down`, another process, stops it by pid (:func:`stop_service`); the pid is paired with the
process's start time so a recycled pid is never signalled."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from beamlink.errors import StartupError

__all__ = ["ServiceProcess", "free_port", "running_service", "stop_service"]


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

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def started_at(self) -> float:
        """The process's start time as the OS reports it, which :func:`running_service` checks."""
        if self.process is None:
            raise StartupError("the service has not been started")
        return float(psutil.Process(self.process.pid).create_time())

    def detach(self) -> int:
        """Leave the service running when this process exits; returns its pid (stop it with stop_service)."""
        if self.process is None:
            raise StartupError("the service has not been started")
        pid = self.process.pid
        # Like spawn_daemon: a finished-looking Popen does not warn "still running" when it is dropped.
        self.process.returncode = 0
        self.process = None
        return pid

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# psutil derives create_time from the boot time, which Linux gives in whole seconds.
_CLOCK_SLACK = 1.0


def running_service(pid: int, started_at: float) -> psutil.Process | None:
    """The live process ``pid`` if it is the one that started at ``started_at`` (not a recycled pid)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or abs(proc.create_time() - started_at) > _CLOCK_SLACK:
            return None
    except psutil.NoSuchProcess:
        return None
    return proc


def stop_service(pid: int, started_at: float, *, timeout: float = 15.0) -> bool:
    """Stop a detached service as :meth:`ServiceProcess.stop` does (SIGTERM, SIGKILL after ``timeout``);
    False when it was not running."""
    proc = running_service(pid, started_at)
    if proc is None:
        return False
    try:
        proc.terminate()
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(5.0)
    except psutil.NoSuchProcess:
        pass
    return True
