"""The ptycho app end to end on the built-in demo site (the session's ``demo_site``): `beamlink app example`
writes a synthetic scan with its truth, `beamlink app run ptycho` moves it, reconstructs object and probe
with rPIE on the Parsl endpoint, plots and publishes; the record is public, its page shows the figures, and
the index has the app's facets. A scan whose positions put the probe outside the object fails at
Reconstruct with the reason in the CLI."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from beamlink.apps.ptycho.inputs import write_scan
from beamlink.apps.ptycho.record import FACETS
from beamlink.apps.ptycho.synthetic import make_scan
from beamlink.sdk import Client
from e2e_helpers import DemoSite

pytestmark = pytest.mark.slow

STEPS = (
    "Names",
    "Paths",
    "TransferRaw",
    "Reconstruct",
    "Plot",
    "GatherMetadata",
    "TransferResults",
    "Publish",
)


def test_the_ptycho_example_runs_end_to_end_and_its_record_is_in_the_portal_with_facets(
    demo_site: DemoSite,
) -> None:
    example = demo_site.cli("app", "example", "ptycho", "local:incoming/ptycho/")
    assert example.code == 0, example.stdout + example.stderr
    relative = re.search(r"wrote local:(\S+) ", example.stdout)
    assert relative, example.stdout
    scan = relative.group(1)
    assert scan.startswith("incoming/ptycho/demo-P001")

    result = demo_site.cli(
        "app", "run", "ptycho", "--set", f"scan={scan}", "--set", f"remote_root={demo_site.remote}"
    )
    out = result.stdout
    assert result.code == 0, out + result.stderr
    for step in STEPS:
        assert f"✓ {step}" in out, out
    assert ": SUCCEEDED" in out

    dataset = Path(scan).stem
    subject = f"portal:ptycho/{dataset}"
    with Client(demo_site.url, anonymous=True) as anonymous:
        found = anonymous.search(
            "ptycho", q="ptychography", facets=[{**f, "name": f["field_name"]} for f in FACETS]
        )
    hits = [h for h in found.gmeta if h.subject == subject]
    assert len(hits) == 1, [h.subject for h in found.gmeta]
    content = hits[0].entries[0].content
    assert content["technique"] == "ptychography"
    assert content["algorithm"] == "rPIE"
    assert content["probe_refined"] is True
    assert content["iterations"] == 100
    assert content["scan_points"] == 81
    assert content["nrmse"] <= 0.05  # the example's known answer: 0.022 (tests/apps/ptycho/test_steps.py)
    assert content["final_data_error"] < 2e-3 * content["initial_data_error"]
    titles = [p["title"] for p in content["plots"]]
    assert titles[0].startswith("rPIE convergence")
    assert titles[1].startswith("Object phase along row")
    assert content["run_id"]
    buckets = {f.name: f.buckets for f in found.facet_results}
    assert sum(b.count for b in buckets["nrmse"]) == 1
    assert sum(b.count for b in buckets["data_error_log10"]) == 1
    assert [(b.value, b.count) for b in buckets["algorithm"]] == [("rPIE", 1)]

    with demo_site.client() as client:
        facets = client.get_index("ptycho").facets
    assert [f.field_name for f in facets] == [f["field_name"] for f in FACETS]

    with httpx.Client(timeout=30) as web:
        page = web.get(f"{demo_site.url}/portal/records/ptycho/{quote(subject, safe='')}")
        assert page.status_code == 200, page.text
        for name in ("reconstruction.png", "truth.png"):
            assert name in page.text
        images = re.findall(r'src="(/portal/files/[^"]+/reconstruction\.png)"', page.text)
        assert images, page.text
        figure = web.get(f"{demo_site.url}{html.unescape(images[0])}")
        assert figure.status_code == 200
        assert figure.content.startswith(b"\x89PNG")
    portal = demo_site.portal / "ptycho" / dataset
    assert (portal / f"{dataset}_reconstruction.h5").is_file()


def test_a_scan_with_positions_outside_the_object_fails_at_reconstruct_and_says_why(
    demo_site: DemoSite,
) -> None:
    data, truth = make_scan(n=40, step=8, seed=1)
    bad = demo_site.local / "incoming" / "ptycho" / "shifted_scan.h5"
    bad.parent.mkdir(parents=True, exist_ok=True)
    write_scan(
        bad,
        intensities=data.intensities,
        positions=data.positions + 5,  # the stage offset was not subtracted
        probe=truth.probe,
        object_shape=data.object_shape,
    )
    result = demo_site.cli(
        "app",
        "run",
        "ptycho",
        "--set",
        "scan=incoming/ptycho/shifted_scan.h5",
        "--set",
        f"remote_root={demo_site.remote}",
    )
    assert result.code == 1, result.stdout
    assert "✓ TransferRaw" in result.stdout
    assert "✗ Reconstruct" in result.stdout
    assert "✓ Publish" not in result.stdout
    reason = " ".join(result.stdout.split("reason:", 1)[1].split())
    expected = "Reconstruct failed: ActionFailedException: InvalidInput: scan file shifted_scan.h5: "
    assert reason.startswith(expected), reason
    assert "scan position(s) put the probe outside the object, the first is #" in reason
    assert "Enlarge object_shape or shift the positions so the smallest is 0" in reason
    assert "Traceback" not in reason
