"""The agent daemon machinery, with real processes, real pid files and a real WebSocket server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from beamlink.agents.daemon import (
    PID_TOUCH_PERIOD,
    AgentProfile,
    AgentRejected,
    AgentState,
    GatewayClient,
    PidFile,
    agent_ws_url,
    configure_logging,
    follow_log,
    list_profiles,
    spawn_daemon,
    stop_daemon,
    tail_log,
    validate_name,
)
from beamlink.errors import ConfigError, Conflict, InvalidInput, NotFound, StartupError
from beamlink.service.launcher import free_port

HOST = socket.gethostname()

# A small daemon: holds the pid file, starts two workers (one in its process group, one that left it),
# reports ready, and on SIGTERM exits *without* stopping its workers, so stop_daemon must find them.
CHILD = textwrap.dedent(
    """
    import asyncio, logging, signal, subprocess, sys, time
    from pathlib import Path
    from beamlink.agents.daemon import (
        AgentProfile, PidFile, configure_logging, report_failed, report_ready, run_until_stopped,
    )

    mode, home = sys.argv[1], Path(sys.argv[2])
    profile = AgentProfile("endpoint", "ep", home)
    configure_logging(profile, foreground=False)
    log = logging.getLogger("child")
    if mode == "fail":
        log.error("engine.type 'Nope' is unknown")
        report_failed(profile, "config.yaml: engine.type 'Nope' is unknown")
        sys.exit(78)
    if mode == "crash":
        print("Traceback (most recent call last): boom", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "hang":
        log.info("thinking forever")
        time.sleep(60)
    pidfile = PidFile(profile)
    pidfile.acquire()
    profile.write_identity({"id": "e-1", "url": "http://127.0.0.1:1", "secret": "s"})
    workers = [
        subprocess.Popen(["sleep", "60"]),
        subprocess.Popen(["sleep", "60"], start_new_session=True),
    ]
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        report_ready(profile, workers=[w.pid for w in workers])
        while True:
            time.sleep(1)

    async def main(stop):
        keep = asyncio.create_task(pidfile.keep_fresh(stop, period=0.1))
        report_ready(profile, workers=[w.pid for w in workers])
        log.info("serving")
        await stop.wait()
        await keep
        log.info("stopping, leaving the workers behind")

    run_until_stopped(main)
    pidfile.release()
    """
)


def child(mode: str, home: Path) -> list[str]:
    return [sys.executable, "-c", CHILD, mode, str(home)]


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def profile(tmp_path: Path) -> AgentProfile:
    return AgentProfile("endpoint", "ep", tmp_path)


def write_pid(
    profile: AgentProfile, pid: int, *, host: str = HOST, written_at: float | None = None, age: float = 0.0
) -> None:
    profile.dir.mkdir(parents=True, exist_ok=True)
    written = time.time() if written_at is None else written_at
    profile.pid_path.write_text(f"{pid}\n{host}\n{written}\n")
    then = time.time() - age
    os.utime(profile.pid_path, (then, then))


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


# -- names and profiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "empty"),
        ("x" * 129, "129 characters"),
        ("a/b", "'/'"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("it's", "quote"),
        ('say"hi"', "quote"),
        (".hidden", "starts with '.'"),
    ],
)
def test_bad_names_are_refused_with_the_rule(name: str, rule: str) -> None:
    with pytest.raises(InvalidInput, match="invalid name") as caught:
        validate_name(name)
    assert rule in caught.value.message
    assert "e.g. 'my-endpoint'" in caught.value.message


@pytest.mark.parametrize("name", ["default", "my-endpoint_2", "a.b", "x" * 128, "ñame"])
def test_good_names_pass(name: str) -> None:
    assert validate_name(name) == name


def test_a_profile_cannot_escape_its_home(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        AgentProfile("endpoint", "../../etc", tmp_path)


def test_profile_layout(tmp_path: Path) -> None:
    profile = AgentProfile("collection", "data", tmp_path)
    assert profile.dir == tmp_path / "collections" / "data"
    assert profile.identity_path.name == "collection.json"
    assert profile.log_path == profile.dir / "logs" / "collection.log"
    assert profile.label == "collection 'data'"


def test_identity_is_written_private_and_read_back(profile: AgentProfile) -> None:
    assert profile.read_identity() is None
    profile.write_identity({"id": "e-1", "secret": "hush"})
    assert profile.read_identity() == {"id": "e-1", "secret": "hush"}
    assert stat.S_IMODE(profile.identity_path.stat().st_mode) == 0o600
    profile.identity_path.write_text("{not json")
    with pytest.raises(ConfigError, match="damaged"):
        profile.read_identity()


def test_list_profiles_sorted_and_only_real_ones(tmp_path: Path) -> None:
    for name in ("zeta", "alpha", "mid"):
        AgentProfile("endpoint", name, tmp_path).dir.mkdir(parents=True)
        AgentProfile("endpoint", name, tmp_path).config_path.write_text("engine: {type: thread}\n")
    (tmp_path / "endpoints" / "empty").mkdir()
    (tmp_path / "endpoints" / ".trash").mkdir()
    assert [p.name for p in list_profiles(tmp_path, "endpoint")] == ["alpha", "mid", "zeta"]
    assert list_profiles(tmp_path, "collection") == []


# -- states ---------------------------------------------------------------------------------------------


def test_states_initialized_stopped_running(profile: AgentProfile) -> None:
    with pytest.raises(NotFound, match="beamlink endpoint configure ep"):
        profile.state()
    profile.dir.mkdir(parents=True)
    profile.config_path.write_text("{}\n")
    assert profile.state() is AgentState.INITIALIZED
    profile.write_identity({"id": "e-1"})
    assert profile.state() is AgentState.STOPPED
    with PidFile(profile):
        assert profile.state() is AgentState.RUNNING
        assert profile.pid() == os.getpid()
    assert profile.state() is AgentState.STOPPED
    assert profile.pid() is None


def test_stale_pid_file_of_a_live_daemon_is_disconnected(profile: AgentProfile) -> None:
    write_pid(profile, os.getpid(), age=PID_TOUCH_PERIOD * 4)
    assert profile.state() is AgentState.DISCONNECTED


def test_dead_pid_is_disconnected(profile: AgentProfile) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_pid(profile, dead.pid)
    assert profile.state() is AgentState.DISCONNECTED


def test_recycled_pid_is_disconnected(profile: AgentProfile, sleeper: subprocess.Popen[bytes]) -> None:
    # The pid file was written before this process started, so the pid was reused: not our daemon.
    write_pid(profile, sleeper.pid, written_at=psutil.Process(sleeper.pid).create_time() - 10)
    assert profile.state() is AgentState.DISCONNECTED
    assert stop_daemon(profile) == 0  # and stop must not kill the innocent process
    assert sleeper.poll() is None
    assert not profile.pid_path.exists()


def test_a_pid_file_from_another_host_is_judged_by_freshness(profile: AgentProfile) -> None:
    write_pid(profile, 999_999, host="login2")
    assert profile.state() is AgentState.RUNNING
    with pytest.raises(Conflict, match="on host login2"):
        PidFile(profile).acquire()
    with pytest.raises(Conflict, match="runs on host login2"):
        stop_daemon(profile)
    write_pid(profile, 999_999, host="login2", age=60)
    assert profile.state() is AgentState.DISCONNECTED


# -- the pid file ---------------------------------------------------------------------------------------


def test_pid_file_is_exclusive(profile: AgentProfile) -> None:
    first = PidFile(profile)
    first.acquire()
    with pytest.raises(Conflict) as caught:
        PidFile(profile).acquire()
    assert caught.value.message == (
        f"endpoint 'ep' is already running (pid {os.getpid()}): "
        "stop it with `beamlink endpoint stop ep`, or use restart"
    )
    with pytest.raises(Conflict, match="is running"):
        profile.delete()
    first.release()
    assert not profile.pid_path.exists()


def test_a_hung_daemon_blocks_a_new_start(profile: AgentProfile) -> None:
    write_pid(profile, os.getpid(), age=60)
    with pytest.raises(Conflict, match="looks hung"):
        PidFile(profile).acquire()


def test_stale_pid_file_is_cleaned_by_the_next_start(
    profile: AgentProfile, caplog: pytest.LogCaptureFixture
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_pid(profile, dead.pid)
    pidfile = PidFile(profile)
    with caplog.at_level(logging.WARNING, logger="beamlink.agents.daemon"):
        pidfile.acquire()
    assert f"removed a stale pid file left by pid {dead.pid}" in caplog.text
    assert profile.pid() == os.getpid()
    pidfile.release()


def test_release_keeps_a_pid_file_that_is_not_ours(profile: AgentProfile) -> None:
    pidfile = PidFile(profile)
    pidfile.acquire()
    write_pid(profile, 12345)
    assert not pidfile.touch()
    pidfile.release()
    assert profile.pid() == 12345


def test_keep_fresh_touches_and_stops_when_the_file_is_deleted(profile: AgentProfile) -> None:
    pidfile = PidFile(profile)
    pidfile.acquire()
    os.utime(profile.pid_path, (time.time() - 20, time.time() - 20))

    async def scenario() -> None:
        stop = asyncio.Event()
        keeper = asyncio.create_task(pidfile.keep_fresh(stop, period=0.05))
        await asyncio.sleep(0.2)
        assert time.time() - profile.pid_path.stat().st_mtime < 1
        profile.pid_path.unlink()
        await asyncio.wait_for(keeper, 2)
        assert stop.is_set()

    asyncio.run(scenario())


# -- spawn and stop -------------------------------------------------------------------------------------


def test_spawn_then_one_stop_leaves_no_process(
    profile: AgentProfile, caplog: pytest.LogCaptureFixture
) -> None:
    info = spawn_daemon(profile, child("serve", profile.home), ready_timeout=20)
    tree = [info["pid"], *info["workers"]]
    assert info["state"] == "ready"
    assert profile.state() is AgentState.RUNNING
    assert profile.pid() == info["pid"]
    with caplog.at_level(logging.INFO, logger="beamlink.agents.daemon"):
        assert stop_daemon(profile, timeout=10) == info["pid"]
    assert [pid for pid in tree if not gone(pid)] == []
    assert "terminating them" in caplog.text  # the workers the daemon left behind
    assert profile.state() is AgentState.STOPPED
    log = "\n".join(tail_log(profile, 50))
    assert "INFO" in log
    assert "child: serving" in log
    assert "received SIGTERM" in log
    with pytest.raises(Conflict, match=r"endpoint 'ep' is not running \(state: Stopped\)"):
        stop_daemon(profile)


def test_stop_kills_a_daemon_that_ignores_sigterm(profile: AgentProfile) -> None:
    info = spawn_daemon(profile, child("stubborn", profile.home), ready_timeout=20)
    tree = [info["pid"], *info["workers"]]
    assert stop_daemon(profile, timeout=0.5) == info["pid"]
    assert [pid for pid in tree if not gone(pid)] == []
    assert not profile.pid_path.exists()


def test_a_daemon_that_reports_failure(profile: AgentProfile) -> None:
    with pytest.raises(StartupError) as caught:
        spawn_daemon(profile, child("fail", profile.home), ready_timeout=20)
    message = caught.value.message
    assert message.startswith("endpoint 'ep' failed to start: config.yaml: engine.type 'Nope' is unknown")
    assert "ERROR   child: engine.type 'Nope' is unknown" in message  # the log's tail


def test_a_daemon_that_exits_early(profile: AgentProfile) -> None:
    with pytest.raises(StartupError, match="exited with code 3 before it was ready") as caught:
        spawn_daemon(profile, child("crash", profile.home), ready_timeout=20)
    assert "Traceback (most recent call last): boom" in caught.value.message
    assert caught.value.details["exit_code"] == 3


def test_a_daemon_that_never_gets_ready_is_killed(profile: AgentProfile) -> None:
    with pytest.raises(StartupError, match="did not report ready within 1 s") as caught:
        spawn_daemon(profile, child("hang", profile.home), ready_timeout=1)
    assert gone(caught.value.details["pid"])


def test_stop_when_not_running(profile: AgentProfile) -> None:
    profile.dir.mkdir(parents=True)
    profile.config_path.write_text("{}\n")
    with pytest.raises(Conflict, match=r"not running \(state: Initialized\)"):
        stop_daemon(profile)


def test_stop_after_a_crash_removes_the_stale_pid_file(profile: AgentProfile) -> None:
    profile.dir.mkdir(parents=True)
    profile.write_identity({"id": "e-1"})
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_pid(profile, dead.pid)
    assert profile.state() is AgentState.DISCONNECTED
    assert stop_daemon(profile) == 0
    assert profile.state() is AgentState.STOPPED


def test_second_interrupt_exits_at_once() -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from beamlink.agents.daemon import run_until_stopped

        async def main(stop):
            print("ready", flush=True)
            await stop.wait()
            print("stopping", flush=True)
            await asyncio.sleep(60)  # a shutdown that hangs

        run_until_stopped(main)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline() == "stopping\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 130
    proc.stdout.close()


# -- logs -----------------------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_to_file_and_stderr(
    profile: AgentProfile, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(profile, foreground=True, level="debug")
    configure_logging(profile, foreground=True, level="INFO")  # replaces, does not add
    logging.getLogger("beamlink.test").info("hello %s", "log")
    logging.getLogger("beamlink.test").debug("not shown")
    assert capfd.readouterr().err.count("hello log") == 1
    [line] = tail_log(profile, 5)
    assert line.endswith("INFO    beamlink.test: hello log")
    with pytest.raises(ConfigError, match="unknown log level"):
        configure_logging(profile, foreground=False, level="loud")


def test_tail_log(profile: AgentProfile) -> None:
    assert tail_log(profile, 3) == []
    profile.log_dir.mkdir(parents=True)
    profile.log_path.write_text("".join(f"line {i}\n" for i in range(10_000)))
    assert tail_log(profile, 3) == ["line 9997", "line 9998", "line 9999"]


def test_follow_log_yields_new_lines_across_rotation(profile: AgentProfile) -> None:
    profile.log_dir.mkdir(parents=True)
    profile.log_path.write_text("old\n")

    def writer() -> None:
        time.sleep(0.2)
        with profile.log_path.open("a") as handle:
            handle.write("first\nsecond")
            handle.flush()
            time.sleep(0.1)
            handle.write(" half\n")
        profile.log_path.rename(profile.log_path.with_suffix(".log.1"))
        profile.log_path.write_text("after rotation\n")

    thread = threading.Thread(target=writer)
    thread.start()
    lines = follow_log(profile, poll_interval=0.02)
    try:
        assert [next(lines) for _ in range(3)] == ["first", "second half", "after rotation"]
    finally:
        lines.close()
        thread.join()


# -- the gateway client ---------------------------------------------------------------------------------


class FakeService:
    """A real WebSocket server on a fixed free port (so it can restart) that records what agents do."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[str] = []
        self.requests: list[Request] = []
        self.close_codes: list[int | None] = []
        self.greetings = ["welcome"]
        self.close_with: tuple[int, str] | None = None
        self.refuse_with: int | None = None
        self.server: Server | None = None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.requests.append(ws.request)
        if self.close_with:
            await ws.close(*self.close_with)
            return
        for greeting in self.greetings:
            await ws.send(greeting)
        async for message in ws:
            self.received.append(str(message))
            if message == "echo":
                await ws.send("echoed")
        self.close_codes.append(ws.close_code)

    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if self.refuse_with:
            return ws.respond(
                self.refuse_with, json.dumps({"code": "INVALID_CREDENTIALS", "message": "unknown agent"})
            )
        return None

    async def start(self) -> None:
        self.server = await serve(self.handler, "127.0.0.1", self.port, process_request=self.process_request)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Agent:
    """A GatewayClient with recording callbacks."""

    def __init__(self, url: str, **options: Any) -> None:
        self.messages: list[str] = []
        self.connects = 0
        self.disconnects = 0
        self.client = GatewayClient(
            url,
            headers=lambda: {"X-Beamlink-Agent": "e-1", "Authorization": "Bearer s3cret"},
            on_connect=self.on_connect,
            on_message=self.on_message,
            on_disconnect=self.on_disconnect,
            **{"backoff_initial": 0.02, "backoff_max": 0.1, **options},
        )
        self.stop = asyncio.Event()

    async def on_connect(self) -> None:
        self.connects += 1
        assert await self.client.send("hello")

    async def on_message(self, text: str) -> None:
        if text == "explode":
            raise RuntimeError("handler bug")
        self.messages.append(text)

    async def on_disconnect(self) -> None:
        self.disconnects += 1

    def run(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.client.run(self.stop))


def run_async(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), 10)

    asyncio.run(bounded())


