"""The XPCS flow steps: correlate → plot → gather_metadata on a small synthetic measurement, and the
errors a bad measurement gives (they are what the CLI and the portal show when the flow fails)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from beamlink.apps.xpcs import steps
from beamlink.apps.xpcs.correlate import correlate_g2
from beamlink.apps.xpcs.fit import fit_g2, reliable_bins
from beamlink.apps.xpcs.measurement import iter_frames, read_measurement
from beamlink.apps.xpcs.results import read_results, write_results
from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, XpcsTruth, write_synthetic_measurement
from beamlink.errors import InvalidInput
from beamlink.protocol.search import Plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The default 64x64 geometry with 1024 frames: about 0.5 s to generate, 0.1 s to correlate, and 7 of the 12
# q bins are resolved well enough to fit D (1 % off the truth for this seed).
CONFIG = SyntheticXpcsConfig(n_frames=1024, seed=4)


@pytest.fixture(scope="module")
def measurement(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, XpcsTruth]:
    path = tmp_path_factory.mktemp("raw") / "run_0001.h5"
    return path, write_synthetic_measurement(path, CONFIG)


@pytest.fixture(scope="module")
def summary(measurement: tuple[Path, XpcsTruth], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return steps.correlate(str(measurement[0]), str(tmp_path_factory.mktemp("out") / "new" / "folder"))


def test_correlate_recovers_d_and_returns_strict_json(
    measurement: tuple[Path, XpcsTruth], summary: dict[str, Any]
) -> None:
    _, truth = measurement
    back = json.loads(json.dumps(summary, allow_nan=False))
    assert back == summary
    d = summary["diffusion"]
    assert d["D"] == pytest.approx(truth.diffusion_nm2_s, rel=0.05)
    assert 0 < d["D_err"] < 0.05 * d["D"]
    assert d["D_true"] == truth.diffusion_nm2_s
    assert d["relative_error"] == pytest.approx(abs(d["D"] - d["D_true"]) / d["D_true"])
    assert d["unit"] == "nm^2/s"
    results = Path(summary["results"])
    assert results.is_absolute()
    assert results.is_file()
    assert results.name == summary["results_name"] == "run_0001_results.h5"
    assert results.parent.name == "folder"  # output_dir is created, parents included
    assert summary["n_frames"] == 1024
    assert summary["frame_shape"] == [64, 64]
    assert summary["n_q_bins"] == 12
    assert 2 <= summary["n_q_bins_used"] <= 12
    assert summary["seconds"] > 0
    assert summary["megapixel_frames_per_s"] == pytest.approx(64 * 64 * 1024 / 1e6 / summary["seconds"])
    assert summary["warnings"] == []


def test_results_file_holds_what_the_kernel_computes(
    measurement: tuple[Path, XpcsTruth], summary: dict[str, Any], tmp_path: Path
) -> None:
    path, truth = measurement
    header = read_measurement(path, load_frames=False)
    curves = correlate_g2(iter_frames(path), header.partition, frame_interval_s=header.frame_interval_s)
    fit = fit_g2(curves)
    reliable = reliable_bins(fit, frame_interval_s=curves.frame_interval_s, n_frames=curves.n_frames)

    r = read_results(summary["results"])
    for name in ("tau_frames", "levels", "tau_s", "g2", "g2_err", "q", "q2", "n_pixels"):
        np.testing.assert_array_equal(getattr(r.curves, name), getattr(curves, name), err_msg=name)
    assert (r.curves.n_frames, r.curves.frame_interval_s) == (1024, CONFIG.frame_interval_s)
    for name in ("gamma_per_s", "gamma_err", "contrast", "baseline", "reduced_chi2", "ok"):
        np.testing.assert_array_equal(getattr(r.fit, name), getattr(fit, name), err_msg=name)
    np.testing.assert_array_equal(r.reliable, reliable)
    assert r.diffusion is not None
    assert r.diffusion.diffusion_nm2_s == summary["diffusion"]["D"]
    assert r.diffusion.n_bins == summary["n_q_bins_used"]
    assert (r.source, r.frame_shape, r.dpl) == ("run_0001.h5", (64, 64), 4)
    assert r.correlation_seconds == summary["seconds"]
    assert r.truth["diffusion_nm2_s"] == truth.diffusion_nm2_s
    assert r.sample["name"] == "synthetic Brownian particles"

    # write → read is exact, NaN included, and a missing D stays missing
    again = write_results(
        tmp_path / "again.h5",
        curves=r.curves,
        fit=r.fit,
        reliable=r.reliable,
        diffusion=None,
        source=r.source,
        frame_shape=r.frame_shape,
        dpl=r.dpl,
        correlation_seconds=r.correlation_seconds,
    )
    back = read_results(again)
    np.testing.assert_array_equal(back.curves.g2_err, r.curves.g2_err)  # has NaN at single-pair lags
    assert np.isnan(back.curves.g2_err).any()
    assert back.diffusion is None
    assert back.truth == {}


def test_plot_writes_pngs_and_portal_plots(summary: dict[str, Any], tmp_path: Path) -> None:
    out = steps.plot(summary["results"], str(tmp_path / "plots"))
    json.dumps(out, allow_nan=False)
    assert [image["name"] for image in out["images"]] == ["g2.png", "gamma_q2.png"]
    for image in out["images"]:
        data = (tmp_path / "plots" / image["name"]).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 5000
        assert image["caption"]
    assert "µm²/s" in out["images"][1]["caption"]

    plots = [Plot.model_validate(p) for p in out["plots"]]
    g2, gamma = plots
    assert g2.log_x
    assert g2.x_label == "τ (s)"
    assert sum(s.name is not None and s.name.startswith("fit") for s in g2.series) == 4
    assert gamma.series[0].name == "Γ, used for D"
    assert len(gamma.series[0].x) == summary["n_q_bins_used"]
    line = gamma.series[-1]
    assert str(line.name).startswith("Γ = D·q²")
    q2_max, gamma_max = line.x[1], line.y[1]
    assert q2_max is not None
    assert gamma_max == pytest.approx(summary["diffusion"]["D"] * q2_max)
    numbers = sum(len(s.x) + len(s.y) for p in plots for s in p.series)
    assert numbers <= 2000


def test_gather_metadata_merges_the_fit(measurement: tuple[Path, XpcsTruth], summary: dict[str, Any]) -> None:
    path, truth = measurement
    record = steps.gather_metadata(str(path), summary)
    json.dumps(record, allow_nan=False)
    assert record["title"] == "XPCS run_0001"
    assert record["technique"] == "XPCS"
    assert record["sample"] == "synthetic Brownian particles"
    assert {"XPCS", "diffusion", "synthetic"} <= set(record["keywords"])
    assert record["diffusion_nm2_s"] == summary["diffusion"]["D"]
    assert record["diffusion_err_nm2_s"] == summary["diffusion"]["D_err"]
    assert record["diffusion_true_nm2_s"] == truth.diffusion_nm2_s
    assert record["diffusion_relative_error"] == summary["diffusion"]["relative_error"]
    assert record["n_frames_correlated"] == 1024
    assert record["n_q_bins_used"] == summary["n_q_bins_used"]
    assert f"D = {summary['diffusion']['D'] * 1e-6:.4g}" in record["description"]
    assert record["n_dynamic_bins"] == 12  # extract_metadata's keys are all there
    assert record["truth_diffusion_nm2_s"] == truth.diffusion_nm2_s

    bare = steps.gather_metadata(str(path))
    assert "diffusion_nm2_s" not in bare
    assert "1024 frames of 64x64 px" in bare["description"]
    with pytest.raises(InvalidInput, match="correlation must be the dict"):
        steps.gather_metadata(str(path), "D=4.9")  # type: ignore[arg-type]


def test_too_short_a_measurement_gives_g2_without_d(tmp_path: Path) -> None:
    """64 frames resolve no decay (T·Γ·Δt < 35 in every bin): the steps still succeed, with D None."""
    path = tmp_path / "short.h5"
    write_synthetic_measurement(path, SyntheticXpcsConfig(n_frames=64, seed=1))
    summary = steps.correlate(str(path), str(tmp_path))
    json.dumps(summary, allow_nan=False)
    assert summary["diffusion"]["D"] is None
    assert summary["diffusion"]["relative_error"] is None
    assert summary["diffusion"]["D_true"] == pytest.approx(4.9e6)
    assert summary["n_q_bins_used"] == 0
    assert "D was not fitted" in summary["warnings"][0]
    out = steps.plot(summary["results"], str(tmp_path))
    json.dumps(out, allow_nan=False)
    for p in out["plots"]:
        Plot.model_validate(p)
    assert "no D" in out["images"][1]["caption"]
    record = steps.gather_metadata(str(path), summary)
    assert record["diffusion_nm2_s"] is None
    assert "diffusion" not in record["keywords"]


def _random_bytes(path: Path, good: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _truncated(path: Path, good: Path) -> None:
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _without_frames(path: Path, good: Path) -> None:
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:
        del f["entry/data/frames"]


def _foreign_hdf5(path: Path, good: Path) -> None:
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros((2, 4, 4))


BAD_MEASUREMENTS: list[tuple[str, Callable[[Path, Path], None] | None, str]] = [
    (
        "random bytes",
        _random_bytes,
        "is not a readable HDF5 file (Unable to synchronously open file (file signature",
    ),
    ("truncated", _truncated, "(truncated file: eof = "),
    ("no frames", _without_frames, "has no dataset /entry/data/frames; the file is incomplete"),
    ("foreign hdf5", _foreign_hdf5, "is HDF5 but not a beamlink XPCS measurement"),
    ("missing", None, "does not exist or is not a file; check the path"),
]


@pytest.mark.parametrize(("name", "make", "phrase"), BAD_MEASUREMENTS, ids=[c[0] for c in BAD_MEASUREMENTS])
@pytest.mark.parametrize("step", ["correlate", "gather_metadata"])
def test_bad_measurement_is_named_with_the_problem(
    name: str,
    make: Callable[[Path, Path], None] | None,
    phrase: str,
    step: str,
    measurement: tuple[Path, XpcsTruth],
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.h5"
    if make is not None:
        make(bad, measurement[0])
    out = tmp_path / "out"
    call: Callable[[], object] = (
        (lambda: steps.correlate(str(bad), str(out)))
        if step == "correlate"
        else (lambda: steps.gather_metadata(str(bad)))
    )
    with pytest.raises(InvalidInput) as caught:
        call()
    message = caught.value.message
    assert str(bad) in message, name
    assert phrase in message, message
    assert caught.value.__cause__ is None or not isinstance(
        caught.value.__cause__, InvalidInput
    )  # not wrapped
    assert not out.exists()  # nothing is written for a bad measurement


def test_damaged_frames_fail_the_correlation_by_checksum(
    measurement: tuple[Path, XpcsTruth], tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.h5"
    shutil.copy(measurement[0], damaged)
    with h5py.File(damaged, "r") as f:
        offset = f["entry/data/frames"].id.get_chunk_info(3).byte_offset
    with damaged.open("r+b") as raw:
        raw.seek(offset + 100)
        raw.write(b"\xff" * 16)
    with pytest.raises(InvalidInput, match="cannot be read") as caught:
        steps.correlate(str(damaged), str(tmp_path / "out"))
    assert f"dataset /entry/data/frames in {damaged}" in caught.value.message
    assert "the file is corrupted: transfer or regenerate it" in caught.value.message


def test_bad_arguments_and_results(measurement: tuple[Path, XpcsTruth], tmp_path: Path) -> None:
    path = measurement[0]
    with pytest.raises(InvalidInput, match="cannot create the output folder") as caught:
        steps.correlate(str(path), str(path))  # an existing file, not a folder
    assert caught.value.details["field"] == "output_dir"
    with pytest.raises(InvalidInput, match="measurement must be a non-empty path string"):
        steps.correlate("", str(tmp_path))
    with pytest.raises(InvalidInput, match=r"results file .* does not exist"):
        steps.plot(str(tmp_path / "absent_results.h5"), str(tmp_path))
    with pytest.raises(InvalidInput, match="not a beamlink XPCS results file"):
        steps.plot(str(path), str(tmp_path))  # a measurement is not a results file
