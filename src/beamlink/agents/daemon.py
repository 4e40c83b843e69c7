"""What endpoints and collections share: profile directory, pid file, states, daemonizing, stop, logs and
the reconnecting WebSocket client with heartbeats.

A profile lives in ``$BEAMLINK_HOME/<kind>s/<name>/`` (``kind`` is ``endpoint`` or ``collection``)::

    config.yaml        what the user configured
    endpoint.json      identity after the first registration: id, service URL, agent secret (mode 0600)
    daemon.pid         held by the running daemon: "PID\\nHOST\\nWRITTEN_AT\\n", touched every 10 s
    daemon.status      how a detached daemon tells the starting command it is ready (or why it failed)
    logs/endpoint.log  the daemon's log (rotated, 5 MB x 3); logs/daemon.out: its raw stdout and stderr
    spool/             messages kept on disk until the service acknowledges them

States, read from the files alone like Globus Compute's, with two fixes: a pid file only counts as Running
when its process is alive *and* is the process that wrote it (a recycled pid does not count), and a pid
file written on another host (a shared home on HPC login nodes) is judged by its freshness alone.

- Initialized: ``config.yaml`` exists, no identity file (configured, never started).
- Running: ``daemon.pid`` was touched less than :data:`STALE_AFTER` s ago and its process is alive and ours.
- Disconnected: ``daemon.pid`` exists but is stale or its process is gone (crashed, killed -9, hung).
- Stopped: the identity file exists, no ``daemon.pid``.

Globus pains fixed here: ``start`` cleans a stale pid file left by a crash instead of refusing; one
``stop`` is enough (SIGTERM, then SIGKILL for the whole process tree, workers included); ``stop`` on a
crashed agent just removes its stale pid file; ``start --detach`` waits until the daemon is really up and
otherwise fails with the reason and the log's last lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import json
import logging
import logging.handlers
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State

from beamlink.config import default_home
from beamlink.errors import ConfigError, Conflict, InvalidInput, NotFound, StartupError
from beamlink.protocol.agent import CLOSE_AUTH, CLOSE_INVALID, CLOSE_REPLACED

__all__ = [
    "CONNECT_PATH",
    "DETACHED_ENV",
    "PID_TOUCH_PERIOD",
    "STALE_AFTER",
    "AgentKind",
    "AgentProfile",
    "AgentRejected",
    "AgentState",
    "GatewayClient",
    "PidFile",
    "agent_ws_url",
    "configure_logging",
    "follow_log",
    "list_profiles",
    "report_failed",
    "report_ready",
    "run_until_stopped",
    "serve_gateway",
    "spawn_daemon",
    "stop_daemon",
    "tail_log",
    "validate_name",
]

log = logging.getLogger(__name__)

AgentKind = Literal["endpoint", "collection"]

STALE_AFTER = 30.0
"""A pid file not touched for this many seconds no longer proves a running daemon."""
PID_TOUCH_PERIOD = 10.0
"""How often the running daemon touches its pid file (a third of :data:`STALE_AFTER`)."""
CONNECT_PATH = "/v1/agents/connect"
"""The service's agent WebSocket route, appended to the service URL."""
DETACHED_ENV = "BEAMLINK_AGENT_DETACHED"
"""Set to ``1`` by :func:`spawn_daemon`, so the child knows to log to its file only and report readiness."""

# psutil derives create_time from the boot time, which Linux gives in whole seconds.
_CLOCK_SLACK = 1.0
_LOG_MAX_BYTES = 5 * 1024 * 1024
_LOG_BACKUPS = 3
_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_TAIL_LINES = 20
_T = TypeVar("_T")


