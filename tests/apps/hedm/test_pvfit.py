"""Pseudo-Voigt refinement: exact on a noiseless model, as good as the centroid on synthetic peaks."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.hedm.evaluate import match_peaks
from beamlink.apps.hedm.peaksearch import search_stack
from beamlink.apps.hedm.pvfit import fit_pseudo_voigt_2d, pseudo_voigt_2d, refine_peaks
from beamlink.apps.hedm.synthetic import make_blob_stack


def test_fit_recovers_a_noiseless_pseudo_voigt() -> None:
    y, z = np.indices((11, 13), dtype=np.float64)
    params = np.array([5.3, 6.7, 800.0, 2.5, 3.1, 0.3, 12.0])
    fit = fit_pseudo_voigt_2d(pseudo_voigt_2d(params, y, z))
    got = [fit["y"], fit["z"], fit["amplitude"], fit["fwhm_y"], fit["fwhm_z"], fit["mu"], fit["background"]]
    np.testing.assert_allclose(got, params, rtol=1e-6, atol=1e-6)


def test_refined_centres_meet_the_tolerance() -> None:
    stack, truth = make_blob_stack(seed=2)
    peaks = search_stack(stack, threshold=truth.threshold, dark=truth.dark)
    refined = refine_peaks(stack, peaks, dark=truth.dark)
    assert sum("fit" in p for p in refined) >= 0.95 * len(refined)
    match = match_peaks(refined, truth.peaks)
    assert match.recall >= 0.98
    assert match.mean_error <= 0.1
    assert match.p95_error <= 0.2
    # Gaussian peaks: the fitted Lorentzian fraction stays small.
    assert np.median([p["fit"]["mu"] for p in refined if "fit" in p]) < 0.2
    for before, after in zip(peaks, refined, strict=True):
        assert after["frame"] == before["frame"]
        if "fit" in after:
            assert after["fit"]["y_centroid"] == pytest.approx(before["y"])
