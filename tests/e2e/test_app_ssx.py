"""The SSX app end to end on the built-in demo site (the session's ``demo_site``): `beamlink app example`
writes a run of stills with a known hit rate, `beamlink app run ssx` moves it, finds the spots on the Parsl
endpoint, plots and publishes; the record is public, its page shows the figures, and the index has the
app's facets. A run file with a NaN fails at FindSpots with the reason in the CLI."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

import h5py
import httpx
import numpy as np
import pytest

from beamlink.apps.ssx.record import FACETS
from beamlink.sdk import Client
from e2e_helpers import DemoSite

pytestmark = pytest.mark.slow

STEPS = (
    "Names",
    "Paths",
    "TransferStills",
    "FindSpots",
    "Plot",
    "GatherMetadata",
    "TransferResults",
    "Publish",
)


def test_the_ssx_example_runs_end_to_end_and_its_record_is_in_the_portal_with_facets(
    demo_site: DemoSite,
) -> None:
    example = demo_site.cli("app", "example", "ssx", "local:incoming/ssx/")
    assert example.code == 0, example.stdout + example.stderr
    relative = re.search(r"wrote local:(\S+) ", example.stdout)
    assert relative, example.stdout
    stills = relative.group(1)
    assert stills.startswith("incoming/ssx/demo-ssx-R001")

    result = demo_site.cli(
        "app", "run", "ssx", "--set", f"stills={stills}", "--set", f"remote_root={demo_site.remote}"
    )
    out = result.stdout
    assert result.code == 0, out + result.stderr
    for step in STEPS:
        assert f"✓ {step}" in out, out
    assert ": SUCCEEDED" in out

    dataset = Path(stills).stem
    subject = f"portal:ssx/{dataset}"
    with Client(demo_site.url, anonymous=True) as anonymous:
        found = anonymous.search("ssx", q="SSX", facets=[{**f, "name": f["field_name"]} for f in FACETS])
    hits = [h for h in found.gmeta if h.subject == subject]
    assert len(hits) == 1, [h.subject for h in found.gmeta]
    content = hits[0].entries[0].content
    assert content["technique"] == "SSX"
    assert content["hit_rate"] == pytest.approx(0.4)  # the example's known hit rate
    assert (content["n_frames"], content["n_hits"]) == (40, 16)
    assert content["hit_accuracy"] == 1.0
    assert content["recall"] >= 0.95
    assert content["precision"] >= 0.95
    assert len(content["plots"]) == 2
    assert content["run_id"]
    buckets = {f.name: f.buckets for f in found.facet_results}
    assert any(b.count >= 1 for b in buckets["hit_rate"])
    assert [b.value for b in buckets["sample"]] == ["lysozyme microcrystals (synthetic)"]

    with demo_site.client() as client:
        facets = client.get_index("ssx").facets
    assert [f.field_name for f in facets] == [f["field_name"] for f in FACETS]

    with httpx.Client(timeout=30) as web:
        page = web.get(f"{demo_site.url}/portal/records/ssx/{quote(subject, safe='')}")
        assert page.status_code == 200, page.text
        for name in ("hit_rate.png", "richest_still.png"):
            assert name in page.text
        images = re.findall(r'src="(/portal/files/[^"]+/hit_rate\.png)"', page.text)
        assert images, page.text
        figure = web.get(f"{demo_site.url}{html.unescape(images[0])}")
        assert figure.status_code == 200
        assert figure.content.startswith(b"\x89PNG")
    portal = demo_site.home / "data" / "portal" / "ssx" / dataset
    assert (portal / f"{dataset}_spots.h5").is_file()


def test_a_run_with_nan_in_a_still_fails_at_find_spots_and_says_why(demo_site: DemoSite) -> None:
    bad = demo_site.local / "incoming" / "ssx" / "nan_stills.h5"
    bad.parent.mkdir(parents=True, exist_ok=True)
    stack = np.full((4, 32, 32), 2.0, dtype=np.float32)
    stack[2, 5, 7] = np.nan
    with h5py.File(bad, "w") as f:
        f["stills"] = stack
    result = demo_site.cli(
        "app",
        "run",
        "ssx",
        "--set",
        "stills=incoming/ssx/nan_stills.h5",
        "--set",
        f"remote_root={demo_site.remote}",
    )
    assert result.code == 1, result.stdout
    assert "✓ TransferStills" in result.stdout
    assert "✗ FindSpots" in result.stdout
    assert "✓ Publish" not in result.stdout
    reason = " ".join(result.stdout.split("reason:", 1)[1].split())
    assert reason.startswith("FindSpots failed: ActionFailedException: InvalidInput: frame 2 of "), reason
    assert "nan_stills.h5 holds 1 NaN or infinite value(s), the first at pixel (5, 7)" in reason
    assert "mark them False in /mask" in reason
    assert "Traceback" not in reason
