"""The XPCS app end to end on the built-in demo site, as real processes: `beamlink up` (service, three
collections, a thread endpoint and a Parsl endpoint), then `beamlink demo`, `beamlink app run` and
`beamlink app watch` against it. The site (the ``demo_site`` fixture of tests/e2e/conftest.py) is
brought up once for the session.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, write_synthetic_measurement
from beamlink.sdk import Client
from beamlink.service.launcher import free_port
from e2e_helpers import DemoSite
from helpers import CliResult

pytestmark = pytest.mark.slow

# Small enough to be quick on two cores, large enough for D within 5 % (tests/apps/xpcs/test_steps.py).
FRAMES, SIZE = 2048, 48


def _demo(demo_site: DemoSite) -> CliResult:
    port = demo_site.url.rsplit(":", 1)[1]
    return demo_site.cli(
        "demo", "--home", str(demo_site.home), "--port", port, "--frames", str(FRAMES), "--size", str(SIZE)
    )


def test_the_demo_runs_the_xpcs_flow_and_the_record_is_in_the_portal_with_its_plots(
    demo_site: DemoSite,
) -> None:
    first = _demo(demo_site)
    out = first.stdout
    assert first.code == 0, out + first.stderr
    for step in ("TransferRaw", "Correlate", "Plot", "GatherMetadata", "TransferResults", "Publish"):
        assert f"✓ {step}" in out, out
    assert "flow " in out
    assert " created" in out
    assert "SUCCEEDED" in out
    assert "✓ fitted D = " in out  # within 5 % of the true D, or the mark is "!"
    assert "the site was already up before the demo: left running" in out
    record_url = next(
        line.split("record: ", 1)[1] for line in out.splitlines() if line.startswith("record: ")
    )
    assert record_url.startswith(f"{demo_site.url}/portal/records/xpcs/")

    # Anyone may see the record: its page shows the figures, which the portal serves.
    with httpx.Client(timeout=30) as web:
        page = web.get(record_url)
        assert page.status_code == 200, page.text
        assert "g2.png" in page.text
        assert "gamma_q2.png" in page.text
        images = re.findall(r'src="(/portal/files/[^"]+/g2\.png)"', page.text)
        assert images, page.text
        figure = web.get(f"{demo_site.url}{html.unescape(images[0])}")
        assert figure.status_code == 200
        assert figure.content.startswith(b"\x89PNG")
    with Client(demo_site.url, anonymous=True) as anonymous:
        found = anonymous.search("xpcs", q="XPCS")
    assert found.total == 1
    content = found.gmeta[0].entries[0].content
    assert content["technique"] == "XPCS"
    assert content["diffusion_true_nm2_s"] == 4.9e6
    assert content["diffusion_relative_error"] <= 0.05
    assert {p["title"] for p in content["plots"]}  # interactive plot data travels with the record
    assert content["run_id"]
    with demo_site.client() as client:  # the app declared the portal's facets of its index
        facets = {f.field_name: f.type for f in client.get_index("xpcs").facets}
    assert facets["diffusion_nm2_s"] == "numeric_histogram"
    assert facets["sample"] == "terms"
    # The results landed on the portal collection, through the remote one.
    dataset = f"demo-A001-{SIZE}px-{FRAMES}f"
    assert (demo_site.home / "data" / "portal" / "xpcs" / dataset / "g2.png").is_file()
    assert (demo_site.remote / "xpcs" / dataset / f"{dataset}.h5").is_file()


def test_running_the_demo_twice_reuses_the_flow_the_functions_and_the_record(demo_site: DemoSite) -> None:
    again = _demo(demo_site)
    assert again.code == 0, again.stdout + again.stderr
    assert " unchanged, no function(s) registered (all reused)" in again.stdout
    assert "— reused" in again.stdout  # the measurement too
    with demo_site.client() as client:
        flows = [f for f in client.list_flows(owned=True) if "beamlink-app:xpcs" in f.keywords]
        assert len(flows) == 1
        # The flow's three functions, registered once (other apps' tests register their own).
        states = flows[0].definition["States"].values()
        ids = {s["Parameters"]["function"] for s in states if s.get("ActionUrl") == "beamlink:compute"}
        assert len(ids) == 3
        assert ids <= {f.id for f in client.list_functions(owned=True)}
        runs = client.list_runs(flow_id=flows[0].id)
        assert len(runs) >= 2
        assert client.search("xpcs", q="XPCS").total == 1


def test_a_payload_missing_keys_is_refused_before_anything_starts(demo_site: DemoSite) -> None:
    with demo_site.client() as client:
        runs_before = len(client.list_runs())
    # remote_root is filled from the remote collection this machine serves; measurement is not.
    result = demo_site.cli("app", "run", "xpcs", "--set", "index=xpcs")
    assert result.code == 1
    assert "lacks 1 key(s): measurement (needed by Names, TransferRaw" in result.stderr
    assert f"using remote_root={demo_site.remote}" in result.stdout
    # Elsewhere (no remote collection here) both are missing, and both are named.
    elsewhere = demo_site.cli("app", "run", "xpcs", "--set", "remote_collection=far-away")
    assert elsewhere.code == 1
    assert "lacks 2 key(s): measurement (needed by Names, TransferRaw" in elsewhere.stderr
    assert "remote_root (needed by Paths" in elsewhere.stderr
    with demo_site.client() as client:
        assert len(client.list_runs()) == runs_before


def test_a_corrupted_hdf5_fails_at_correlate_and_says_why_in_the_cli_and_the_portal(
    demo_site: DemoSite,
) -> None:
    broken = demo_site.local / "incoming" / "broken.h5"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4096))
    result = demo_site.cli("app", "run", "xpcs", "--set", "measurement=incoming/broken.h5")
    assert result.code == 1, result.stdout
    assert "✓ TransferRaw" in result.stdout
    assert "✗ Correlate" in result.stdout
    reason = " ".join(result.stdout.split("reason:", 1)[1].split())
    expected = "Correlate failed: ActionFailedException: InvalidInput: measurement file "
    assert reason.startswith(expected), reason
    assert "broken.h5 is not a readable HDF5 file" in reason
    assert "Traceback" not in reason
    run_id = next(
        line.split()[1].rstrip(":") for line in result.stdout.splitlines() if line.startswith("run ")
    )
    with demo_site.client() as client:
        info = client.get_run(run_id)
        assert info.status == "FAILED"
        assert "broken.h5" in (info.cause or "")
        admin = client.whoami().username
    password = (demo_site.home / "server" / "admin-password").read_text().strip()
    from portal_helpers import sign_in

    with sign_in(demo_site.url, admin, password) as web:
        page = web.get(f"/portal/runs/{run_id}")
        assert page.status_code == 200
        assert "broken.h5" in page.text
        assert "Correlate" in page.text


def _write_in_two_parts(path: Path) -> None:
    """A measurement that appears truncated first and whole a moment later, as a detector writes."""
    staging = path.with_name(".staging.h5")
    write_synthetic_measurement(
        staging,
        SyntheticXpcsConfig(
            shape=(SIZE, SIZE),
            n_frames=FRAMES,
            beam_center_yx_px=(SIZE / 2, SIZE / 2),
            ring_radii_px=(SIZE / 16, SIZE * 7 / 16),
            seed=7,
        ),
    )
    data = staging.read_bytes()
    with path.open("wb") as out:
        out.write(data[: len(data) // 3])
        out.flush()
        time.sleep(2.5)
        out.write(data[len(data) // 3 :])
    staging.unlink()


def test_watch_starts_one_run_per_complete_file_and_a_restart_starts_none_again(demo_site: DemoSite) -> None:
    folder = demo_site.local / "incoming" / "watched"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder)
    folder.mkdir()
    env = {**os.environ, "BEAMLINK_HOME": str(demo_site.home), "COLUMNS": "200", "NO_COLOR": "1"}
    command = [
        sys.executable,
        "-m",
        "beamlink",
        "app",
        "watch",
        "xpcs",
        "local:incoming/watched/",
        "--set",
        f"remote_root={demo_site.remote}",
        "--settle",
        "1",
    ]
    watcher = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)  # the watch is set up
        (folder / "notes.txt").write_text("not a measurement")
        _write_in_two_parts(folder / "W001.h5")
        with demo_site.client() as client:
            deadline = time.monotonic() + 240
            runs: list = []
            while time.monotonic() < deadline:
                runs = [r for r in client.list_runs() if (r.label or "").endswith("W001.h5")]
                if runs and runs[0].status in ("SUCCEEDED", "FAILED"):
                    break
                time.sleep(1)
            assert len(runs) == 1, runs
            assert runs[0].status == "SUCCEEDED"
    finally:
        watcher.send_signal(signal.SIGINT)
        output, _ = watcher.communicate(timeout=30)
    assert "started" in output, output
    assert "W001.h5" in output
    assert "notes.txt" not in output

    # A new watcher over the same files (--existing) starts no second run for the same file version.
    again = subprocess.Popen(
        [*command, "--existing"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    time.sleep(6)
    again.send_signal(signal.SIGINT)
    again.communicate(timeout=30)
    with demo_site.client() as client:
        assert len([r for r in client.list_runs() if (r.label or "").endswith("W001.h5")]) == 1


def test_the_demo_on_a_new_home_brings_its_site_up_and_takes_it_down_leaving_nothing(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    found = DemoSite(home, "")
    port = str(free_port())
    result = found.cli(
        "demo", "--home", str(home), "--port", port, "--frames", str(FRAMES), "--size", str(SIZE)
    )
    assert result.code == 0, result.stdout + result.stderr
    assert "service at http://127.0.0.1:" + port + ": started" in result.stdout
    assert "✓ fitted D = " in result.stdout
    assert "stopped endpoint 'compute'" in result.stdout
    assert "stopped the service at" in result.stdout
    assert not (home / "site-state.json").exists()
    assert not list(home.glob("*s/*/daemon.pid"))


def test_an_app_runs_from_python_and_shows_each_step(
    demo_site: DemoSite, capsys: pytest.CaptureFixture[str]
) -> None:
    from beamlink.apps.registry import load_app
    from beamlink.apps.xpcs.app import example_measurement

    path = example_measurement(demo_site.local / "incoming" / "sdk", frames=FRAMES, size=SIZE, name="sdk")
    xpcs = load_app("xpcs")
    with demo_site.client() as client:
        info = xpcs.run(
            client,
            {"measurement": f"incoming/sdk/{path.name}", "remote_root": str(demo_site.remote)},
            timeout=240,
        )
    assert info.status == "SUCCEEDED"
    shown = capsys.readouterr().err
    for step in ("TransferRaw", "Correlate", "Plot", "GatherMetadata", "TransferResults", "Publish"):
        assert f"[ok] {step}" in shown
    assert "[FlowSucceeded]" in shown
