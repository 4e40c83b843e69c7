"""The BraggNN app end to end on the built-in demo site (the session's ``demo_site``): `beamlink app example`
writes synthetic peaks with known centres and a training set, `beamlink app run braggnn` moves them, trains
the network and runs it and the least-squares fits on the Parsl endpoint, plots and publishes; the record is
public, its page shows the figures, and the index has the app's facets. A second run reuses the trained model
from the remote collection; a model file that does not fit the network fails at Train with the mismatch in
the CLI.
"""

from __future__ import annotations

import html
import io
import json
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from beamlink.apps.braggnn.record import FACETS
from beamlink.sdk import Client
from e2e_helpers import DemoSite
from helpers import CliResult

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

STEPS = (
    "Names",
    "Paths",
    "TransferRaw",
    "Train",
    "Infer",
    "Plot",
    "GatherMetadata",
    "TransferResults",
    "Publish",
)


def _run(demo_site: DemoSite, peaks: str, *settings: str) -> CliResult:
    options = [item for setting in settings for item in ("--set", setting)]
    return demo_site.cli(
        "app",
        "run",
        "braggnn",
        "--set",
        f"peaks={peaks}",
        "--set",
        f"remote_root={demo_site.remote}",
        *options,
    )


@pytest.fixture(scope="module")
def first_run(demo_site: DemoSite) -> tuple[str, CliResult]:
    """The example written and run once: (the peak file's path on the local collection, the CLI result)."""
    example = demo_site.cli("app", "example", "braggnn", "local:incoming/braggnn/")
    assert example.code == 0, example.stdout + example.stderr
    relative = re.search(r"wrote local:(\S+) ", example.stdout)
    assert relative, example.stdout
    return relative.group(1), _run(demo_site, relative.group(1))


def test_the_braggnn_example_trains_infers_and_its_record_is_in_the_portal_with_facets(
    demo_site: DemoSite, first_run: tuple[str, CliResult]
) -> None:
    peaks, result = first_run
    assert peaks.startswith("incoming/braggnn/demo-B001")
    out = result.stdout
    assert result.code == 0, out + result.stderr
    for step in STEPS:
        assert f"✓ {step}" in out, out
    assert ": SUCCEEDED" in out

    dataset = Path(peaks).stem
    subject = f"portal:braggnn/{dataset}"
    with Client(demo_site.url, anonymous=True) as anonymous:
        found = anonymous.search(
            "braggnn", q="BraggNN", facets=[{**f, "name": f["field_name"]} for f in FACETS]
        )
    hits = [h for h in found.gmeta if h.subject == subject]
    assert len(hits) == 1, [h.subject for h in found.gmeta]
    content = hits[0].entries[0].content
    assert content["technique"] == "BraggNN"
    assert content["model_source"] == "trained"
    assert (content["n_patches"], content["training_patches"], content["training_epochs"]) == (256, 2048, 5)
    # The example's known answers: least squares ≈ 0.03 px; the network, trained 5 epochs on 2,048 patches,
    # ≈ 0.075 px, against 1.2 px for the patch middle; inference faster than fitting.
    assert content["fit_error_px"] < 0.05
    assert content["mean_error_px"] < 0.3
    assert content["centre_baseline_px"] > 1.0
    assert content["speedup"] > 1
    assert len(content["plots"]) == 2
    assert content["run_id"]
    buckets = {f.name: f.buckets for f in found.facet_results}
    assert sum(b.count for b in buckets["mean_error_px"]) >= 1
    assert sum(b.count for b in buckets["fit_error_px"]) >= 1
    assert ("trained", 1) in [(b.value, b.count) for b in buckets["model_source"]]

    with demo_site.client() as client:
        facets = client.get_index("braggnn").facets
    assert [f.field_name for f in facets] == [f["field_name"] for f in FACETS]

    with httpx.Client(timeout=30) as web:
        page = web.get(f"{demo_site.url}/portal/records/braggnn/{quote(subject, safe='')}")
        assert page.status_code == 200, page.text
        for name in ("centre_errors.png", "patches.png"):
            assert name in page.text
        images = re.findall(r'src="(/portal/files/[^"]+/centre_errors\.png)"', page.text)
        assert images, page.text
        figure = web.get(f"{demo_site.url}{html.unescape(images[0])}")
        assert figure.status_code == 200
        assert figure.content.startswith(b"\x89PNG")
    portal = demo_site.portal / "braggnn" / dataset
    assert (portal / "braggnn_model.pt").is_file()
    assert (portal / f"{dataset}_centres.h5").is_file()


def test_a_second_run_uses_the_model_of_the_first(
    demo_site: DemoSite, first_run: tuple[str, CliResult]
) -> None:
    peaks, first = first_run
    assert first.code == 0, first.stdout
    dataset = Path(peaks).stem
    again = "incoming/braggnn/demo-B002.h5"
    shutil.copyfile(demo_site.local / peaks, demo_site.local / again)
    result = _run(demo_site, again, f"model=braggnn/{dataset}/results/braggnn_model.pt")
    assert result.code == 0, result.stdout + result.stderr
    assert "✓ Train" in result.stdout
    with Client(demo_site.url, anonymous=True) as anonymous:
        found = anonymous.search("braggnn", q="BraggNN")
    content = next(h for h in found.gmeta if h.subject == "portal:braggnn/demo-B002").entries[0].content
    assert content["model_source"] == "given"
    assert content["training_patches"] is None
    assert content["mean_error_px"] < 0.3


def test_a_model_file_that_does_not_fit_the_network_fails_at_train_and_says_why(
    demo_site: DemoSite, first_run: tuple[str, CliResult]
) -> None:
    peaks, _ = first_run
    # The first run's model with a header that claims the released (16, 8, 4, 2) head: the weights no
    # longer fit the network the header describes.
    model = demo_site.remote / "braggnn" / Path(peaks).stem / "results" / "braggnn_model.pt"
    content = torch.load(io.BytesIO(model.read_bytes()), weights_only=True)
    header = json.loads(content["header"])
    header["architecture"]["fc_sizes"] = [16, 8, 4, 2]
    content["header"] = json.dumps(header)
    bad = demo_site.remote / "braggnn" / "models" / "released_head.pt"
    bad.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, bad)

    result = _run(demo_site, peaks, "model=braggnn/models/released_head.pt")
    assert result.code == 1, result.stdout
    assert "✓ TransferRaw" in result.stdout
    assert "✗ Train" in result.stdout
    assert "✓ Infer" not in result.stdout
    reason = " ".join(result.stdout.split("reason:", 1)[1].split())
    expected = "Train failed: ActionFailedException: InvalidInput: model file released_head.pt: model is not "
    assert reason.startswith(expected), reason
    assert "its weights do not fit the network its header describes (wrong shapes: " in reason
    assert "head.0.weight (64, 200) (expected (16, 200))" in reason
    assert "leave model out to train a new one" in reason
    assert "Traceback" not in reason
