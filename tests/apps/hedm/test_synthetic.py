"""The generators: seeded, detector-like, and their truth matches what was drawn."""

from __future__ import annotations

import numpy as np

from beamlink.apps.hedm.synthetic import make_blob_stack, make_grain_stack, render_peaks


def test_same_seed_same_stack_other_seed_other_stack() -> None:
    a, truth_a = make_blob_stack(seed=11)
    b, truth_b = make_blob_stack(seed=11)
    c, _ = make_blob_stack(seed=12)
    assert a.dtype == np.uint16
    assert a.shape == (48, 128, 128)
    np.testing.assert_array_equal(a, b)
    assert truth_a == truth_b
    assert not np.array_equal(a, c)


def test_rendered_total_is_the_analytic_integral() -> None:
    centre = np.array([[10.3, 20.6, 15.1]])
    sigma = np.array([[0.4, 1.2, 2.0]])
    expected = render_peaks((24, 40, 40), centre, sigma, np.array([1000.0]))
    # The 5-sigma box leaves < 2e-6 of the mass outside.
    np.testing.assert_allclose(expected.sum(), 1000.0 * (2 * np.pi) ** 1.5 * 0.4 * 1.2 * 2.0, rtol=1e-5)
    f, y, z = np.indices(expected.shape)
    centroid = [float((expected * axis).sum() / expected.sum()) for axis in (f, y, z)]
    np.testing.assert_allclose(centroid, centre[0], atol=0.02)


def test_blob_stack_background_and_dark() -> None:
    stack, truth = make_blob_stack(seed=0, n_peaks=0)
    assert truth.peaks == []
    assert abs(stack.mean() - (truth.dark + truth.background)) < 0.05
    assert truth.threshold == truth.background + 6 * np.sqrt(truth.background)


def test_grain_stack_truth_carries_grain_hkl_and_ring() -> None:
    stack, truth = make_grain_stack(n_grains=1, n_frames=40, seed=3)
    assert stack.shape == (40, 208, 208)
    assert truth.peaks
    assert len(truth.ring_radii_px) == 5
    for peak in truth.peaks:
        assert peak["grain"] == 0
        assert len(peak["hkl"]) == 3
        radius = np.hypot(peak["y"] - 103.5, peak["z"] - 103.5)
        assert abs(radius - truth.ring_radii_px[peak["ring"]]) < 1e-9
        assert 1.5 <= peak["frame"] <= 40 - 1 - 1.5