class AgentState(enum.StrEnum):
    """Local state of a profile, read from its files (no call to the service)."""

    INITIALIZED = "Initialized"
    """Configured, never started: no identity file yet."""
    RUNNING = "Running"
    """A daemon holds a fresh pid file and is alive."""
    STOPPED = "Stopped"
    """Registered once (identity file), no daemon."""
    DISCONNECTED = "Disconnected"
    """A pid file remains, but it is stale or its process is gone: the daemon crashed or hangs."""


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a profile directory, else raise :class:`InvalidInput` saying why.

    Same rules as Globus Compute endpoint names, so names carry over.
    """
    problem: str | None = None
    if not name:
        problem = "it is empty"
    elif len(name) > 128:
        problem = f"it is {len(name)} characters long, the limit is 128"
    elif "/" in name:
        problem = "it contains '/'"
    elif any(ch.isspace() or not ch.isprintable() for ch in name):
        problem = "it contains whitespace or a control character"
    elif any(ch in "'\"`" for ch in name):
        problem = "it contains a quote"
    elif name.startswith("."):
        problem = "it starts with '.'"
    if problem is not None:
        raise InvalidInput(
            f"invalid name {name!r}: {problem}; use letters, digits, '-', '_' and '.', e.g. 'my-endpoint'",
            details={"field": "name", "value": name},
        )
    return name


def _write_atomic(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write via a temporary file and rename, so readers never see half a file and the mode is set before
    any byte is written (``credentials.write_credentials`` does the same, but only for its model)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- pid file contents and liveness ---------------------------------------------------------------------


@dataclass(frozen=True)
class _PidRecord:
    """What a pid file says. The first line is the bare pid, so ``kill $(head -1 daemon.pid)`` works."""

    pid: int
    host: str | None
    written_at: float | None
    mtime: float


def _read_pid_record(path: Path) -> _PidRecord | None:
    try:
        mtime = path.stat().st_mtime
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    try:
        pid = int(lines[0].strip())
    except (IndexError, ValueError):
        pid = 0  # not written by us (we write atomically); treated as a dead holder
    host = (lines[1].strip() or None) if len(lines) > 1 else None
    try:
        written_at: float | None = float(lines[2])
    except (IndexError, ValueError):
        written_at = None
    return _PidRecord(pid, host, written_at, mtime)


def _writer_process(record: _PidRecord) -> psutil.Process | None:
    """The live process that wrote the pid file, or None (gone, a zombie, or a new process with its pid)."""
    if record.pid <= 0:
        return None
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        # A process started after the pid file was written cannot have written it: the pid was recycled.
        if record.written_at is not None and proc.create_time() > record.written_at + _CLOCK_SLACK:
            return None
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        pass  # another user's process: it exists, and we cannot tell more, so assume it is the writer
    return proc


@dataclass(frozen=True)
class _Holder:
    """A pid file, judged."""

    record: _PidRecord
    local: bool  # written on this host, so its pid can be checked here
    fresh: bool
    process: psutil.Process | None  # the live writer (only ever set when local)

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.record.mtime)

    @property
    def running(self) -> bool:
        """Running: fresh, and (when checkable here) its process is alive and ours."""
        return self.fresh and (self.process is not None or not self.local)

    @property
    def blocks(self) -> bool:
        """Whether another instance may not start: a live daemon here (even a hung one) or a fresh remote."""
        return self.process is not None or (not self.local and self.fresh)

    def why_stale(self) -> str:
        if not self.local:
            return f"written on host {self.record.host}, not refreshed for {self.age:.0f} s"
        if self.record.pid <= 0:
            return "it holds no valid pid"
        if psutil.pid_exists(self.record.pid):
            return "that pid now belongs to another process"
        return "that process is gone"


def _inspect(path: Path) -> _Holder | None:
    record = _read_pid_record(path)
    if record is None:
        return None
    local = record.host is None or record.host == socket.gethostname()
    fresh = time.time() - record.mtime < STALE_AFTER
    return _Holder(record, local, fresh, _writer_process(record) if local else None)


def _remove_pid_file(path: Path, pid: int) -> bool:
    """Delete the pid file only if it still names ``pid`` (a new instance may have taken it meanwhile)."""
    record = _read_pid_record(path)
    if record is None or record.pid != pid:
        return False
    path.unlink(missing_ok=True)
    return True


# -- profiles -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentProfile:
    """One agent's directory under ``home``; the name is validated, so it can never escape ``home``."""

    kind: AgentKind
    name: str
    home: Path = field(default_factory=default_home)

    def __post_init__(self) -> None:
        validate_name(self.name)
        if self.kind not in ("endpoint", "collection"):
            raise InvalidInput(f"unknown agent kind {self.kind!r}: use 'endpoint' or 'collection'")

    @property
    def label(self) -> str:
        """How messages name this agent: ``endpoint 'NAME'``."""
        return f"{self.kind} {self.name!r}"

    @property
    def dir(self) -> Path:
        return self.home / f"{self.kind}s" / self.name

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def identity_path(self) -> Path:
        return self.dir / f"{self.kind}.json"

    @property
    def pid_path(self) -> Path:
        return self.dir / "daemon.pid"

    @property
    def status_path(self) -> Path:
        return self.dir / "daemon.status"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.kind}.log"

    @property
    def spool_dir(self) -> Path:
        return self.dir / "spool"

    def exists(self) -> bool:
        """Whether the profile was configured or registered (its config or identity file exists)."""
        return self.config_path.is_file() or self.identity_path.is_file()

    def read_identity(self) -> dict[str, Any] | None:
        """The identity file's contents, or None before the first registration."""
        try:
            raw = self.identity_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise ConfigError(
                f"{self.identity_path} is damaged (not a JSON object): delete it and run "
                f"`beamlink {self.kind} start {self.name}` to register again",
                details={"path": str(self.identity_path)},
            )
        return data

    def write_identity(self, data: dict[str, Any]) -> None:
        """Write the identity file atomically with mode 0600: it holds the agent secret."""
        _write_atomic(self.identity_path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)

    def pid(self) -> int | None:
        """The pid recorded in ``daemon.pid`` (alive or not), or None when there is no pid file."""
        record = _read_pid_record(self.pid_path)
        return record.pid if record is not None and record.pid > 0 else None

    def state(self) -> AgentState:
        """The local state (see the module docstring); NotFound when the profile does not exist."""
        holder = _inspect(self.pid_path)
        if holder is not None:
            return AgentState.RUNNING if holder.running else AgentState.DISCONNECTED
        if self.identity_path.is_file():
            return AgentState.STOPPED
        if self.config_path.is_file():
            return AgentState.INITIALIZED
        raise NotFound(
            f"{self.label} does not exist in {self.home}: create it with "
            f"`beamlink {self.kind} configure {self.name}`",
            details={"path": str(self.dir)},
        )

    def delete(self) -> None:
        """Remove the profile directory; Conflict while a daemon runs (a hung one included)."""
        if not self.dir.is_dir():
            raise NotFound(f"{self.label} does not exist in {self.home}", details={"path": str(self.dir)})
        holder = _inspect(self.pid_path)
        if holder is not None and holder.blocks:
            raise Conflict(
                f"{self.label} is running (pid {holder.record.pid}): stop it first with "
                f"`beamlink {self.kind} stop {self.name}`",
                details={"pid": holder.record.pid},
            )
        shutil.rmtree(self.dir)