def test_agent_ws_url() -> None:
    assert agent_ws_url("http://h:8420") == "ws://h:8420/v1/agents/connect"
    assert agent_ws_url("https://h/beamlink/") == "wss://h/beamlink/v1/agents/connect"
    with pytest.raises(ConfigError, match="not an http"):
        agent_ws_url("ftp://h")


def test_round_trip_heartbeats_and_clean_stop() -> None:
    async def scenario() -> None:
        service = FakeService()
        await service.start()
        agent = Agent(service.url, heartbeat=lambda: "beat", heartbeat_period=0.05)
        task = agent.run()
        await eventually(lambda: agent.messages == ["welcome"])
        assert agent.client.connected
        assert service.received[0] == "hello"
        assert await agent.client.send("echo")
        await eventually(lambda: "echoed" in agent.messages)
        await eventually(lambda: service.received.count("beat") >= 2)
        request = service.requests[0]
        assert request.path == "/v1/agents/connect"
        assert request.headers["Authorization"] == "Bearer s3cret"
        agent.stop.set()
        await task
        assert not agent.client.connected
        assert not await agent.client.send("late")
        await eventually(lambda: service.close_codes == [1000])
        assert agent.disconnects == 0  # a stop is not a connection loss
        await service.stop()

    run_async(scenario)


