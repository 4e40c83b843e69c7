"""ePIE, rPIE and DM meet the reference note's tolerances (§5.4) on a half-size version of its scan.

Measured on the n = 64, m = 32, 81-view scan (seeds 0-3): ePIE 0.006-0.008, rPIE 0.002-0.005, DM 0.014-0.026,
rPIE at 1e5 photons 0.030-0.038, blind DM 0.005-0.010; on the n = 96, 289-view scan blind rPIE reaches 6e-4.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from beamlink.apps.ptycho.compare import illumination_mask, object_nrmse
from beamlink.apps.ptycho.reconstruct import Reconstruction, dm, epie, rpie
from beamlink.apps.ptycho.synthetic import blurred_probe, make_scan


@pytest.mark.parametrize(
    ("engine", "n_iter", "tolerance"),
    [(epie, 30, 0.06), (rpie, 30, 0.02), (dm, 60, 0.1)],
    ids=["ePIE", "rPIE", "DM"],
)
def test_known_probe_reconstruction(
    engine: Callable[..., Reconstruction], n_iter: int, tolerance: float
) -> None:
    data, truth = make_scan(n=64, seed=0)
    result = engine(
        data.intensities, data.positions, truth.probe, object_shape=data.object_shape, n_iter=n_iter
    )
    mask = illumination_mask(truth.probe, data.positions, data.object_shape)
    assert object_nrmse(truth.object, result.object, mask) <= tolerance
    assert result.errors.shape == (n_iter,)
    assert result.errors[-1] < 2e-3 * result.errors[0]
    np.testing.assert_array_equal(result.probe, truth.probe)


def test_rpie_with_poisson_noise_at_1e5_photons() -> None:
    data, truth = make_scan(n=64, photons=1e5, seed=1)
    result = rpie(data.intensities, data.positions, truth.probe, object_shape=data.object_shape, n_iter=30)
    mask = illumination_mask(truth.probe, data.positions, data.object_shape)
    assert object_nrmse(truth.object, result.object, mask) <= 0.08


def test_the_true_object_is_a_fixed_point() -> None:
    data, truth = make_scan(n=64, seed=2)
    for engine in (epie, rpie, dm):
        result = engine(
            data.intensities,
            data.positions,
            truth.probe,
            object_shape=data.object_shape,
            n_iter=2,
            object_guess=truth.object,
        )
        assert result.errors.max() < 1e-20
        mask = illumination_mask(truth.probe, data.positions, data.object_shape)
        assert object_nrmse(truth.object, result.object, mask) < 1e-9


def test_seed_fixes_the_pie_order() -> None:
    data, truth = make_scan(n=64, seed=0)
    run = [
        rpie(data.intensities, data.positions, truth.probe, object_shape=data.object_shape, n_iter=2, seed=5)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(run[0].object, run[1].object)


def test_blind_dm_refines_the_probe() -> None:
    data, truth = make_scan(n=64, seed=0)
    start = blurred_probe(truth.probe)
    result = dm(
        data.intensities, data.positions, start, object_shape=data.object_shape, n_iter=100, update_probe=True
    )
    mask = illumination_mask(truth.probe, data.positions, data.object_shape)
    # Not in the reference note; measured 0.005-0.010 over seeds 0-3.
    assert object_nrmse(truth.object, result.object, mask, remove_ramp=True) <= 0.02
    assert result.errors[-1] < 2e-3 * result.errors[0]


@pytest.mark.slow
def test_blind_rpie_reaches_the_reference_tolerance() -> None:
    data, truth = make_scan(seed=0)  # n = 96, 289 views: fewer views leave blind rPIE short of 0.01
    result = rpie(
        data.intensities,
        data.positions,
        blurred_probe(truth.probe),
        object_shape=data.object_shape,
        n_iter=100,
        update_probe=True,
    )
    mask = illumination_mask(truth.probe, data.positions, data.object_shape)
    scale_only = object_nrmse(truth.object, result.object, mask)
    with_ramp = object_nrmse(truth.object, result.object, mask, remove_ramp=True)
    assert with_ramp <= 0.01
    assert with_ramp < scale_only