def list_profiles(home: Path, kind: AgentKind) -> list[AgentProfile]:
    """The profiles of ``kind`` under ``home``, sorted by name; directories with a bad name are skipped."""
    root = home / f"{kind}s"
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if not entry.is_dir():
            continue
        try:
            profile = AgentProfile(kind, entry.name, home)
        except InvalidInput:
            continue
        if profile.exists():
            found.append(profile)
    return found


# -- the daemon's own pid file --------------------------------------------------------------------------


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Serialise check-then-take between two starts on this host; best effort where flock is missing."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class PidFile:
    """The pid file held by the daemon process itself (the current process)."""

    def __init__(self, profile: AgentProfile) -> None:
        self.profile = profile
        self.path = profile.pid_path
        self.pid = os.getpid()

    def acquire(self) -> None:
        """Take the pid file, removing a stale one; Conflict when another instance holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _directory_lock(self.path.parent):
            holder = _inspect(self.path)
            if holder is not None:
                self._refuse_if_held(holder)
                log.warning(
                    "removed a stale pid file left by pid %d (%s)", holder.record.pid, holder.why_stale()
                )
                self.path.unlink(missing_ok=True)
            _write_atomic(self.path, f"{self.pid}\n{socket.gethostname()}\n{time.time():.3f}\n", mode=0o644)
        log.debug("holding %s (pid %d)", self.path, self.pid)

    def _refuse_if_held(self, holder: _Holder) -> None:
        profile, pid = self.profile, holder.record.pid
        stop_hint = f"`beamlink {profile.kind} stop {profile.name}`"
        details = {"pid": pid, "host": holder.record.host, "pid_file": str(self.path)}
        if holder.process is not None and holder.fresh:
            raise Conflict(
                f"{profile.label} is already running (pid {pid}): stop it with {stop_hint}, or use restart",
                details=details,
            )
        if holder.process is not None:
            raise Conflict(
                f"{profile.label} is running (pid {pid}) but has not refreshed its pid file for "
                f"{holder.age:.0f} s, so it looks hung: stop it with {stop_hint}",
                details=details,
            )
        if not holder.local and holder.fresh:
            raise Conflict(
                f"{profile.label} is already running on host {holder.record.host} (pid {pid}): stop it "
                f"there with {stop_hint}, or delete {self.path} and it stops within "
                f"{PID_TOUCH_PERIOD:.0f} s",
                details=details,
            )

    def touch(self) -> bool:
        """Refresh the mtime. False when the file is gone or names another process: the daemon must stop."""
        record = _read_pid_record(self.path)
        if record is None or record.pid != self.pid:
            return False
        os.utime(self.path)
        return True

    def release(self) -> None:
        """Remove the pid file if it is still ours."""
        if _remove_pid_file(self.path, self.pid):
            log.debug("released %s", self.path)

    async def keep_fresh(self, stop: asyncio.Event, *, period: float = PID_TOUCH_PERIOD) -> None:
        """Touch the pid file every ``period`` s until ``stop`` is set; set ``stop`` if the file was removed.

        As in Globus Compute, deleting ``daemon.pid`` is a way to stop the daemon, even from another host.
        """
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
            if stop.is_set():
                return
            try:
                held = self.touch()
            except OSError as exc:  # a shared filesystem hiccup is no reason to stop
                log.warning("could not refresh the pid file %s: %s", self.path, exc)
                continue
            if not held:
                log.warning(
                    "the pid file %s was removed or taken over by another process: stopping", self.path
                )
                stop.set()

    def __enter__(self) -> PidFile:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- logs -----------------------------------------------------------------------------------------------


# The handlers configure_logging installed, so that a second call replaces them and nothing else.
_installed_handlers: list[logging.Handler] = []


def configure_logging(profile: AgentProfile, *, foreground: bool, level: str = "INFO") -> None:
    """Log to ``profile.log_path`` (rotated at 5 MB, 3 backups) and, in the foreground, to stderr too.

    For entry points only. Handlers installed by a previous call are replaced; others are left alone.
    """
    levels = logging.getLevelNamesMapping()
    name = level.upper()
    if name not in levels or name == "NOTSET":
        raise ConfigError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    profile.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    formatter = logging.Formatter(_LOG_FORMAT)
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            profile.log_path, maxBytes=_LOG_MAX_BYTES, backupCount=_LOG_BACKUPS, encoding="utf-8"
        )
    ]
    if foreground:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for old in _installed_handlers:
        root.removeHandler(old)
        old.close()
    _installed_handlers[:] = handlers
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(levels[name])
    # websockets logs every frame at DEBUG; our own debug output is what an operator is after.
    logging.getLogger("websockets").setLevel(max(logging.INFO, levels[name]))


def _tail(path: Path, lines: int, *, offset: int = 0) -> list[str]:
    """The last ``lines`` lines of ``path`` after byte ``offset``, read from the end (logs can be big)."""
    if lines <= 0:
        return []
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        if offset > end:  # rotated or truncated since: all of it is new
            offset = 0
        data, pos = b"", end
        while pos > offset and data.count(b"\n") <= lines:
            step = min(65536, pos - offset)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def tail_log(profile: AgentProfile, lines: int = _TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of the agent's log (empty when there is no log yet)."""
    return _tail(profile.log_path, lines)


