"""The forward model and the modulus projection (reference note §5.4: idempotent, keeps phase, Parseval)."""

from __future__ import annotations

import numpy as np

from beamlink.apps.ptycho.forward import (
    data_error,
    diffraction_intensities,
    exit_waves,
    far_field,
    project_modulus,
    scatter_add,
    view_index,
)


def _random_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def test_modulus_projection_is_idempotent_and_keeps_the_phase() -> None:
    rng = np.random.default_rng(0)
    field = _random_field(rng, (3, 16, 16))
    amplitude = rng.uniform(0.1, 2.0, (3, 16, 16))
    once = project_modulus(field, amplitude)
    np.testing.assert_allclose(np.abs(once), amplitude, rtol=1e-12)
    np.testing.assert_allclose(np.angle(once), np.angle(field), atol=1e-12)
    np.testing.assert_allclose(project_modulus(once, amplitude), once, rtol=1e-12)
    assert data_error(once, amplitude) < 1e-28


def test_modulus_projection_where_the_field_is_zero() -> None:
    field = np.zeros((4, 4), dtype=complex)
    amplitude = np.full((4, 4), 3.0)
    np.testing.assert_array_equal(project_modulus(field, amplitude), amplitude.astype(complex))


def test_parseval_for_the_unnormalised_fft() -> None:
    rng = np.random.default_rng(1)
    waves = _random_field(rng, (5, 16, 12))
    far = far_field(waves)
    np.testing.assert_allclose(
        np.sum(np.abs(far) ** 2, axis=(1, 2)), 16 * 12 * np.sum(np.abs(waves) ** 2, axis=(1, 2)), rtol=1e-12
    )


def test_views_and_scatter_match_explicit_slices() -> None:
    rng = np.random.default_rng(2)
    obj = _random_field(rng, (20, 24))
    probe = _random_field(rng, (8, 8))
    positions = np.array([[0, 0], [3, 5], [12, 16]])
    index = view_index(positions, (8, 8), (20, 24))
    waves = exit_waves(obj, probe, index)
    back = np.zeros_like(obj)
    for k, (r, c) in enumerate(positions):
        np.testing.assert_array_equal(waves[k], probe * obj[r : r + 8, c : c + 8])
        back[r : r + 8, c : c + 8] += waves[k]
    np.testing.assert_allclose(scatter_add(waves, index, (20, 24)), back, rtol=1e-12)
    intensities = diffraction_intensities(obj, probe, positions)
    np.testing.assert_allclose(intensities[1], np.abs(np.fft.fft2(waves[1])) ** 2, rtol=1e-10)
