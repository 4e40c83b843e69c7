"""`beamlink up` / `beamlink down` as real processes: a service and agents in temporary homes on free ports.

Every site a test brings up is taken down by the ``sites`` fixture, and anything still alive after that
is killed, so a failing test leaves no process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from beamlink.cli.site import SiteState
from beamlink.service.launcher import free_port
from e2e_helpers import process_tree
from helpers import CliResult

SMALL_SITE = """\
service: {{home: ./home, port: {port}}}
collections:
  local: {{root: ./data/local, heartbeat_period: 1}}
endpoints:
  worker: {{engine: {{type: thread, max_workers: 2}}, heartbeat_period: 1}}
"""


@dataclass
class Sites:
    """Runs `beamlink` for the tests and remembers every site brought up, to take it down at the end."""

    tmp_path: Path
    downs: list[list[str]] = field(default_factory=list)
    seen: list[psutil.Process] = field(default_factory=list)

    def cli(self, *args: str, timeout: float = 120) -> CliResult:
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "beamlink", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def write(self, text: str, name: str = "site.yaml") -> Path:
        path = self.tmp_path / name
        path.write_text(text)
        return path

    def up(self, *args: str) -> CliResult:
        self.downs.append(["down", *args])
        result = self.cli("up", "--detach", *args)
        self.seen += processes(self.home_of(args))
        return result

    def home_of(self, args: tuple[str, ...]) -> Path:
        if "--home" in args:
            return Path(args[args.index("--home") + 1])
        return self.tmp_path / ("other" if "other.yaml" in args[-1] else "home")

    def cleanup(self) -> None:
        for args in reversed(self.downs):
            self.cli(*args)
        for proc in self.seen:
            if proc.is_running():
                proc.kill()


def processes(home: Path) -> list[psutil.Process]:
    """The service and every agent of a site home, with all their children."""
    pids = []
    state = home / "site-state.json"
    if state.is_file():
        service = json.loads(state.read_text()).get("service") or {}
        if service.get("pid"):
            pids.append(service["pid"])
    for pid_file in home.glob("*s/*/daemon.pid"):
        pids.append(int(pid_file.read_text().split()[0]))
    return [proc for pid in pids for proc in process_tree(pid)]


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    gone_states = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    return [p for p in procs if p.is_running() and p.status() not in gone_states]


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The site table's rows by name: [kind, status, id]."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃| ").split("│")]
        if len(cells) == 4 and cells[1] in ("service", "collection", "endpoint"):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    found = Sites(tmp_path)
    yield found
    found.cleanup()


def test_up_starts_the_site_a_second_up_reuses_it_and_down_stops_it(sites: Sites, tmp_path: Path) -> None:
    site = sites.write(SMALL_SITE.format(port=free_port()))
    first = sites.up("-f", str(site))
    assert first.code == 0, first.stderr + first.stdout
    rows = table_rows(first.stdout)
    assert set(rows) == {"service", "local", "worker"}
    assert all(status == "Running" for _, status, _ in rows.values()), first.stdout
    assert (tmp_path / "data" / "local").is_dir()  # created, relative to the site file
    assert (tmp_path / "home" / "endpoints" / "worker" / "config.yaml").is_file()
    running = processes(tmp_path / "home")
    assert len(alive(running)) >= 3

    second = sites.up("-f", str(site))
    assert second.code == 0, second.stderr + second.stdout
    assert table_rows(second.stdout) == rows  # same ids
    assert "service at http://127.0.0.1" in second.stdout
    assert "already running" in second.stdout
    assert "started collection" not in second.stdout
    assert "started endpoint" not in second.stdout
    assert {p.pid for p in processes(tmp_path / "home")} == {p.pid for p in running}
    assert sorted(p.name for p in (tmp_path / "home" / "endpoints").iterdir()) == ["worker"]

    down = sites.cli("down", "-f", str(site))
    assert down.code == 0, down.stderr
    assert "stopped endpoint 'worker'" in down.stdout
    assert "stopped collection 'local'" in down.stdout
    assert "stopped the service" in down.stdout
    assert alive(running) == []
    again = sites.cli("down", "-f", str(site))
    assert again.code == 0, again.stderr
    assert "endpoint 'worker': not running" in again.stdout
    assert "nothing to stop" in again.stdout


def test_ctrl_c_in_the_foreground_stops_the_site(sites: Sites, tmp_path: Path) -> None:
    site = sites.write(SMALL_SITE.format(port=free_port()))
    sites.downs.append(["down", "-f", str(site)])
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "beamlink", "up", "-f", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        output = ""
        while "Ctrl-C stops it" not in output:
            line = proc.stdout.readline()
            assert line, output
            output += line
        running = processes(tmp_path / "home")
        sites.seen += running
        assert len(alive(running)) >= 3
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output + rest
    assert "stopped the service" in rest
    assert alive(running) == []


def test_a_port_in_use_is_a_clear_error(sites: Sites, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = sites.up("-f", str(sites.write(SMALL_SITE.format(port=port))))
    assert result.code == 1
    assert f"port {port} on 127.0.0.1 is already in use by another program" in result.stderr
    assert "choose another port with --port or service.port" in result.stderr
    assert not (tmp_path / "home" / "site-state.json").exists()
    assert not (tmp_path / "home" / "endpoints").exists()


def test_a_site_can_use_a_running_service_and_down_leaves_it_running(sites: Sites, tmp_path: Path) -> None:
    first = sites.up("-f", str(sites.write(SMALL_SITE.format(port=(port := free_port())))))
    assert first.code == 0, first.stderr
    url = f"http://127.0.0.1:{port}"
    # A home logged in to that service (here with the admin's token), as `beamlink login` leaves one.
    (tmp_path / "other").mkdir()
    shutil.copy(tmp_path / "home" / "credentials.json", tmp_path / "other" / "credentials.json")
    other = sites.write(
        f"service: {{url: '{url}', home: ./other}}\nendpoints:\n  extra: {{engine: thread}}\n", "other.yaml"
    )
    joined = sites.up("-f", str(other))
    assert joined.code == 0, joined.stderr + joined.stdout
    assert f"service at {url}: in use (service.url)" in joined.stdout
    assert table_rows(joined.stdout)["extra"][1] == "Running"
    down = sites.cli("down", "-f", str(other))
    assert "stopped endpoint 'extra'" in down.stdout
    assert f"service at {url}: left running" in down.stdout
    assert httpx.get(f"{url}/health").status_code == 200


@pytest.mark.slow
def test_the_demo_site_comes_up_with_all_five_agents(sites: Sites, tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = sites.up("--home", str(home), "--port", str(free_port()))
    assert result.code == 0, result.stderr + result.stdout
    rows = table_rows(result.stdout)
    assert {name: row[0] for name, row in rows.items()} == {
        "service": "service",
        "local": "collection",
        "remote": "collection",
        "portal": "collection",
        "non_compute": "endpoint",
        "compute": "endpoint",
    }
    assert all(status == "Running" for _, status, _ in rows.values()), result.stdout
    assert all((home / "data" / name).is_dir() for name in ("local", "remote", "portal"))
    running = processes(home)
    down = sites.cli("down", "--home", str(home))
    assert down.code == 0, down.stderr
    assert down.stdout.count("stopped ") == 6
    assert alive(running) == []


def test_a_home_brought_up_by_another_site_is_refused(sites: Sites, tmp_path: Path) -> None:
    SiteState(source="/elsewhere/site.yaml").write(tmp_path / "home")
    result = sites.cli("up", "-d", "-f", str(sites.write(SMALL_SITE.format(port=free_port()))))
    assert result.code == 1
    assert f"the home {tmp_path / 'home'} is in use by the site /elsewhere/site.yaml" in result.stderr
    assert not (tmp_path / "home" / "endpoints").exists()


def test_a_service_url_where_nothing_answers(sites: Sites, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    site = sites.write(f"service: {{url: '{url}', home: ./home}}\nendpoints:\n  extra: {{}}\n")
    result = sites.cli("up", "-d", "-f", str(site))
    assert result.code == 4  # ServiceUnreachable, as for every command
    assert f"no beamlink service answers at {url}" in result.stderr
    assert "remove service.url" in result.stderr
