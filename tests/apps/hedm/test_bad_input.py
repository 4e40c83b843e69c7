"""Bad input to the HEDM kernels: one clear InvalidInput naming the field and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from apps._bad_input import Case, assert_invalid_input, bad_input_cases
from beamlink.apps.hedm.framewise import merge_across_omega, search_frames
from beamlink.apps.hedm.peaksearch import merge_blocks, search_block, search_stack, split_blocks
from beamlink.apps.hedm.pvfit import refine_peaks
from beamlink.apps.hedm.synthetic import make_blob_stack
from beamlink.errors import InvalidInput

GOOD = np.full((4, 8, 8), 5.0)


def _with_nan() -> np.ndarray:
    frames = GOOD.copy()
    frames[2, 3, 4] = np.nan
    return frames


def _results(n_frames: int = 8, block_size: int = 3) -> list[dict[str, Any]]:
    stack = np.zeros((n_frames, 8, 8))
    stack[2:5, 3, 3] = 50.0
    blocks = split_blocks(n_frames, block_size, 1)
    return [dict(search_block(stack[b["start"] : b["stop"]], b, threshold=10.0)) for b in blocks]


def _other_shape(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results[1] = {**results[1], "shape": [9, 9]}
    return results


def _malformed_piece(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results[0] = {**results[0], "pieces": [{"n_px": 3}]}
    return results


CASES: list[Case] = [
    ("empty stack", lambda: search_stack(np.zeros((0, 8, 8)), threshold=1.0), "stack", "at least one value"),
    ("empty frame", lambda: search_stack(np.zeros((3, 0, 8)), threshold=1.0), "stack", "at least one"),
    ("2-D stack", lambda: search_stack(np.zeros((8, 8)), threshold=1.0), "stack", "frames[None]"),
    ("4-D stack", lambda: search_stack(np.zeros((2, 2, 8, 8)), threshold=1.0), "stack", "(n_frames, y, z)"),
    ("complex dtype", lambda: search_stack(GOOD.astype(complex), threshold=1.0), "stack", "uint16"),
    ("bool dtype", lambda: search_stack(GOOD > 0, threshold=1.0), "stack", "real numbers"),
    ("string dtype", lambda: search_stack(np.full((2, 2, 2), "a"), threshold=1.0), "stack", "real numbers"),
    ("ragged list", lambda: search_stack([[[1, 2]], [[1]]], threshold=1.0), "stack", "NumPy array"),
    ("NaN in frames", lambda: search_stack(_with_nan(), threshold=1.0), "stack", "(2, 3, 4)"),
    ("zero threshold", lambda: search_stack(GOOD, threshold=0.0), "threshold", "6·√background"),
    ("negative map", lambda: search_stack(GOOD, threshold=-np.ones((8, 8))), "threshold", "> 0"),
    ("threshold shape", lambda: search_stack(GOOD, threshold=np.ones((4, 4))), "threshold", "(8, 8)"),
    ("NaN threshold", lambda: search_stack(GOOD, threshold=np.float64("nan")), "threshold", "finite"),
    ("dark shape", lambda: search_stack(GOOD, threshold=1.0, dark=np.zeros(8)), "dark", "(8, 8)"),
    ("zero flood", lambda: search_stack(GOOD, threshold=1.0, flood=np.zeros((8, 8))), "flood", "> 0"),
    ("bool threshold", lambda: search_stack(GOOD, threshold=True), "threshold", "not a bool"),
    ("no frames", lambda: split_blocks(0, 4), "n_frames", "at least one frame"),
    ("zero block", lambda: split_blocks(10, 0), "block_size", "64 frames"),
    ("float block", lambda: split_blocks(10, 2.5), "block_size", "whole number"),  # type: ignore[arg-type]
    ("no overlap", lambda: split_blocks(10, 4, 0), "overlap", "use 1"),
    ("overlap too big", lambda: split_blocks(10, 4, 5), "overlap", "use 1"),
    (
        "block/frames mismatch",
        lambda: search_block(GOOD, split_blocks(10, 2)[0], threshold=1.0),
        "frames",
        "stack[block['start']:block['stop']]",
    ),
    ("not a block", lambda: search_block(GOOD, {"start": 0}, threshold=1.0), "block", "split_blocks()"),
    (
        "inverted block",
        lambda: search_block(
            GOOD, {"index": 0, "start": 3, "owned_stop": 1, "stop": 4, "overlap": 1}, threshold=1.0
        ),
        "block",
        "split_blocks()",
    ),
    ("no results", lambda: merge_blocks([]), "results", "one per block"),
    ("missing block", lambda: merge_blocks(_results()[::2]), "results", "exactly once"),
    ("missing last block", lambda: merge_blocks(_results()[:-1]), "results", "exactly once"),
    ("mixed shapes", lambda: merge_blocks(_other_shape(_results())), "results", "one scan"),
    ("malformed piece", lambda: merge_blocks(_malformed_piece(_results())), "results", "unchanged"),
    ("zero domega", lambda: merge_blocks(_results(), domega=0.0), "domega", "negative value"),
    ("min_px above max_px", lambda: merge_blocks(_results(), min_px=10, max_px=5), "max_px", "min_px"),
    ("framewise NaN", lambda: search_frames(_with_nan(), threshold=1.0), "frames", "Replace dead pixels"),
    ("framewise overlap", lambda: merge_across_omega([], overlap_px=-1.0), "overlap_px", "> 0"),
]


@bad_input_cases(CASES)
def test_bad_input_raises_invalid_input(name: str, call: Callable[[], object], field: str, fix: str) -> None:
    assert_invalid_input(name, call, field, fix)


def test_refine_refuses_frames_that_miss_a_peak() -> None:
    stack, truth = make_blob_stack(seed=0, n_frames=16, shape=(64, 64), n_peaks=4)
    peaks = search_stack(stack, threshold=truth.threshold, dark=truth.dark)
    with pytest.raises(InvalidInput, match="frames covering every peak") as caught:
        refine_peaks(stack[8:], peaks, dark=truth.dark, first_frame=8)
    assert caught.value.details["field"].startswith("peaks[")


def test_generator_refuses_impossible_packing() -> None:
    with pytest.raises(InvalidInput, match="fewer peaks") as caught:
        make_blob_stack(n_frames=8, shape=(32, 32), n_peaks=500)
    assert caught.value.details["field"] == "n_peaks"
