"""The synthetic speckle generator: seeded, Poisson counts of the right mean, the stated decay."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, iter_speckle_frames, make_measurement
from beamlink.errors import InvalidInput


def test_same_seed_same_frames_other_seed_other_frames() -> None:
    config = SyntheticXpcsConfig(n_frames=40, seed=11)
    a, truth = make_measurement(config)
    b, _ = make_measurement(config)
    c, _ = make_measurement(SyntheticXpcsConfig(n_frames=40, seed=12))
    assert a.frames is not None
    assert b.frames is not None
    assert c.frames is not None
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (40, 64, 64)
    assert a.frames.dtype == np.uint32
    np.testing.assert_allclose(truth.gamma_per_s, 4.9e6 * a.partition.dynamic_q2())
    np.testing.assert_allclose(truth.gamma_dt, truth.gamma_per_s * 5e-5)
    assert 0.003 < truth.gamma_dt.min() < 0.006
    assert 0.15 < truth.gamma_dt.max() < 0.17


def test_intensity_statistics_follow_the_speckle_model() -> None:
    """M = 2 modes: ⟨n⟩ = k̄ and var(n) = k̄ + β·k̄² with β = 1/M (speckle plus shot noise)."""
    rng = np.random.default_rng(0)
    frames = np.concatenate(list(iter_speckle_frames(np.full((32, 32), 0.5), 400, mean_count=5.0, rng=rng)))
    counts = frames.astype(np.float64)
    assert counts.mean() == pytest.approx(5.0, rel=0.01)
    assert counts.var() == pytest.approx(5.0 + 0.5 * 25.0, rel=0.03)


def test_frames_decorrelate_at_the_stated_rate() -> None:
    """Lag-1 intensity correlation of one fast pixel set: (⟨I(t)I(t+1)⟩ - ⟨I⟩²)/⟨I⟩² = β·exp(-2Γ·Δt)."""
    rng = np.random.default_rng(1)
    stack = np.concatenate(list(iter_speckle_frames(np.full((16, 16), 0.2), 3000, mean_count=50.0, rng=rng)))
    x = stack.reshape(3000, -1).astype(np.float64)
    excess = (x[:-1] * x[1:]).mean() / x.mean() ** 2 - 1.0
    assert excess == pytest.approx(0.5 * np.exp(-0.4), abs=0.01)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_frames", 1),
        ("frame_interval_s", 0.0),
        ("n_modes", 0),
        ("mean_count", -1.0),
        ("ring_radii_px", (5, 2)),
    ],
)
def test_bad_generator_parameters_are_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        SyntheticXpcsConfig(**{field: value})  # type: ignore[arg-type]
    assert info.value.details["field"] == field
