"""Peak search on blob-level synthetic stacks: recall, centroids, intensities, and exact block fan-out."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from beamlink.apps.hedm.evaluate import match_peaks
from beamlink.apps.hedm.peaksearch import merge_blocks, search_block, search_stack, split_blocks
from beamlink.apps.hedm.records import Peak
from beamlink.apps.hedm.synthetic import make_blob_stack

_FIELDS = ("frame", "omega", "y", "z", "intensity", "n_px", "max_i", "frame_min", "frame_max")


def _table(peaks: list[Peak]) -> np.ndarray:
    return np.array([[p[k] for k in _FIELDS] for p in peaks], dtype=np.float64)  # type: ignore[literal-required]


def _fan_out(stack: np.ndarray, block_size: int, overlap: int, **search: object) -> list[Peak]:
    blocks = split_blocks(stack.shape[0], block_size, overlap)
    results = [search_block(stack[b["start"] : b["stop"]], b, **search) for b in blocks]
    return merge_blocks(results, domega=0.25)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recall_and_centroids_meet_the_reference_tolerances(seed: int) -> None:
    stack, truth = make_blob_stack(seed=seed)
    peaks = search_stack(stack, threshold=truth.threshold, dark=truth.dark, domega=truth.domega)
    match = match_peaks(peaks, truth.peaks, radius=1.5)
    assert match.recall >= 0.98
    assert match.precision >= 0.98
    # Reference note §3.4 (blob level): mean ≤ 0.1, p95 ≤ 0.2 in (frame, y, z); measured 0.013-0.017 here.
    assert match.mean_error <= 0.1
    assert match.p95_error <= 0.2


def test_integrated_intensity_matches_the_analytic_integral() -> None:
    stack, truth = make_blob_stack(seed=3)
    peaks = search_stack(stack, threshold=truth.threshold, dark=truth.dark)
    match = match_peaks(peaks, truth.peaks)
    found = np.array([peaks[i]["intensity"] for i in match.pairs[:, 0]])
    expected = np.array([truth.peaks[j]["intensity"] for j in match.pairs[:, 1]])
    relative = found / expected - 1.0
    assert np.mean(np.abs(relative) <= 0.05) >= 0.9


def test_omega_follows_the_frame_centroid() -> None:
    stack, truth = make_blob_stack(seed=4, omega0=-30.0, domega=-0.25)
    peaks = search_stack(stack, threshold=truth.threshold, dark=truth.dark, omega0=-30.0, domega=-0.25)
    for peak in peaks:
        assert peak["omega"] == pytest.approx(-30.0 - 0.25 * peak["frame"])
        assert peak["omega_min"] <= peak["omega"] <= peak["omega_max"]
        assert peak["frame_min"] <= peak["frame"] <= peak["frame_max"]


@pytest.mark.parametrize(("block_size", "overlap"), [(1, 1), (5, 1), (7, 3), (16, 16), (48, 1)])
def test_block_fan_out_finds_the_same_peaks(block_size: int, overlap: int) -> None:
    stack, truth = make_blob_stack(seed=5)
    whole = search_stack(stack, threshold=truth.threshold, dark=truth.dark, domega=0.25)
    fanned = _fan_out(stack, block_size, overlap, threshold=truth.threshold, dark=truth.dark)
    assert len(fanned) == len(whole) == len(truth.peaks)
    np.testing.assert_allclose(_table(fanned), _table(whole), rtol=1e-12, atol=1e-9)


def test_block_records_survive_json_and_any_order() -> None:
    stack, truth = make_blob_stack(seed=6)
    blocks = json.loads(json.dumps(split_blocks(stack.shape[0], 6, 1)))
    results = [
        json.loads(
            json.dumps(search_block(stack[b["start"] : b["stop"]], b, threshold=truth.threshold, dark=100))
        )
        for b in blocks
    ]
    random.Random(0).shuffle(results)
    merged = merge_blocks(results)
    assert json.loads(json.dumps(merged)) == merged
    whole = search_stack(stack, threshold=truth.threshold, dark=100)
    np.testing.assert_allclose(_table(merged), _table(whole), rtol=1e-12, atol=1e-9)


def test_split_blocks_tiles_the_scan() -> None:
    blocks = split_blocks(10, 4, 2)
    assert [(b["start"], b["owned_stop"], b["stop"]) for b in blocks] == [(0, 4, 6), (4, 8, 10), (8, 10, 10)]
    assert [b["index"] for b in blocks] == [0, 1, 2]


def _pillars_bridged_late() -> np.ndarray:
    """Two pillars in frames 0-3 that only join through a bridge in frame 4 (a U-shaped blob)."""
    stack = np.zeros((7, 12, 16))
    stack[0:4, 5, 3] = 50.0
    stack[0:4, 5, 11] = 80.0
    stack[4, 5, 3:12] = 20.0
    stack[2:6, 9, 7] = 30.0  # a second blob crossing the boundary of the 3-frame blocks
    return stack


@pytest.mark.parametrize("block_size", [1, 2, 3, 7])
def test_pieces_joined_only_in_a_later_block_are_one_peak(block_size: int) -> None:
    stack = _pillars_bridged_late()
    peaks = _fan_out(stack, block_size, 1, threshold=10.0)
    assert len(peaks) == 2
    u_shape = max(peaks, key=lambda p: p["n_px"])
    assert u_shape["n_px"] == 4 + 4 + 9
    total = 4 * 50 + 4 * 80 + 9 * 20
    assert u_shape["intensity"] == pytest.approx(total)
    assert u_shape["z"] == pytest.approx((4 * 50 * 3 + 4 * 80 * 11 + 20 * sum(range(3, 12))) / total)
    assert (u_shape["frame_min"], u_shape["frame_max"]) == (0, 4)


def test_min_px_drops_small_blobs_and_threshold_map_zero_ignores_pixels() -> None:
    stack = _pillars_bridged_late()
    stack[3, 1, 1] = 999.0  # a hot pixel
    assert len(search_stack(stack, threshold=10.0, min_px=1)) == 3
    assert len(search_stack(stack, threshold=10.0, min_px=2)) == 2
    threshold = np.full(stack.shape[1:], 10.0)
    threshold[9, 7] = 0.0  # mask the second blob's column
    peaks = search_stack(stack, threshold=threshold, min_px=2)
    assert len(peaks) == 1


def test_dark_map_and_flood_are_applied() -> None:
    stack = _pillars_bridged_late()
    dark = np.full(stack.shape[1:], 7.0)
    flood = np.full(stack.shape[1:], 2.0)
    plain = search_stack(stack, threshold=10.0)
    corrected = search_stack(stack * 2.0 + 7.0, threshold=10.0, dark=dark, flood=flood)
    np.testing.assert_allclose(_table(corrected), _table(plain), rtol=1e-12)


def test_no_signal_gives_no_peaks() -> None:
    empty = np.zeros((3, 8, 8))
    assert search_stack(empty, threshold=1.0) == []
    assert search_block(empty, split_blocks(3, 3)[0], threshold=1.0)["pieces"] == []
    assert _fan_out(empty, 1, 1, threshold=1.0) == []
