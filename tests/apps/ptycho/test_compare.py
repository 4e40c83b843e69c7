"""Ambiguity removal before comparison: global complex scale and linear phase ramp."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.ptycho.compare import (
    align_object,
    global_scale,
    illumination_mask,
    object_nrmse,
    phase_ramp,
)
from beamlink.apps.ptycho.synthetic import make_object, make_probe


def _object() -> np.ndarray:
    return make_object(48, np.random.default_rng(0))


def test_global_complex_scale_is_removed() -> None:
    true = _object()
    estimate = true * 0.37 * np.exp(1.9j)
    mask = np.ones(true.shape, dtype=bool)
    assert global_scale(true, estimate, mask) == pytest.approx(1 / (0.37 * np.exp(1.9j)))
    assert object_nrmse(true, estimate) < 1e-12


@pytest.mark.parametrize(("slope_y", "slope_x"), [(0.02, -0.03), (0.6, 0.4), (-1.1, 2.5)])
def test_phase_ramp_is_removed_even_when_it_wraps(slope_y: float, slope_x: float) -> None:
    true = _object()
    y, x = np.indices(true.shape)
    estimate = 2.0 * true * np.exp(1j * (0.3 + slope_y * y + slope_x * x))
    assert object_nrmse(true, estimate) > 0.1
    assert object_nrmse(true, estimate, remove_ramp=True) < 1e-10
    mask = np.ones(true.shape, dtype=bool)
    ramp = phase_ramp(true, estimate, mask)
    np.testing.assert_allclose(np.diff(ramp, axis=0), -slope_y, atol=1e-9)
    np.testing.assert_allclose(align_object(true, estimate, mask, remove_ramp=True), true, atol=1e-10)


def test_ramp_fit_ignores_pixels_outside_the_mask() -> None:
    true = _object()
    x = np.indices(true.shape)[1]
    estimate = true * np.exp(0.1j * x)
    mask = np.zeros(true.shape, dtype=bool)
    mask[8:40, 8:40] = True
    estimate[~mask] = 5.0  # garbage where nothing was measured
    assert object_nrmse(true, estimate, mask, remove_ramp=True) < 1e-10


def test_illumination_mask_covers_the_scanned_area() -> None:
    probe = make_probe(16, 4.0)
    positions = np.array([[r, c] for r in range(0, 17, 4) for c in range(0, 17, 4)])
    mask = illumination_mask(probe, positions, (40, 40))
    assert mask[20, 20]
    assert not mask[0, 0]
    assert not mask[39, 39]
