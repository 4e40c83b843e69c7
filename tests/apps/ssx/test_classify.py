"""Hit classification and the per-run summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beamlink.apps.ssx.classify import (
    HitFinderParams,
    RunResult,
    classify_hits,
    find_spots_run,
    summarize_run,
)
from beamlink.apps.ssx.synthetic import StillConfig, StillTruth, make_stills
from beamlink.errors import InvalidInput

COUNTS = [0] * 10 + [5] * 10 + [40] * 10
Run = tuple[RunResult, list[StillTruth]]


@pytest.fixture(scope="module")
def run() -> Run:
    config = StillConfig(shape=(256, 256), n_hot_pixels=3)
    stack, truths, mask = make_stills(COUNTS, config=config, seed=6)
    return find_spots_run(stack, mask), truths


def test_hits_are_classified_exactly(run: Run) -> None:
    result, truths = run
    expected = np.array([t.n_spots >= 16 for t in truths])
    np.testing.assert_array_equal(result.summary.hits, expected)
    # Counts may fall short by a faint, broad spot that breaks into pieces smaller than 3 px.
    shortfall = np.array(COUNTS) - result.summary.spots_per_frame
    assert shortfall.min() >= 0
    assert shortfall.max() <= 2


def test_run_summary_numbers(run: Run) -> None:
    summary = run[0].summary
    assert summary.n_frames == 30
    assert summary.n_hits == 10
    assert summary.hit_rate == pytest.approx(1 / 3)
    assert summary.mean_spots_per_frame == pytest.approx(summary.spots_per_frame.mean())
    assert 14.5 <= summary.mean_spots_per_frame <= 15.0
    assert 39.0 <= summary.mean_spots_per_hit <= 40.0
    record = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert record["n_hits"] == 10
    assert record["n_rejected"] == 0
    assert len(record["spots_per_frame"]) == 30


def test_thresholds_are_configurable(run: Run) -> None:
    frames = run[0].frames
    assert classify_hits(frames, HitFinderParams(min_spots=5)).sum() == 20
    assert classify_hits(frames, HitFinderParams(min_spots=1, max_spots=10)).sum() == 10
    with pytest.raises(InvalidInput) as info:
        HitFinderParams(min_spots=20, max_spots=10)
    assert info.value.details["field"] == "max_spots"


def test_stills_can_be_streamed_one_by_one() -> None:
    stack, _, mask = make_stills([0, 20], config=StillConfig(shape=(192, 192)), seed=7)
    result = find_spots_run(iter(stack), mask)
    assert result.summary.hits.tolist() == [False, True]


def test_bad_runs_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at least one"):
        summarize_run([])
    with pytest.raises(InvalidInput, match="3 axes") as info:
        find_spots_run(np.ones((2, 2, 8, 8)))
    assert info.value.details["field"] == "stills"
    with pytest.raises(InvalidInput, match="empty"):
        find_spots_run(np.ones((0, 8, 8)))
