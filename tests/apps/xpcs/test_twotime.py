"""Two-time correlation and its diagonal average against multi-tau."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.xpcs.correlate import correlate_g2
from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, make_measurement
from beamlink.apps.xpcs.twotime import g2_from_two_time, two_time
from beamlink.errors import InvalidInput


def test_diagonal_average_follows_multitau_g2() -> None:
    """One ring of 132 px, T = 1024 (science-clients.md §1.5 quotes 0.004).

    Normalising each frame by the ring's own mean biases C low by about β/N_d (0.5/132 = 0.0038): measured
    over 5 seeds the largest gap at τ = 1..32 was 0.0037-0.0060 without smoothing and 0.0085-0.0125 with the
    boost-corr static-bin smoothing (2 static bins of ~66 px). The tolerances leave room for that bias only.
    """
    measurement, _ = make_measurement(SyntheticXpcsConfig(n_frames=1024, seed=2))
    assert measurement.frames is not None
    ring = 4  # r = 10..12 px
    assert measurement.partition.dynamic_pixel_counts()[ring - 1] == 132
    curves = correlate_g2(measurement.frames, measurement.partition, frame_interval_s=1.0)
    lags = curves.tau_frames <= 32
    multitau = curves.g2[lags, ring - 1]
    for smooth, tolerance in ((False, 0.008), (True, 0.015)):
        c = two_time(measurement.frames, measurement.partition, bins=[ring], smooth=smooth).c[0]
        assert c.shape == (1024, 1024)
        assert c.dtype == np.float32
        np.testing.assert_allclose(c, c.T, rtol=1e-6)
        gap = g2_from_two_time(c)[curves.tau_frames[lags] - 1] - multitau
        assert np.max(np.abs(gap)) < tolerance
        assert np.mean(gap) < 0  # the bias has the expected sign


def test_diagonal_average_of_a_known_matrix() -> None:
    t = np.arange(6)
    c = 1.0 + np.exp(-np.abs(np.subtract.outer(t, t)))
    np.testing.assert_allclose(g2_from_two_time(c), 1.0 + np.exp(-np.arange(1, 6)))
    assert g2_from_two_time(np.stack([c, c])).shape == (2, 5)


def test_bad_two_time_arguments_are_refused() -> None:
    measurement, _ = make_measurement(SyntheticXpcsConfig(n_frames=16, seed=0))
    assert measurement.frames is not None
    with pytest.raises(InvalidInput, match="bins"):
        two_time(measurement.frames, measurement.partition, bins=[0])
    with pytest.raises(InvalidInput, match="shape"):
        two_time(measurement.frames[:, :10], measurement.partition)
    with pytest.raises(InvalidInput, match="at least 2 frames"):
        two_time(measurement.frames[:1], measurement.partition)
    with pytest.raises(InvalidInput, match="square"):
        g2_from_two_time(np.ones((3, 4)))