def follow_log(profile: AgentProfile, *, poll_interval: float = 0.25) -> Generator[str, None, None]:
    """Yield lines as they are appended to the log, across rotations, forever (``tail -F``).

    Starts at the end of the current file (show :func:`tail_log` first); the caller stops by closing the
    generator or on KeyboardInterrupt.
    """
    path = profile.log_path
    handle = None
    from_start = not path.exists()  # a log that appears later is read whole
    buffer = ""
    try:
        while True:
            if handle is None:
                try:
                    handle = path.open(encoding="utf-8", errors="replace")
                except FileNotFoundError:
                    time.sleep(poll_interval)
                    from_start = True
                    continue
                if not from_start:
                    handle.seek(0, os.SEEK_END)
            chunk = handle.read()
            if chunk:
                buffer += chunk
                *complete, buffer = buffer.split("\n")
                yield from complete
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != os.fstat(handle.fileno()).st_ino:
                # Rotated: finish the old file (lines written just before the rename), then the new one.
                buffer += handle.read()
                handle.close()
                handle, from_start = None, True
                *complete, buffer = buffer.split("\n")
                yield from complete
                continue
            if current.st_size < handle.tell():  # truncated in place
                handle.seek(0)
                continue
            time.sleep(poll_interval)
    finally:
        if handle is not None:
            handle.close()


# -- starting a detached daemon -------------------------------------------------------------------------


def report_ready(profile: AgentProfile, **info: Any) -> None:
    """Tell the command that spawned this daemon that it is up; ``info`` is returned by spawn_daemon."""
    _write_atomic(profile.status_path, json.dumps({"state": "ready", "pid": os.getpid(), **info}) + "\n")


