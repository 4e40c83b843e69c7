"""The MIDAS-style 2-D search + merge across ω agrees with 3-D labelling (reference note §3.4)."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.hedm.evaluate import match_peaks
from beamlink.apps.hedm.framewise import merge_across_omega, search_frames
from beamlink.apps.hedm.peaksearch import search_stack
from beamlink.apps.hedm.synthetic import make_blob_stack


@pytest.mark.parametrize("seed", [0, 1])
def test_framewise_and_3d_search_agree(seed: int) -> None:
    stack, truth = make_blob_stack(seed=seed)
    in_3d = search_stack(stack, threshold=truth.threshold, dark=truth.dark)
    per_frame = search_frames(stack, threshold=truth.threshold, dark=truth.dark)
    merged = merge_across_omega(per_frame, overlap_px=2.0)
    match = match_peaks(merged, in_3d, radius=0.5)
    assert match.recall == 1.0
    assert match.precision == 1.0
    # Reference: centroids within 0.02 px and intensities within 1 % (measured ≤ 0.01 px, ≤ 0.4 %).
    assert match.errors.max() <= 0.02
    found = np.array([merged[i]["intensity"] for i in match.pairs[:, 0]])
    expected = np.array([in_3d[j]["intensity"] for j in match.pairs[:, 1]])
    assert np.abs(found / expected - 1).max() <= 0.01
    assert match_peaks(merged, truth.peaks).recall >= 0.98


def test_regions_in_non_consecutive_frames_stay_apart() -> None:
    stack = np.zeros((5, 8, 8))
    stack[0:2, 3, 3] = 50.0
    stack[3:5, 3, 3] = 50.0  # same place, after an empty frame
    regions = search_frames(stack, threshold=10.0, first_frame=10)
    assert [r["frame"] for r in regions] == [10, 11, 13, 14]
    spots = merge_across_omega(regions, min_px=1)
    assert [(s["frame_min"], s["frame_max"]) for s in spots] == [(10, 11), (13, 14)]


def test_regions_further_than_overlap_start_new_spots() -> None:
    stack = np.zeros((2, 8, 12))
    stack[0, 3, 2] = 50.0
    stack[1, 3, 6] = 50.0  # 4 px away
    regions = search_frames(stack, threshold=10.0)
    assert len(merge_across_omega(regions, overlap_px=2.0, min_px=1)) == 2
    assert len(merge_across_omega(regions, overlap_px=5.0, min_px=1)) == 1
    assert merge_across_omega([], min_px=1) == []
