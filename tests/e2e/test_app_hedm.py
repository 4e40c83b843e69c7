"""The HEDM app end to end on the built-in demo site (the session's ``demo_site``): `beamlink app example`
writes a far-field scan of 3 grains, `beamlink app run hedm` moves it, splits it into blocks, fans the peak
search out over them with a Map state on the Parsl endpoint, merges, plots and publishes; the record is
public, its page shows the figures, and the index has the app's facets. A scan whose frames are booleans
fails at SplitBlocks, and one with a NaN fails inside the Map, each with the reason in the CLI."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

import h5py
import httpx
import numpy as np
import pytest

from beamlink.apps.hedm.record import FACETS
from beamlink.sdk import Client
from e2e_helpers import DemoSite

pytestmark = pytest.mark.slow

STEPS = (
    "Names",
    "Paths",
    "TransferScan",
    "SplitBlocks",
    "SearchBlock",
    "SearchBlocks",
    "MergePeaks",
    "Plot",
    "GatherMetadata",
    "TransferResults",
    "Publish",
)


def _run(demo_site: DemoSite, scan: str, *extra: str) -> tuple[int, str]:
    result = demo_site.cli(
        "app", "run", "hedm", "--set", f"scan={scan}", "--set", f"remote_root={demo_site.remote}", *extra
    )
    return result.code, result.stdout + result.stderr


def test_the_hedm_example_runs_with_a_map_over_blocks_and_its_record_is_in_the_portal(
    demo_site: DemoSite,
) -> None:
    example = demo_site.cli("app", "example", "hedm", "local:incoming/hedm/")
    assert example.code == 0, example.stdout + example.stderr
    relative = re.search(r"wrote local:(\S+) ", example.stdout)
    assert relative, example.stdout
    scan = relative.group(1)

    code, out = _run(demo_site, scan, "--set", "block_size=20")
    assert code == 0, out
    for step in STEPS:
        assert f"✓ {step}" in out, out
    assert out.count("✓ SearchBlock ") == 3  # 60 frames in blocks of 20: three Map items
    assert ": SUCCEEDED" in out

    dataset = Path(scan).stem
    subject = f"portal:hedm/{dataset}"
    with Client(demo_site.url, anonymous=True) as anonymous:
        found = anonymous.search("hedm", q="HEDM", facets=[{**f, "name": f["field_name"]} for f in FACETS])
    hits = [h for h in found.gmeta if h.subject == subject]
    assert len(hits) == 1, [h.subject for h in found.gmeta]
    content = hits[0].entries[0].content
    assert content["technique"] == "HEDM"
    assert (content["n_peaks"], content["n_true_peaks"], content["n_blocks"]) == (50, 50, 3)
    assert content["recall"] == 1.0
    assert content["precision"] == 1.0
    assert content["n_grains"] == 3
    assert content["omega_range_deg"] == 60.0
    assert content["run_id"]
    buckets = {f.name: f.buckets for f in found.facet_results}
    assert any(b.count >= 1 for b in buckets["n_peaks"])
    assert any(b.count >= 1 for b in buckets["recall"])

    with demo_site.client() as client:
        facets = client.get_index("hedm").facets
    assert [f.field_name for f in facets] == [f["field_name"] for f in FACETS]

    with httpx.Client(timeout=30) as web:
        page = web.get(f"{demo_site.url}/portal/records/hedm/{quote(subject, safe='')}")
        assert page.status_code == 200, page.text
        for name in ("summed_frame.png", "peaks_per_omega.png"):
            assert name in page.text
        images = re.findall(r'src="(/portal/files/[^"]+/summed_frame\.png)"', page.text)
        assert images, page.text
        figure = web.get(f"{demo_site.url}{html.unescape(images[0])}")
        assert figure.status_code == 200
        assert figure.content.startswith(b"\x89PNG")
    portal = demo_site.home / "data" / "portal" / "hedm" / dataset
    assert (portal / f"{dataset}_peaks.csv").is_file()
    assert not (portal / "blocks").exists()


def _bad_scan(demo_site: DemoSite, name: str, frames: np.ndarray) -> str:
    path = demo_site.local / "incoming" / "hedm" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs.update({"domega_deg": 1.0, "threshold": 20.0})
        f["frames"] = frames
    return f"incoming/hedm/{name}"


def _reason(out: str) -> str:
    return " ".join(out.split("reason:", 1)[1].split())


def test_a_scan_of_booleans_fails_at_split_blocks_and_says_why(demo_site: DemoSite) -> None:
    code, out = _run(demo_site, _bad_scan(demo_site, "mask_as_frames.h5", np.ones((8, 16, 16), dtype=bool)))
    assert code == 1, out
    assert "✓ TransferScan" in out
    assert "✗ SplitBlocks" in out
    reason = _reason(out)
    assert reason.startswith("SplitBlocks failed: ActionFailedException: InvalidInput: /frames in "), reason
    assert "mask_as_frames.h5 has dtype bool; frames must be detector counts" in reason
    assert "Traceback" not in reason


def test_a_nan_in_one_block_fails_the_map_and_names_the_frame(demo_site: DemoSite) -> None:
    frames = np.full((12, 16, 16), 100.0)
    frames[9, 2, 3] = np.nan
    code, out = _run(demo_site, _bad_scan(demo_site, "nan_scan.h5", frames), "--set", "block_size=4")
    assert code == 1, out
    assert "✓ SplitBlocks" in out
    assert "✗ SearchBlock" in out
    assert "✓ MergePeaks" not in out
    reason = _reason(out)
    assert "InvalidInput: frame 9 of " in reason, reason
    assert "nan_scan.h5 holds NaN or infinite values" in reason
    assert "first at pixel (2, 3)" in reason
    assert "Traceback" not in reason
