"""Detector geometry → q map, and the dynamic/static q partition."""

from __future__ import annotations

import numpy as np
import pytest

from beamlink.apps.xpcs.qmap import DetectorGeometry, QPartition, partition_q
from beamlink.errors import InvalidInput


def _geometry(**overrides: object) -> DetectorGeometry:
    values: dict[str, object] = {
        "shape": (64, 64),
        "pixel_size_m": 75e-6,
        "distance_m": 5.0,
        "wavelength_m": 1e-10,
        "beam_center_yx_px": (32.0, 32.0),
    }
    values.update(overrides)
    return DetectorGeometry(**values)  # type: ignore[arg-type]


def test_q_map_matches_the_scattering_formula() -> None:
    geometry = _geometry()
    q = geometry.q_map()
    assert q.shape == (64, 64)
    assert q[32, 32] == 0.0
    # Pixel 10 px right of the beam: 2θ = atan(10·75 µm / 5 m), q = 4π/λ sin θ, in nm⁻¹.
    two_theta = np.arctan(10 * 75e-6 / 5.0)
    expected = 4 * np.pi / 1e-10 * np.sin(two_theta / 2) * 1e-9
    assert q[32, 42] == pytest.approx(expected, rel=1e-12)
    assert geometry.q_at_radius(10.0) == pytest.approx(expected, rel=1e-12)
    # Small angles: q ≈ 2π·r·pixel/(λ·L).
    assert expected == pytest.approx(2 * np.pi * 10 * 75e-6 / (1e-10 * 5.0) * 1e-9, rel=1e-6)
    assert geometry.energy_kev == pytest.approx(12.398, rel=1e-4)


@pytest.mark.parametrize(
    ("field", "value"),
    [("pixel_size_m", 0.0), ("distance_m", -1.0), ("wavelength_m", float("nan")), ("shape", (64,))],
)
def test_bad_geometry_is_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        _geometry(**{field: value})
    assert info.value.details["field"] == field


def test_partition_nests_static_bins_inside_dynamic_bins() -> None:
    q = _geometry().q_map()
    part = partition_q(q, n_dynamic=6, n_static_per_dynamic=3, q_min=0.005, q_max=0.02)
    assert part.n_dynamic == 6
    assert part.n_static == 18
    inside = (q >= 0.005) & (q <= 0.02)
    np.testing.assert_array_equal(part.mask, inside)
    np.testing.assert_array_equal(part.dqmap[inside], (part.sqmap[inside] - 1) // 3 + 1)
    np.testing.assert_array_equal(part.static_to_dynamic(), np.repeat(np.arange(1, 7), 3))
    # Bin means grow with q and lie inside the bin edges.
    edges = np.linspace(0.005, 0.02, 7)
    q_mean = part.dynamic_q()
    assert np.all(np.diff(q_mean) > 0)
    assert np.all((q_mean > edges[:-1]) & (q_mean < edges[1:]))
    assert np.all(part.dynamic_q2() >= q_mean**2)  # ⟨q²⟩ ≥ ⟨q⟩²
    assert part.dynamic_pixel_counts().sum() == inside.sum()


def test_partition_respects_the_mask() -> None:
    q = _geometry().q_map()
    mask = np.ones(q.shape, dtype=bool)
    mask[:, :10] = False
    part = partition_q(q, n_dynamic=4, mask=mask)
    assert not part.mask[:, :10].any()


def test_static_bins_across_dynamic_bins_are_refused() -> None:
    q = np.arange(16, dtype=np.float64).reshape(4, 4)
    dqmap = np.repeat([1, 2], 8).reshape(4, 4).astype(np.int32)
    sqmap = np.ones((4, 4), dtype=np.int32)  # one static bin spanning both dynamic bins
    with pytest.raises(InvalidInput, match="nest"):
        QPartition(q=q, dqmap=dqmap, sqmap=sqmap)


def test_partition_maps_must_share_a_shape_and_labels() -> None:
    q = np.ones((4, 4))
    labels = np.ones((4, 4), dtype=np.int32)
    with pytest.raises(InvalidInput) as info:
        QPartition(q=q, dqmap=labels[:3], sqmap=labels)
    assert info.value.details["field"] == "dqmap"
    with pytest.raises(InvalidInput, match="integer labels"):
        QPartition(q=q, dqmap=labels.astype(float), sqmap=labels)
    only_dynamic = labels.copy()
    only_dynamic[0, 0] = 0
    with pytest.raises(InvalidInput, match="label different pixels"):
        QPartition(q=q, dqmap=labels, sqmap=only_dynamic)


def test_partition_refuses_an_empty_range_and_a_non_boolean_mask() -> None:
    q = _geometry().q_map()
    with pytest.raises(InvalidInput, match="q_min < q_max"):
        partition_q(q, n_dynamic=4, q_min=0.02, q_max=0.01)
    with pytest.raises(InvalidInput, match="boolean"):
        partition_q(q, n_dynamic=4, mask=np.ones(q.shape, dtype=np.uint8))
    with pytest.raises(InvalidInput, match="no pixel"):
        partition_q(q, n_dynamic=4, mask=np.zeros(q.shape, dtype=bool))
    with pytest.raises(InvalidInput) as info:
        partition_q(q, n_dynamic=0)
    assert info.value.details["field"] == "n_dynamic"