def test_reconnects_after_the_service_restarts() -> None:
    async def scenario() -> None:
        service = FakeService()
        await service.start()
        agent = Agent(service.url)
        task = agent.run()
        await eventually(lambda: agent.connects == 1 and agent.client.connected)
        await service.stop()
        await eventually(lambda: agent.disconnects == 1)
        assert not await agent.client.send("while down")
        await asyncio.sleep(0.3)  # several failed attempts with backoff
        await service.start()
        await eventually(lambda: agent.connects == 2 and agent.client.connected)
        assert service.received == ["hello", "hello"]
        agent.stop.set()
        await task
        await service.stop()

    run_async(scenario)


def test_a_failing_handler_does_not_kill_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        service = FakeService()
        service.greetings = ["explode", "welcome"]
        await service.start()
        agent = Agent(service.url)
        task = agent.run()
        await eventually(lambda: agent.messages == ["welcome"])
        await agent.client.send("echo")
        await eventually(lambda: "echoed" in agent.messages)
        assert agent.connects == 1
        agent.stop.set()
        await task
        await service.stop()

    with caplog.at_level(logging.ERROR, logger="beamlink.agents.daemon"):
        run_async(scenario)
    assert "error while handling a message from the service: explode" in caplog.text
    assert "RuntimeError: handler bug" in caplog.text


