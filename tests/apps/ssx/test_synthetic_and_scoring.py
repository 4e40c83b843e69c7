"""The synthetic still generator and the spot matcher."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from beamlink.apps.ssx.scoring import match_spots
from beamlink.apps.ssx.synthetic import StillConfig, make_still, make_stills
from beamlink.errors import InvalidInput


def test_stills_are_seeded_and_follow_the_config() -> None:
    config = StillConfig(shape=(256, 256), panel_gap_px=10)
    a, truths, mask = make_stills([0, 30], config=config, seed=1)
    b, _, _ = make_stills([0, 30], config=config, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 256, 256)
    assert a.dtype == np.int32
    assert (~mask).sum() == 10 * 256
    assert (a[:, ~mask] == 0).all()
    assert truths[0].n_spots == 0
    assert truths[1].n_spots == 30
    centres = truths[1].centers_yx
    assert pdist(centres).min() >= 12
    assert (centres >= 8).all()
    assert (centres <= 248).all()
    assert ((truths[1].photons >= 200) & (truths[1].photons <= 2000)).all()
    # Blank frame: background of 2 counts with the 1.5-fold solvent ring.
    assert 2.0 < a[0][mask].mean() < 2.6


def test_spot_photons_are_all_on_the_image() -> None:
    config = StillConfig(shape=(128, 128), background=1e-9, photons=(1e5, 1e5))
    image, truth = make_still(3, config=config, rng=np.random.default_rng(2))
    assert image.sum() == pytest.approx(3e5, rel=0.01)
    assert truth.n_spots == 3


def test_impossible_requests_are_refused() -> None:
    with pytest.raises(InvalidInput, match="could not place"):
        make_still(500, config=StillConfig(shape=(64, 64)), rng=np.random.default_rng(0))
    with pytest.raises(InvalidInput) as info:
        StillConfig(photons=(300.0, 100.0))
    assert info.value.details["field"] == "photons"
    with pytest.raises(InvalidInput, match="spot_counts"):
        make_stills([])


def test_matching_is_one_to_one_within_the_distance() -> None:
    truth = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]])
    found = np.array([[10.3, 10.0], [10.5, 10.2], [29.0, 33.0], [50.0, 50.0]])
    match = match_spots(found, truth, max_distance=2.0)
    assert match.n_matched == 1
    assert match.recall == pytest.approx(1 / 3)
    assert match.precision == pytest.approx(1 / 4)
    assert match.errors_px.tolist() == pytest.approx([0.3])
    empty = match_spots(np.empty((0, 2)), truth)
    assert empty.recall == 0.0
    assert empty.precision == 1.0
    with pytest.raises(InvalidInput, match=r"\(n, 2\)"):
        match_spots(np.ones((3, 3)), truth)
