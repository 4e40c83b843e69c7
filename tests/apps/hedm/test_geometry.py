"""The far-field forward model: ring radii, Bragg condition, Friedel pairs, ring threshold map."""

from __future__ import annotations

import numpy as np

from beamlink.apps.hedm.geometry import (
    MIDAS_AU_EXAMPLE,
    cubic_reflections,
    diffraction_spots,
    random_orientations,
    ring_radii_px,
    ring_threshold_map,
)
from beamlink.apps.hedm.synthetic import SMALL_GEOMETRY


def test_first_five_fcc_rings_of_the_midas_gold_example() -> None:
    reflections = cubic_reflections(4.08, 5)
    assert len(reflections.hkl) == 58
    assert np.bincount(reflections.ring).tolist() == [8, 6, 12, 24, 8]
    radii = ring_radii_px(reflections.d_spacing, MIDAS_AU_EXAMPLE)
    np.testing.assert_allclose(radii, [475, 549, 780, 917, 959], atol=0.5)


def test_spots_satisfy_bragg_and_land_on_their_ring() -> None:
    reflections = cubic_reflections(4.08, 5)
    spots = diffraction_spots(
        random_orientations(4, np.random.default_rng(1)), reflections, 4.08, MIDAS_AU_EXAMPLE
    )
    assert len(spots.omega) > 300
    bragg = 2 * np.arcsin(MIDAS_AU_EXAMPLE.wavelength_a / (2 * reflections.d_spacing))
    np.testing.assert_allclose(spots.two_theta, bragg[spots.ring], atol=1e-12)
    radius = np.hypot(spots.y - 1024.0, spots.z - 1024.0)
    np.testing.assert_allclose(
        radius, ring_radii_px(reflections.d_spacing, MIDAS_AU_EXAMPLE)[spots.ring], atol=1e-9
    )


def test_friedel_pairs_appear_180_degrees_later_with_mirrored_z() -> None:
    reflections = cubic_reflections(4.08, 5)
    orientations = random_orientations(2, np.random.default_rng(2))
    spots = diffraction_spots(orientations, reflections, 4.08, SMALL_GEOMETRY)
    index = {
        (int(g), tuple(int(v) for v in h), int(b)): i
        for i, (g, h, b) in enumerate(zip(spots.grain, spots.hkl, spots.branch, strict=True))
    }
    partner = np.array([index[(g, tuple(-v for v in h), b)] for (g, h, b) in index])
    mine = np.array(list(index.values()))
    # -h on the same branch: ω + 180°, same y, z mirrored about the beam centre (reference note §3.4).
    np.testing.assert_allclose((spots.omega[partner] - spots.omega[mine]) % 360.0, 180.0, atol=1e-9)
    np.testing.assert_allclose(spots.y[partner], spots.y[mine], atol=1e-9)
    np.testing.assert_allclose(spots.z[partner] - 103.5, -(spots.z[mine] - 103.5), atol=1e-9)


def test_ring_threshold_map_marks_bands_and_ignores_the_rest() -> None:
    radii = np.array([20.0, 40.0])
    threshold = ring_threshold_map(SMALL_GEOMETRY, radii, width_px=4.0, thresholds=np.array([10.0, 30.0]))
    y, z = np.indices(SMALL_GEOMETRY.shape)
    radius = np.hypot(y - 103.5, z - 103.5)
    assert np.all(threshold[np.abs(radius - 20) <= 2] == 10.0)
    assert np.all(threshold[np.abs(radius - 40) <= 2] == 30.0)
    assert np.all(threshold[(np.abs(radius - 20) > 2) & (np.abs(radius - 40) > 2)] == 0.0)