@pytest.mark.parametrize("code", [4401, 4409])
def test_rejection_close_codes_are_fatal(code: int) -> None:
    async def scenario() -> None:
        service = FakeService()
        service.close_with = (code, "go away")
        await service.start()
        agent = Agent(service.url)
        with pytest.raises(AgentRejected) as caught:
            await agent.client.run(agent.stop)
        assert (caught.value.code, caught.value.reason) == (code, "go away")
        assert agent.disconnects == 1
        assert len(service.requests) == 1  # no reconnect
        await service.stop()

    run_async(scenario)


def test_http_401_at_the_handshake_is_fatal() -> None:
    async def scenario() -> None:
        service = FakeService()
        service.refuse_with = 401
        await service.start()
        agent = Agent(service.url)
        with pytest.raises(AgentRejected, match="re-register") as caught:
            await agent.client.run(agent.stop)
        assert (caught.value.code, caught.value.reason) == (401, "unknown agent")
        assert agent.connects == 0
        await service.stop()

    run_async(scenario)


def test_an_unreachable_service_is_not_logged_on_every_attempt(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        agent = Agent(f"http://127.0.0.1:{free_port()}", backoff_initial=0.005, backoff_max=0.01)
        task = agent.run()
        await asyncio.sleep(0.5)
        assert not agent.client.connected
        agent.stop.set()
        await task

    with caplog.at_level(logging.DEBUG, logger="beamlink.agents.daemon"):
        run_async(scenario)
    warnings = [r for r in caplog.records if r.levelno >= logging.INFO]
    attempts = [r for r in caplog.records if r.levelno == logging.DEBUG and "cannot connect" in r.message]
    assert len(warnings) == 1
    assert "cannot connect to ws://127.0.0.1:" in warnings[0].message
    assert len(attempts) >= 5


def test_a_missing_program_is_a_startup_error(profile: AgentProfile) -> None:
    with pytest.raises(StartupError, match="cannot start endpoint 'ep': /nonexistent/python"):
        spawn_daemon(profile, ["/nonexistent/python"], ready_timeout=1)