def report_failed(profile: AgentProfile, message: str) -> None:
    """Tell the spawning command why this daemon could not start (the daemon then exits)."""
    _write_atomic(profile.status_path, json.dumps({"state": "failed", "message": message}) + "\n")


def _read_status(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _new_output(paths: dict[Path, int]) -> str:
    """What the child wrote to each file since spawn, last lines only, for an error message."""
    parts = []
    for path, offset in paths.items():
        lines = _tail(path, _TAIL_LINES, offset=offset)
        if lines:
            parts.append(f"\nlast lines of {path}:\n" + "\n".join(f"  {line}" for line in lines))
    return "".join(parts) or "\n(the daemon wrote nothing to its log)"


def spawn_daemon(
    profile: AgentProfile, argv: list[str], *, env: dict[str, str] | None = None, ready_timeout: float = 60
) -> dict[str, Any]:
    """Start ``argv`` detached (own session, no terminal) and wait until it calls :func:`report_ready`.

    ``env`` adds to (does not replace) the current environment; :data:`DETACHED_ENV` is set to ``1``. The
    child's stdout and stderr are appended to ``logs/daemon.out``, which catches what it prints before its
    logging is set up. Returns the ready info (``state``, ``pid`` and what the child passed). Raises
    StartupError, with the reason and the new lines of both logs, when the child reports failure, exits
    first, or is not ready within ``ready_timeout`` s (then its process group is killed).
    """
    profile.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    profile.status_path.unlink(missing_ok=True)  # an old "ready" must not pass for this start's
    out_path = profile.log_dir / "daemon.out"
    offsets = {profile.log_path: _size(profile.log_path), out_path: _size(out_path)}
    child_env = {**os.environ, **(env or {}), DETACHED_ENV: "1"}
    with out_path.open("ab") as out:
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=profile.dir,  # never hold the caller's working directory (it may be unmounted later)
                start_new_session=True,
            )
        except OSError as exc:
            raise StartupError(f"cannot start {profile.label}: {argv[0]}: {exc.strerror or exc}") from exc
    details = {"pid": child.pid, "log": str(profile.log_path), "output": str(out_path)}
    deadline = time.monotonic() + ready_timeout
    while True:
        exit_code = child.poll()
        status = _read_status(profile.status_path)  # after poll(): a child that reported and exited is seen
        ready = status is not None and status.get("state") == "ready"
        if status is not None and ready and exit_code is None:
            log.info("%s started (pid %s)", profile.label, status.get("pid"))
            # The daemon outlives this Popen on purpose. Marking it finished keeps subprocess from warning
            # "still running" when the object is dropped; stop_daemon reaps the daemon if it is our child.
            child.returncode = 0
            return status
        if status is not None and status.get("state") == "failed":
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5.0)  # it exits right after reporting; do not leave it behind as a zombie
            _kill_group(child)
            raise StartupError(
                f"{profile.label} failed to start: {status.get('message')}{_new_output(offsets)}",
                details=details,
            )
        if exit_code is not None:
            when = "right after it reported ready" if ready else "before it was ready"
            raise StartupError(
                f"{profile.label} exited with code {exit_code} {when}{_new_output(offsets)}",
                details={**details, "exit_code": exit_code},
            )
        if time.monotonic() >= deadline:
            _kill_group(child)
            raise StartupError(
                f"{profile.label} did not report ready within {ready_timeout:g} s and was killed"
                f"{_new_output(offsets)}",
                details=details,
            )
        time.sleep(0.05)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL a spawned child's whole tree (its own process group, plus descendants that left it)."""
    try:
        proc = psutil.Process(child.pid)
        descendants = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        proc, descendants = None, []
    _kill_all([proc, *descendants] if proc else descendants, group=child.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(5.0)


# -- stopping -------------------------------------------------------------------------------------------


def _running(proc: psutil.Process) -> bool:
    """Alive, counting a zombie as dead (its parent may never reap it, e.g. a container's PID 1)."""
    try:
        if not proc.is_running():  # also False when the pid now belongs to another process
            return False
        if proc.status() == psutil.STATUS_ZOMBIE:
            with contextlib.suppress(OSError):
                os.waitpid(proc.pid, os.WNOHANG)  # reap it if it is our own child
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return True


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` s for ``procs`` to exit; return those still running."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        alive = [p for p in procs if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)


def _kill_all(procs: list[psutil.Process], *, group: int | None) -> None:
    """SIGKILL each process and the process group ``group``; psutil refuses to signal a recycled pid."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    if group is not None and group != os.getpgrp():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    _wait_gone(procs, 5.0)


def stop_daemon(profile: AgentProfile, *, timeout: float = 15.0) -> int:
    """Stop the profile's daemon and every process it started; return its pid, or 0 if none was running.

    SIGTERM first, so the daemon can hand its tasks back; after ``timeout`` s, SIGKILL for the daemon,
    all its descendants (listed *before* any signal, since a dying daemon's children are re-parented out
    of reach) and its process group (the daemon leads one). Descendants that outlive a clean exit get
    SIGTERM, and SIGKILL a second later: after one ``stop`` no worker remains.

    A pid file whose process is gone (a crash) is just removed and 0 is returned, with a warning in the
    log: the agent is stopped either way. Conflict when no pid file exists (state Stopped or
    Initialized), or when the daemon runs on another host (a shared home).
    """
    holder = _inspect(profile.pid_path)
    if holder is None:
        raise Conflict(
            f"{profile.label} is not running (state: {profile.state()})", details={"name": profile.name}
        )
    pid = holder.record.pid
    if not holder.local and holder.fresh:
        raise Conflict(
            f"{profile.label} runs on host {holder.record.host} (pid {pid}): stop it there, or delete "
            f"{profile.pid_path} and it stops within {PID_TOUCH_PERIOD:.0f} s",
            details={"pid": pid, "host": holder.record.host},
        )
    proc = holder.process
    if proc is None:
        _remove_pid_file(profile.pid_path, pid)
        why = holder.why_stale()
        log.warning("%s was not running: removed its stale pid file (pid %d, %s)", profile.label, pid, why)
        return 0

    try:
        descendants = proc.children(recursive=True)
        group: int | None = os.getpgid(proc.pid)
    except (psutil.NoSuchProcess, ProcessLookupError):
        descendants, group = [], None
    if group != proc.pid:
        group = None  # not a session leader (started by hand in a shell): signal only its own tree
    log.info("stopping %s (pid %d, %d child processes)", profile.label, proc.pid, len(descendants))
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.terminate()
    if _wait_gone([proc], timeout):
        with contextlib.suppress(psutil.NoSuchProcess):
            known = {p.pid for p in descendants}
            descendants += [p for p in proc.children(recursive=True) if p.pid not in known]
        log.warning(
            "%s (pid %d) did not stop within %g s: killing it and its child processes",
            profile.label,
            proc.pid,
            timeout,
        )
        _kill_all([proc, *descendants], group=group)
    else:
        leftovers = [p for p in descendants if _running(p)]
        if leftovers:
            log.warning("%d process(es) outlived %s: terminating them", len(leftovers), profile.label)
            for leftover in leftovers:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    leftover.terminate()
            leftovers = _wait_gone(leftovers, 1.0)
        # Anything still in the daemon's process group is an orphan of it, listed or not.
        _kill_all(leftovers, group=group)
    _remove_pid_file(profile.pid_path, pid)
    return proc.pid


# -- the gateway client ---------------------------------------------------------------------------------


class AgentRejected(Exception):
    """The service refused this agent for good (close code 4401/4409, or HTTP 401/403/404 at the
    handshake): reconnecting would not help, so the daemon should stop and say why."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        if code in (CLOSE_AUTH, 401):
            why = (
                "the service rejected this agent's credentials (the agent was deleted, or another "
                "instance registered it again and received a new secret); start it again to re-register"
            )
        elif code == CLOSE_REPLACED:
            why = "another instance of this agent connected to the service and took over"
        else:
            why = "the service refused the connection: check the service URL and that the agent exists"
        super().__init__(f"{why} (code {code}{': ' + reason if reason else ''})")


_FATAL_HTTP = frozenset({401, 403, 404})
_STABLE_AFTER = 5.0  # a connection that lived this long resets the backoff
_QUIET_PERIOD = 30.0  # while the service stays unreachable, log a failure at most this often


def agent_ws_url(url: str) -> str:
    """``http(s)://HOST[/PREFIX]`` → ``ws(s)://HOST[/PREFIX]/v1/agents/connect`` (a prefix is kept for a
    service behind a reverse proxy)."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ConfigError(
            f"service URL {url!r} is not an http(s) URL: use e.g. https://beamlink.example.org",
            details={"url": url},
        )
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + CONNECT_PATH, "", ""))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, WebSocketException) else f"{type(exc).__name__}: {text}"


def _response_reason(exc: InvalidStatus) -> str:
    """The service's error message from a refused handshake (its body is ``{"code", "message"}``)."""
    body = (exc.response.body or b"").decode("utf-8", errors="replace").strip()
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(json.loads(body)["message"])
    return body[:300]


async def _unless_stopped(awaitable: Awaitable[_T], stop: asyncio.Event) -> tuple[bool, _T | None]:
    """Await ``awaitable`` unless ``stop`` is set first (then cancel it): ``(finished, result)``."""
    work = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
    if work.cancelled():
        return False, None
    return True, work.result()


class GatewayClient:
    """One agent's WebSocket to the service, kept open: reconnects with backoff, sends heartbeats.

    Frames are handed to ``on_message`` one at a time, in order (handlers should be quick, and hand long
    work to tasks). An exception in a callback is logged and the loop goes on. Delivery guarantees are the
    caller's: a message passed to :meth:`send` is only handed to the socket, so keep it (spool) until the
    service acknowledges it.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Callable[[], dict[str, str]],
        on_connect: Callable[[], Awaitable[None]],
        on_message: Callable[[str], Awaitable[None]],
        on_disconnect: Callable[[], Awaitable[None]] | None = None,
        heartbeat: Callable[[], str] | None = None,
        heartbeat_period: float = 30.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if heartbeat_period <= 0 or backoff_initial <= 0 or backoff_max < backoff_initial:
            raise InvalidInput(
                "heartbeat_period and backoff_initial must be > 0, and backoff_max >= backoff_initial"
            )
        self.url = agent_ws_url(url)
        self._headers = headers
        self._on_connect = on_connect
        self._on_message = on_message
        self._on_disconnect = on_disconnect
        self._heartbeat = heartbeat
        self._heartbeat_period = heartbeat_period
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_message_bytes = max_message_bytes
        self._ws: ClientConnection | None = None

    @property
    def connected(self) -> bool:
        ws = self._ws
        return ws is not None and ws.state is State.OPEN

    async def send(self, text: str) -> bool:
        """Send one text frame; False (nothing sent) when not connected."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set (then close with code 1000 and return).

        Raises :class:`AgentRejected` when the service refuses the agent for good.
        """
        delay = self._backoff_initial
        failures = 0  # consecutive failed connection attempts
        last_report = 0.0  # when a failure was last logged above DEBUG
        while not stop.is_set():
            try:
                finished, ws = await _unless_stopped(self._dial(), stop)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in _FATAL_HTTP:
                    raise AgentRejected(status, _response_reason(exc)) from exc
                problem = f"HTTP {status} at the handshake: {_response_reason(exc)}"
            except (OSError, TimeoutError, WebSocketException) as exc:
                problem = _describe(exc)
            else:
                if not finished or ws is None:
                    return
                if stop.is_set():  # connected just as we were told to stop
                    await ws.close(1000, "agent stopping")
                    return
                after = f" after {failures} failed attempts" if failures else ""
                log.info("connected to %s%s", self.url, after)
                failures = 0
                started = time.monotonic()
                reason = await self._session(ws, stop)
                if reason is None:
                    return
                if time.monotonic() - started > _STABLE_AFTER:
                    delay = self._backoff_initial
                log.info("disconnected from %s: %s; reconnecting", self.url, reason)
                await self._wait(delay, stop)
                delay = min(delay * 2, self._backoff_max)
                continue
            failures += 1
            now = time.monotonic()
            if failures == 1 or now - last_report >= _QUIET_PERIOD:
                so_far = f" ({failures} attempts so far)" if failures > 1 else ""
                log.warning("cannot connect to %s: %s; retrying%s", self.url, problem, so_far)
                last_report = now
            else:
                log.debug("cannot connect to %s: %s (attempt %d)", self.url, problem, failures)
            await self._wait(delay, stop)
            delay = min(delay * 2, self._backoff_max)

    async def _dial(self) -> ClientConnection:
        return await connect(
            self.url,
            additional_headers=self._headers(),
            max_size=self._max_message_bytes,
            open_timeout=15,
            compression=None,  # see service/server.py: deflate costs more than it saves here
        )

    async def _wait(self, delay: float, stop: asyncio.Event) -> None:
        # Jitter spreads the reconnects of many agents after the service restarts.
        pause = min(self._backoff_max, delay * random.uniform(0.5, 1.5))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> str | None:
        """Serve one connection; return why it ended, or None when ``stop`` ended it."""
        self._ws = ws
        beater = asyncio.create_task(self._beat(ws)) if self._heartbeat is not None else None
        reader: asyncio.Task[ConnectionClosed] | None = None
        stopped = True
        failed_hello = False
        try:
            try:
                await _unless_stopped(self._on_connect(), stop)
            except ConnectionClosed:
                pass  # the reader below sees the close and reports it
            except Exception:
                log.exception("on_connect failed: closing the connection to start over")
                failed_hello = True
                await ws.close(1011, "agent error after connect")
            if not stop.is_set():
                # Read only after on_connect returned, so the answer to hello comes after hello was sent.
                reader = asyncio.create_task(self._read(ws))
                finished, _ = await _unless_stopped(asyncio.shield(reader), stop)
                stopped = not finished
        finally:
            self._ws = None
            await ws.close(1000, "agent stopping")  # a no-op when the connection is already closed
            for task in (beater, reader):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if stopped or reader is None:
            return None
        closed = reader.result()
        code = closed.rcvd.code if closed.rcvd is not None else None
        reason = closed.rcvd.reason if closed.rcvd is not None else ""
        await self._call_disconnect()
        if code in (CLOSE_AUTH, CLOSE_REPLACED):
            raise AgentRejected(code, reason)
        if code == CLOSE_INVALID:
            log.warning("the service closed the connection over an invalid message: %s", reason)
        if failed_hello:
            return "on_connect failed"
        if code is None:
            return "connection lost"
        return f"closed by the service with code {code}{' (' + reason + ')' if reason else ''}"

    async def _read(self, ws: ClientConnection) -> ConnectionClosed:
        """Dispatch frames until the connection ends; return the ConnectionClosed that ended it."""
        while True:
            try:
                frame = await ws.recv()
            except ConnectionClosed as exc:
                return exc
            text = frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")
            try:
                await self._on_message(text)
            except ConnectionClosed:
                log.debug("connection closed while handling a message")
            except Exception:
                log.exception("error while handling a message from the service: %.200s", text)

    async def _beat(self, ws: ClientConnection) -> None:
        heartbeat = self._heartbeat
        if heartbeat is None:
            return
        while True:
            await asyncio.sleep(self._heartbeat_period)
            try:
                text = heartbeat()
            except Exception:
                log.exception("building a heartbeat failed")
                continue
            try:
                await ws.send(text)
            except ConnectionClosed:
                return

    async def _call_disconnect(self) -> None:
        if self._on_disconnect is None:
            return
        try:
            await self._on_disconnect()
        except Exception:
            log.exception("on_disconnect failed")


# -- the foreground daemon's event loop -----------------------------------------------------------------


async def serve_gateway(
    gateway: GatewayClient,
    welcomed: asyncio.Event,
    stop: asyncio.Event,
    *,
    profile: AgentProfile,
    agent_id: str,
    detached: bool,
    background: list[asyncio.Task[Any]],
    before_disconnect: Callable[[], Awaitable[None]],
) -> None:
    """The life of an agent's connection, the same for endpoints and collections.

    Runs the gateway until ``stop`` is set (or the service refuses the agent, which is raised). Reports
    ready to the spawning command once welcomed, or after 10 s of trying (the service may come later).
    On the way out ``before_disconnect`` runs while the connection is still open (a goodbye, unfinished
    work handed back), then the gateway and the ``background`` tasks stop.
    """
    gateway_stop = asyncio.Event()  # its own: on shutdown the connection outlives ``stop``
    running = asyncio.create_task(gateway.run(gateway_stop))
    try:
        waiting = asyncio.create_task(welcomed.wait())
        await asyncio.wait({waiting, running}, timeout=10.0, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if running.done():
            running.result()  # AgentRejected and friends surface here
        if detached:
            report_ready(profile, **{f"{profile.kind}_id": agent_id, "connected": welcomed.is_set()})
        log.info("%s %s is running (pid file %s)", profile.kind, agent_id, profile.pid_path)
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if running.done():
            running.result()
    finally:
        await before_disconnect()
        gateway_stop.set()
        for task in background:
            task.cancel()
        await asyncio.gather(running, *background, return_exceptions=True)


def run_until_stopped(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in a new event loop; SIGTERM or Ctrl-C set ``stop`` for a clean shutdown.

    A second Ctrl-C exits at once (exit code 130) without cleaning up; the pid file it leaves behind is
    stale, and the next start removes it.
    """

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        interrupts = 0

        def on_sigterm() -> None:
            log.info("received SIGTERM: stopping")
            stop.set()

        def on_sigint() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                log.info("interrupted: stopping cleanly (interrupt again to exit at once)")
                stop.set()
                return
            log.warning("interrupted again: exiting without a clean stop")
            logging.shutdown()
            os._exit(130)

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            await main(stop)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)

    asyncio.run(runner())
