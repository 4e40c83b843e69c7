"""The SSX flow steps: find_spots → plot → record_content on the app's own synthetic run (known hit rate and
spot centres), and the errors a bad run file gives (they are what the CLI and the portal show)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from beamlink.apps.ssx import steps
from beamlink.apps.ssx.app import EXAMPLE_SPOT_COUNTS, app, example_run
from beamlink.apps.ssx.classify import find_spots_run
from beamlink.apps.ssx.inputs import is_complete_run, read_run, write_run
from beamlink.apps.ssx.record import FACETS, record_content
from beamlink.apps.ssx.synthetic import StillConfig, make_stills
from beamlink.errors import InvalidInput
from beamlink.flowlang.parse import validate
from beamlink.protocol.search import FacetRequest, Plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FRAMES = 40  # the example's 40 stills of 128² px: 2 of every 5 have 40 spots (hits), 1 has 5 (a miss)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_run(tmp_path_factory.mktemp("raw"), frames=FRAMES)


@pytest.fixture(scope="module")
def summary(run_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return steps.find_spots(str(run_file), str(tmp_path_factory.mktemp("out") / "new" / "results"))


def test_find_spots_recovers_the_hit_rate_and_the_spots_and_returns_strict_json(
    summary: dict[str, Any],
) -> None:
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    expected_hits = sum(1 for i in range(FRAMES) if EXAMPLE_SPOT_COUNTS[i % 5] >= 16)
    assert (summary["n_frames"], summary["n_hits"]) == (FRAMES, expected_hits)
    assert summary["hit_rate"] == pytest.approx(0.4)
    assert summary["min_spots"] == 16
    assert summary["n_rejected"] == 0
    assert summary["frame_shape"] == [128, 128]
    truth = summary["truth"]
    assert truth["true_hit_rate"] == pytest.approx(0.4)
    assert truth["hit_accuracy"] == 1.0  # every still classified right
    # science-clients.md §2.4: recall, precision ≥ 0.95, centroid error ≤ 0.15 px mean, ≤ 0.35 px p95.
    assert truth["recall"] >= 0.95
    assert truth["precision"] >= 0.95
    assert truth["mean_centroid_error_px"] <= 0.15
    assert truth["p95_centroid_error_px"] <= 0.35
    assert truth["n_true_spots"] == sum(EXAMPLE_SPOT_COUNTS[i % 5] for i in range(FRAMES))
    assert summary["mean_spots_per_frame"] == pytest.approx(17.0, abs=0.5)  # (40 + 40 + 5) / 5 per still
    assert summary["seconds"] > 0
    assert summary["warnings"] == []
    results = Path(summary["results"])
    assert results.is_absolute()
    assert results.is_file()
    assert results.parent.name == "results"  # output_dir is created, parents included
    assert results.name == summary["results_name"] == f"{Path(summary['results']).stem}.h5"


def test_the_results_file_holds_what_the_kernel_finds(run_file: Path, summary: dict[str, Any]) -> None:
    run = read_run(run_file)
    with h5py.File(run_file) as f:
        stack = f["stills"][()]
    kernel = find_spots_run(stack, run.mask)
    result, attrs, spots = steps.read_spot_results(summary["results"])
    np.testing.assert_array_equal(result.spots_per_frame, kernel.summary.spots_per_frame)
    np.testing.assert_array_equal(result.hits, kernel.summary.hits)
    assert result.hit_rate == kernel.summary.hit_rate
    assert attrs["source"] == run_file.name
    assert spots["frame"].size == int(kernel.summary.spots_per_frame.sum())
    first = spots["centroid_yx"][spots["frame"] == 0]
    np.testing.assert_allclose(first, kernel.frames[0].spots.centroid_yx)


def test_plot_writes_pngs_and_portal_plots(run_file: Path, summary: dict[str, Any], tmp_path: Path) -> None:
    figures = steps.plot(summary["results"], str(run_file), str(tmp_path / "figs"))
    assert json.loads(json.dumps(figures, allow_nan=False)) == figures
    names = [image["name"] for image in figures["images"]]
    assert names == [steps.HIT_RATE_PNG, steps.SPOTS_PNG]
    for name in names:
        assert (tmp_path / "figs" / name).read_bytes().startswith(PNG_SIGNATURE)
    assert "16 hits in 40 stills (40.0%)" in figures["images"][0]["caption"]
    plots = [Plot.model_validate(p) for p in figures["plots"]]
    spots, running = plots
    assert spots.series[0].y[:5] == pytest.approx([40, 0, 5, 40, 0], abs=1)
    assert running.title is not None
    assert "run: 40.0%" in running.title
    assert all(0 <= y <= 1 for y in running.series[0].y if y is not None)


def test_the_record_carries_the_facets_images_plots_and_truth(
    run_file: Path, summary: dict[str, Any], tmp_path: Path
) -> None:
    figures = steps.plot(summary["results"], str(run_file), str(tmp_path))
    content = record_content(str(run_file), summary, figures, "portal", "ssx/run/", run_id="r-1")
    assert json.loads(json.dumps(content, allow_nan=False)) == content
    for facet in FACETS:
        assert content[facet["field_name"]] is not None, facet
    assert content["hit_rate"] == pytest.approx(0.4)
    assert (content["n_frames"], content["n_hits"]) == (40, 16)
    assert content["sample"] == "lysozyme microcrystals (synthetic)"
    assert content["technique"] == "SSX"
    assert content["title"] == f"SSX {run_file.stem}"
    assert "16 hits in 40 stills" in content["description"]
    assert {"SSX", "synthetic"} <= set(content["keywords"])
    assert content["recall"] >= 0.95
    assert content["hit_accuracy"] == 1.0
    assert [i["path"] for i in content["images"]] == ["ssx/run/hit_rate.png", "ssx/run/richest_still.png"]
    assert content["thumbnail"] == content["images"][0]
    assert content["files"][-1]["name"] == summary["results_name"]
    assert all(f["collection"] == "portal" for f in content["files"])
    assert len(content["plots"]) == 2
    assert content["run_id"] == "r-1"


def test_the_app_needs_the_stills_and_remote_root_and_its_flow_is_valid(tmp_path: Path) -> None:
    assert set(app.required_input()) == {"stills", "remote_root"}
    defaults = app.input_defaults()
    assert (defaults["index"], defaults["min_spots"], defaults["compute_endpoint"]) == ("ssx", 16, "compute")
    definition = app.flow_definition({key: f"fn-{i}" for i, key in enumerate(app.functions())})
    assert validate(definition) == []
    assert definition["States"]["FindSpots"]["Parameters"]["endpoint.$"] == "$.input.compute_endpoint"
    assert definition["States"]["Plot"]["Parameters"]["endpoint.$"] == "$.input.non_compute_endpoint"
    publish = next(t for t in app.tools if t.name == "Publish")
    assert [FacetRequest.model_validate(f).field_name for f in publish.facets] == [  # type: ignore[attr-defined]
        "hit_rate",
        "n_frames",
        "n_hits",
        "mean_spots_per_frame",
        "sample",
    ]
    assert app.example is not None
    path = app.example(tmp_path)
    assert is_complete_run(path)
    assert app.example(tmp_path) == path  # an intact earlier copy is kept
    truncated = tmp_path / "half.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert not is_complete_run(truncated)


# -- bad input: one readable InvalidInput naming the file and the fix ------------------------------------


def _still_stack(dtype: Any = np.int32, shape: tuple[int, ...] = (3, 32, 32)) -> np.ndarray:
    return np.full(shape, 2, dtype=dtype)


def _write(path: Path, **datasets: Any) -> Path:
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f[name] = data
    return path


def _nan_in_frame_2(path: Path) -> Path:
    stack = _still_stack(np.float32)
    stack[2, 5, 7] = np.nan
    return _write(path, stills=stack)


def _truth_mismatch(path: Path) -> Path:
    stack, truths, mask = make_stills([3, 0], config=StillConfig(shape=(48, 48)), seed=1)
    write_run(path, stack, mask, truths=truths)
    with h5py.File(path, "a") as f:
        del f["truth/n_spots"]
        f["truth/n_spots"] = np.array([3, 0, 1])
    return path


BAD_FILES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing", lambda p: p, "does not exist or is not a file"),
    (
        "not HDF5",
        lambda p: (p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(300)), p)[1],
        "is not a readable HDF5 file",
    ),
    ("no stills", lambda p: _write(p, frames=_still_stack()), "has no dataset /stills"),
    (
        "empty stack",
        lambda p: _write(p, stills=np.zeros((0, 32, 32), np.int32)),
        "is empty (shape (0, 32, 32))",
    ),
    (
        "one still as 2-D",
        lambda p: _write(p, stills=np.zeros((32, 32), np.int32)),
        "a single still is (1, height",
    ),
    ("boolean stills", lambda p: _write(p, stills=_still_stack(bool)), "has dtype bool; stills must be"),
    ("complex stills", lambda p: _write(p, stills=_still_stack(np.complex64)), "has dtype complex64"),
    ("NaN in a frame", _nan_in_frame_2, "frame 2 of"),
    (
        "mask of another shape",
        lambda p: _write(p, stills=_still_stack(), mask=np.ones((16, 16), bool)),
        "/mask",
    ),
    (
        "float mask",
        lambda p: _write(p, stills=_still_stack(), mask=np.full((32, 32), 0.5)),
        "must be boolean",
    ),
    ("truth that does not match", _truth_mismatch, "/truth"),
]


@pytest.mark.parametrize(("name", "make", "fragment"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_run_file_fails_find_spots_with_a_readable_reason(
    name: str, make: Callable[[Path], Path], fragment: str, tmp_path: Path
) -> None:
    path = make(tmp_path / "bad_run.h5")
    with pytest.raises(InvalidInput) as caught:
        steps.find_spots(str(path), str(tmp_path / "out"))
    message = caught.value.message
    assert fragment in message, message
    assert "bad_run.h5" in message, message
    assert not (tmp_path / "out" / "bad_run_spots.h5").exists()


def test_nan_in_a_frame_names_the_frame_pixel_and_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        steps.find_spots(str(_nan_in_frame_2(tmp_path / "nan.h5")), str(tmp_path))
    assert "holds 1 NaN or infinite value(s), the first at pixel (5, 7)" in caught.value.message
    assert "mark them False in /mask" in caught.value.message
    assert caught.value.details["frame"] == 2


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"min_spots": -1}, "min_spots"),
        ({"sigma_strong": 0}, "sigma_strong"),
        ({"match_distance_px": -2}, "match_distance_px"),
    ],
)
def test_bad_parameters_are_refused(
    run_file: Path, tmp_path: Path, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        steps.find_spots(str(run_file), str(tmp_path), **options)
    assert caught.value.details["field"] == field


def test_a_float_run_with_masked_dead_pixels_runs(tmp_path: Path) -> None:
    stack, truths, mask = make_stills(
        [20, 0], config=StillConfig(shape=(96, 96), min_separation_px=10), seed=3
    )
    path = write_run(tmp_path / "float.h5", stack.astype(np.float32), mask.astype(np.uint8), truths=truths)
    out = steps.find_spots(str(path), str(tmp_path / "out"))
    assert (out["n_frames"], out["n_hits"]) == (2, 1)
    assert out["truth"]["recall"] >= 0.95
    assert read_run(path).sample is None
