"""The least-squares baseline: exact on noiseless peaks, well under 0.1 px on the synthetic patches."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.braggnn.evaluate import centre_errors
from beamlink.apps.braggnn.fit import fit_centres, fit_patches
from beamlink.apps.braggnn.peakshape import PARAMETERS, pseudo_voigt_2d, pseudo_voigt_2d_jacobian
from beamlink.apps.braggnn.synthetic import make_patches


def test_jacobian_matches_finite_differences() -> None:
    y, x = np.indices((11, 11), dtype=np.float64)
    params = np.array([5.3, 4.6, 800.0, 2.5, 3.1, 0.3, 12.0])
    analytic = pseudo_voigt_2d_jacobian(params, x, y)
    assert analytic.shape == (11, 11, len(PARAMETERS))
    for i in range(7):
        step = np.zeros(7)
        step[i] = 1e-6 * max(1.0, abs(params[i]))
        numeric = (pseudo_voigt_2d(params + step, x, y) - pseudo_voigt_2d(params - step, x, y)) / (
            2 * step[i]
        )
        np.testing.assert_allclose(analytic[..., i], numeric, rtol=1e-5, atol=1e-4, err_msg=PARAMETERS[i])


def test_model_broadcasts_over_a_stack_of_parameters() -> None:
    y, x = np.indices((11, 11), dtype=np.float64)
    params = np.array([[5.0, 5.0, 100.0, 2.0, 2.0, 0.0, 1.0], [4.0, 6.0, 50.0, 3.0, 2.5, 1.0, 0.0]])
    stacked = pseudo_voigt_2d(params, x, y)
    assert stacked.shape == (2, 11, 11)
    np.testing.assert_array_equal(stacked[1], pseudo_voigt_2d(params[1], x, y))
    assert stacked[0, 5, 5] == pytest.approx(101.0)


def test_fit_recovers_noiseless_peaks_exactly() -> None:
    patches, centres = make_patches(40, seed=3, poisson=False)
    fits = fit_patches(patches)
    assert fits.converged.all()
    np.testing.assert_allclose(fits.centres, centres, atol=1e-5)
    assert fits.params.shape == (40, 7)
    assert (fits.params[:, 5] >= 0).all()
    assert (fits.params[:, 5] <= 1).all()


def test_fit_error_is_well_under_a_tenth_of_a_pixel_on_noisy_patches() -> None:
    patches, centres = make_patches(300, seed=7)
    errors = centre_errors(fit_centres(patches), centres)
    # Measured in the reference note: 0.026 px mean, 0.061 px p95.
    assert errors.mean() < 0.05
    assert np.percentile(errors, 95) < 0.1


def test_flat_patch_keeps_its_fit_inside_the_patch() -> None:
    patches, _ = make_patches(2, seed=0)
    patches[1] = 7.0
    fits = fit_patches(patches)
    assert np.isfinite(fits.params).all()
    assert ((fits.centres >= 0) & (fits.centres <= 10)).all()
