"""Multi-tau correlator: lag grid, streaming == batch form, normalisation sanity, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from beamlink.apps.xpcs.correlate import (
    MultitauCorrelator,
    correlate_g2,
    multitau,
    normalize_g2,
    tau_grid,
)
from beamlink.apps.xpcs.qmap import DetectorGeometry, QPartition, partition_q
from beamlink.errors import InvalidInput


def _partition(shape: tuple[int, int] = (16, 16), n_dynamic: int = 3, n_static: int = 2) -> QPartition:
    geometry = DetectorGeometry(
        shape=shape, pixel_size_m=75e-6, distance_m=5.0, wavelength_m=1e-10, beam_center_yx_px=(8.0, 8.0)
    )
    q = geometry.q_map()
    return partition_q(
        q, n_dynamic=n_dynamic, n_static_per_dynamic=n_static, q_min=geometry.q_at_radius(2), q_max=q.max()
    )


def _batch_form(frames: NDArray[Any], dpl: int = 4) -> tuple[NDArray[Any], ...]:
    """The textbook batch form of science-clients.md §1.2, written independently of the streaming code."""
    x = frames.reshape(frames.shape[0], -1).astype(np.float64)
    taus, pair, past, future = [], [], [], []
    level = 0
    while True:
        first = 1 if level == 0 else dpl + 1
        ks = [k for k in range(first, 2 * dpl + 1) if k < x.shape[0]]
        if not ks:
            break
        for k in ks:
            taus.append(k << level)
            pair.append((x[:-k] * x[k:]).mean(axis=0))
            past.append(x[:-k].mean(axis=0))
            future.append(x[k:].mean(axis=0))
        n = x.shape[0] // 2 * 2
        x = 0.5 * (x[0:n:2] + x[1:n:2])
        level += 1
    return np.array(taus), np.array(pair), np.array(past), np.array(future)


def test_tau_grid_matches_boost_corr() -> None:
    taus, levels = tau_grid(4096)
    assert taus.size == 43
    assert taus[:16].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32]
    assert levels[:12].tolist() == [0] * 8 + [1] * 4
    assert taus[-1] == 7 * 512  # k = 8 at level 9 would need 9 coarse frames; there are 8
    assert tau_grid(10**4)[0].size == 48
    assert tau_grid(10**5)[0].size == 61
    assert tau_grid(2)[0].tolist() == [1]


@pytest.mark.parametrize("batch_frames", [1, 7, 64, 1000])
def test_streaming_equals_the_batch_form(batch_frames: int) -> None:
    rng = np.random.default_rng(3)
    frames = rng.poisson(3.0, size=(203, 5, 6)).astype(np.uint16)
    sums = multitau(frames, batch_frames=batch_frames)
    taus, pair, past, future = _batch_form(frames)
    np.testing.assert_array_equal(sums.tau_frames, taus)
    np.testing.assert_allclose(sums.pair_mean, pair, rtol=1e-12)
    np.testing.assert_allclose(sums.past_mean, past, rtol=1e-12)
    np.testing.assert_allclose(sums.future_mean, future, rtol=1e-12)
    np.testing.assert_allclose(sums.mean_intensity, frames.reshape(203, -1).mean(axis=0), rtol=1e-12)
    assert sums.n_frames == 203


def test_an_iterable_of_batches_gives_the_same_result_as_the_array() -> None:
    rng = np.random.default_rng(4)
    frames = rng.poisson(2.0, size=(150, 16, 16)).astype(np.float32)
    part = _partition()
    whole = correlate_g2(frames, part, frame_interval_s=1e-3)
    streamed = correlate_g2((frames[i : i + 40] for i in range(0, 150, 40)), part, frame_interval_s=1e-3)
    np.testing.assert_allclose(streamed.g2, whole.g2, rtol=1e-12)
    np.testing.assert_allclose(whole.tau_s, whole.tau_frames * 1e-3)


def test_constant_frames_give_g2_of_exactly_one() -> None:
    frames = np.full((300, 16, 16), 3, dtype=np.uint16)
    curves = correlate_g2(frames, _partition(), frame_interval_s=1.0)
    np.testing.assert_allclose(curves.g2, 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(curves.g2_err[:-1], 0.0, atol=1e-12)


def test_independent_frames_give_g2_of_one_within_the_error_bars() -> None:
    rng = np.random.default_rng(5)
    frames = rng.poisson(4.0, size=(2000, 16, 16))
    curves = correlate_g2(frames, _partition(), frame_interval_s=1.0)
    # The last lag has a single coarse frame pair: no spread to estimate an error from.
    assert np.all(np.isnan(curves.g2_err[-1]))
    z = (curves.g2[:-1] - 1.0) / curves.g2_err[:-1]
    assert np.all(np.isfinite(z))
    assert np.mean(np.abs(z) < 3) >= 0.97
    assert np.max(np.abs(z)) < 5
    assert 0.6 < z.std() < 1.4  # error bars neither far too small nor far too large


def test_only_partition_pixels_are_correlated() -> None:
    part = _partition()
    frames = np.random.default_rng(6).poisson(1.0, size=(20, 16, 16))
    sums = multitau(frames, pixel_mask=part.mask)
    np.testing.assert_array_equal(sums.pixels, np.flatnonzero(part.mask))
    assert sums.pair_mean.shape == (sums.tau_frames.size, int(part.mask.sum()))


def test_a_bin_without_counts_gives_nan_not_an_error() -> None:
    frames = np.random.default_rng(7).poisson(2.0, size=(100, 16, 16))
    part = _partition()
    frames[:, part.dqmap == 1] = 0
    curves = correlate_g2(frames, part, frame_interval_s=1.0)
    assert np.all(np.isnan(curves.g2[:, 0]))
    assert np.all(np.isfinite(curves.g2[:, 1:]))


_STACK = np.ones((10, 16, 16))


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (np.ones((0, 16, 16)), "empty"),
        (np.ones((10, 0, 16)), "empty"),
        (np.ones((10, 16, 16), dtype=np.complex128), "complex"),
        (np.full((10, 16, 16), "a"), "string"),
        (np.ones((10, 16, 16), dtype=bool), "boolean"),
        (np.ones(16), "3 axes"),
        (np.ones((2, 10, 16, 16)), "3 axes"),
        (np.where(np.arange(2560).reshape(10, 16, 16) == 77, np.nan, 1.0), "NaN"),
        (np.ones((10, 16, 15)), "shape"),
        (np.ones((1, 16, 16)), "at least 2 frames"),
    ],
    ids=["no-frames", "no-rows", "complex", "string", "bool", "1-D", "4-D", "nan", "qmap-shape", "one-frame"],
)
def test_bad_frames_are_refused(frames: NDArray[Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as info:
        correlate_g2(frames, _partition(), frame_interval_s=1.0)
    assert info.value.details["field"] == "frames"


def test_nan_message_names_the_first_bad_index() -> None:
    frames = _STACK.copy()
    frames[3, 4, 5] = np.nan
    with pytest.raises(InvalidInput) as info:
        correlate_g2(frames, _partition(), frame_interval_s=1.0)
    assert info.value.details["first_index"] == [3, 4, 5]
    assert "mask them out" in info.value.message


def test_nan_in_a_streamed_batch_is_refused() -> None:
    bad = _STACK.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(InvalidInput, match="infinite"):
        correlate_g2(iter([_STACK, bad]), _partition(), frame_interval_s=1.0)


def test_other_bad_arguments_are_refused() -> None:
    part = _partition()
    with pytest.raises(InvalidInput, match="empty"):
        multitau(iter([]))
    with pytest.raises(InvalidInput, match="iterable"):
        multitau(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as info:
        correlate_g2(_STACK, part, frame_interval_s=0.0)
    assert info.value.details["field"] == "frame_interval_s"
    with pytest.raises(InvalidInput) as info:
        multitau(_STACK, batch_frames=0)
    assert info.value.details["field"] == "batch_frames"
    with pytest.raises(InvalidInput, match="pixel_mask"):
        MultitauCorrelator((16, 16), pixel_mask=np.zeros((16, 16), dtype=bool))
    other = _partition(shape=(12, 12))
    with pytest.raises(InvalidInput, match="q partition"):
        normalize_g2(multitau(_STACK), other, frame_interval_s=1.0)
