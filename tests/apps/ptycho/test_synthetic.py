"""The synthetic scan: seeded, in range, and consistent with its truth."""

from __future__ import annotations

import numpy as np

from beamlink.apps.ptycho.forward import diffraction_intensities
from beamlink.apps.ptycho.synthetic import make_probe, make_scan


def test_seeded_and_in_range() -> None:
    data, truth = make_scan(n=64, seed=3)
    again, truth_again = make_scan(n=64, seed=3)
    np.testing.assert_array_equal(data.intensities, again.intensities)
    np.testing.assert_array_equal(truth.object, truth_again.object)
    other, _ = make_scan(n=64, seed=4)
    assert not np.array_equal(other.positions, data.positions) or not np.array_equal(
        other.intensities, data.intensities
    )
    assert data.intensities.shape == (81, 32, 32)
    assert data.object_shape == (64, 64)
    amplitude, phase = np.abs(truth.object), np.angle(truth.object)
    assert amplitude.min() >= 0.6 - 1e-12
    assert amplitude.max() <= 1.0 + 1e-12
    assert np.abs(phase).max() <= np.pi / 4 + 1e-12
    assert data.positions.min() >= 0
    assert data.positions.max() <= 64 - 32


def test_noise_free_intensities_come_from_the_truth() -> None:
    data, truth = make_scan(n=64, seed=0)
    np.testing.assert_allclose(
        data.intensities, diffraction_intensities(truth.object, truth.probe, data.positions), rtol=1e-12
    )


def test_poisson_intensities_hold_the_photon_budget() -> None:
    data, truth = make_scan(n=64, photons=1e5, seed=0)
    assert np.all(data.intensities == np.round(data.intensities))
    assert abs(data.intensities.sum(axis=(1, 2)).mean() / 1e5 - 1) < 0.01
    expected = diffraction_intensities(truth.object, truth.probe, data.positions)
    assert abs(expected.sum() / data.intensities.sum() - 1) < 0.01


def test_probe_is_an_apodised_disc_with_quadratic_phase() -> None:
    probe = make_probe(32, 7.0)
    assert np.abs(probe).max() <= 1.0
    assert np.abs(probe[0, 0]) < 1e-6
    assert np.abs(probe[16, 16]) > 0.99
    # Overlap of neighbouring views at step 4: 1 - 4 / 14 ≈ 71 % (the reference note's value).
    assert abs((1 - 4 / (2 * 7.0)) - 0.71) < 0.01
