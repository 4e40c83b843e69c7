"""Detector geometry → momentum-transfer map, and its partition into dynamic and static q bins.

Conventions: pixel ``[i, j]`` has its centre at index coordinates ``(i, j)``; the beam centre is given in the
same coordinates. Lengths of the set-up are in metres, q is in nm⁻¹.

Every pixel carries two labels, as in the APS q-partition maps (boost-corr ``XpcsQPartitionMap``):

- ``dqmap`` — the **dynamic** bin (coarse; one g2 curve each), 1..n_dynamic;
- ``sqmap`` — the **static** bin (fine; used only for the symmetric normalisation), 1..n_static,
  nested inside the dynamic bins.

Label 0 means the pixel is masked (left out of the analysis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import positive_float, positive_int, real_array, same_shape
from beamlink.errors import InvalidInput

__all__ = ["DetectorGeometry", "QPartition", "partition_q"]


@dataclass(frozen=True)
class DetectorGeometry:
    """Where an area detector sits and what it sees: enough to give every pixel its |q|.

    Attributes:
        shape: detector frame shape (height, width) in pixels.
        pixel_size_m: pixel pitch (square pixels), metres.
        distance_m: sample-to-detector distance, metres.
        wavelength_m: X-ray wavelength λ, metres (E[keV] = 1.239842e-9 / λ[m]).
        beam_center_yx_px: direct-beam position (row, column) in index coordinates, pixels.
    """

    shape: tuple[int, int]
    pixel_size_m: float
    distance_m: float
    wavelength_m: float
    beam_center_yx_px: tuple[float, float]

    def __post_init__(self) -> None:
        if len(self.shape) != 2:
            raise InvalidInput(
                f"shape must be (height, width), got {self.shape}.", details={"field": "shape"}
            )
        for axis in self.shape:
            positive_int(axis, field="shape")
        positive_float(self.pixel_size_m, field="pixel_size_m")
        positive_float(self.distance_m, field="distance_m")
        positive_float(self.wavelength_m, field="wavelength_m")
        if len(self.beam_center_yx_px) != 2 or not np.all(np.isfinite(self.beam_center_yx_px)):
            raise InvalidInput(
                f"beam_center_yx_px must be two finite numbers (row, column), got {self.beam_center_yx_px}.",
                details={"field": "beam_center_yx_px"},
            )

    @property
    def energy_kev(self) -> float:
        """Photon energy in keV, E = hc/λ."""
        return 1.239841984e-9 / self.wavelength_m

    def q_map(self) -> NDArray[np.float64]:
        """|q| of every pixel in nm⁻¹.

        q = (4π/λ)·sin(θ), with the scattering angle 2θ = arctan(r·pixel_size / distance) and r the
        pixel's distance from the beam centre in pixels (flat detector normal to the beam).
        """
        rows, cols = np.indices(self.shape, dtype=np.float64)
        r_m = np.hypot(rows - self.beam_center_yx_px[0], cols - self.beam_center_yx_px[1]) * self.pixel_size_m
        two_theta = np.arctan2(r_m, self.distance_m)
        q_per_m = 4.0 * np.pi / self.wavelength_m * np.sin(two_theta / 2.0)
        return q_per_m * 1e-9

    def q_at_radius(self, radius_px: float) -> float:
        """|q| in nm⁻¹ at ``radius_px`` pixels from the beam centre (same formula as :meth:`q_map`)."""
        two_theta = np.arctan2(radius_px * self.pixel_size_m, self.distance_m)
        return float(4.0 * np.pi / self.wavelength_m * np.sin(two_theta / 2.0) * 1e-9)


@dataclass(frozen=True)
class QPartition:
    """A q map with its dynamic and static bin labels (all arrays (height, width)).

    Every static bin lies inside exactly one dynamic bin, and a pixel is labelled in both maps or in
    neither; the constructor checks both.
    """

    q: NDArray[np.float64]
    dqmap: NDArray[np.int32]
    sqmap: NDArray[np.int32]

    def __post_init__(self) -> None:
        q = real_array(self.q, field="q", ndim=2, axes="(height, width)")
        dqmap = real_array(self.dqmap, field="dqmap", ndim=2, axes="(height, width)")
        sqmap = real_array(self.sqmap, field="sqmap", ndim=2, axes="(height, width)")
        same_shape(dqmap.shape, q.shape, field="dqmap", against="q")
        same_shape(sqmap.shape, q.shape, field="sqmap", against="q")
        for name, labels in (("dqmap", dqmap), ("sqmap", sqmap)):
            if labels.dtype.kind == "f" or labels.min() < 0:
                raise InvalidInput(
                    f"{name} must hold integer labels >= 0 (0 = masked), got dtype {labels.dtype} "
                    f"with minimum {labels.min()}; build it with partition_q().",
                    details={"field": name},
                )
        if not np.array_equal(dqmap > 0, sqmap > 0):
            raise InvalidInput(
                "dqmap and sqmap label different pixels; a pixel must be in a dynamic and a static bin or in "
                "neither. Set both labels to 0 for masked pixels.",
                details={"field": "sqmap"},
            )
        labelled = sqmap > 0
        pairs = np.unique(np.stack([sqmap[labelled], dqmap[labelled]]), axis=1)
        if pairs.shape[1] != np.unique(pairs[0]).size:
            raise InvalidInput(
                "some static bins span more than one dynamic bin; static bins must nest inside dynamic bins "
                "(split each dynamic bin into whole static bins).",
                details={"field": "sqmap"},
            )
        object.__setattr__(self, "q", np.asarray(q, dtype=np.float64))
        object.__setattr__(self, "dqmap", np.asarray(dqmap, dtype=np.int32))
        object.__setattr__(self, "sqmap", np.asarray(sqmap, dtype=np.int32))

    @property
    def shape(self) -> tuple[int, int]:
        """Detector frame shape (height, width)."""
        return (int(self.q.shape[0]), int(self.q.shape[1]))

    @property
    def n_dynamic(self) -> int:
        """Number of dynamic bins (the largest dynamic label)."""
        return int(self.dqmap.max())

    @property
    def n_static(self) -> int:
        """Number of static bins (the largest static label)."""
        return int(self.sqmap.max())

    @property
    def mask(self) -> NDArray[np.bool_]:
        """Pixels in the analysis (labelled in both maps)."""
        return self.dqmap > 0

    def dynamic_pixel_counts(self) -> NDArray[np.int64]:
        """Number of pixels in each dynamic bin, (n_dynamic,)."""
        return np.bincount(self.dqmap.ravel(), minlength=self.n_dynamic + 1)[1:].astype(np.int64)

    def static_to_dynamic(self) -> NDArray[np.int32]:
        """Dynamic label of each static bin, (n_static,); 0 for a static label no pixel carries."""
        out = np.zeros(self.n_static, dtype=np.int32)
        labelled = self.sqmap > 0
        out[self.sqmap[labelled] - 1] = self.dqmap[labelled]
        return out

    def dynamic_mean(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Mean of a per-pixel map over each dynamic bin, weighted as g2 is: the plain mean over the bin's
        static bins of each static bin's pixel mean. (n_dynamic,); NaN for empty bins."""
        static_labels = self.sqmap.ravel()
        n_static = np.bincount(static_labels, minlength=self.n_static + 1)[1:]
        sums = np.bincount(static_labels, weights=np.ravel(values), minlength=self.n_static + 1)[1:]
        owner = self.static_to_dynamic()
        used = n_static > 0
        static_mean = sums[used] / n_static[used]
        total = np.bincount(owner[used], weights=static_mean, minlength=self.n_dynamic + 1)[1:]
        count = np.bincount(owner[used], minlength=self.n_dynamic + 1)[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    def dynamic_q(self) -> NDArray[np.float64]:
        """⟨q⟩ of each dynamic bin (weighted as :meth:`dynamic_mean`), nm⁻¹."""
        return self.dynamic_mean(self.q)

    def dynamic_q2(self) -> NDArray[np.float64]:
        """⟨q²⟩ of each dynamic bin (weighted as :meth:`dynamic_mean`), nm⁻².

        This is the q² to pair with a fitted Γ: the initial decay rate of g2_d is the same average of
        Γ_p = D·q_p², so Γ = D·⟨q²⟩ holds bin by bin.
        """
        return self.dynamic_mean(self.q**2)


def partition_q(
    q: NDArray[np.float64],
    *,
    n_dynamic: int,
    n_static_per_dynamic: int = 1,
    q_min: float | None = None,
    q_max: float | None = None,
    mask: NDArray[np.bool_] | None = None,
) -> QPartition:
    """Split [q_min, q_max] into ``n_dynamic`` equal-width dynamic bins, each cut into
    ``n_static_per_dynamic`` equal-width static bins.

    Static bin edges are linspace(q_min, q_max, n_dynamic·n_static_per_dynamic + 1); static label s
    belongs to dynamic label ⌈s / n_static_per_dynamic⌉. Pixels outside [q_min, q_max] or with
    ``mask`` False get label 0. q_min and q_max default to the range of unmasked q.
    """
    q_arr = np.asarray(real_array(q, field="q", ndim=2, axes="(height, width)"), dtype=np.float64)
    n_dyn = positive_int(n_dynamic, field="n_dynamic")
    n_sta = positive_int(n_static_per_dynamic, field="n_static_per_dynamic")
    keep = np.ones(q_arr.shape, dtype=bool)
    if mask is not None:
        mask_arr = np.asarray(mask)
        same_shape(mask_arr.shape, q_arr.shape, field="mask", against="q")
        if mask_arr.dtype != np.bool_:
            raise InvalidInput(
                f"mask must be boolean (True = use the pixel), got dtype {mask_arr.dtype}; "
                f"pass mask.astype(bool).",
                details={"field": "mask"},
            )
        keep &= mask_arr
    if not keep.any():
        raise InvalidInput("mask leaves no pixel; mark the usable pixels True.", details={"field": "mask"})
    lo = float(q_arr[keep].min()) if q_min is None else float(q_min)
    hi = float(q_arr[keep].max()) if q_max is None else float(q_max)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo >= 0):
        raise InvalidInput(
            f"need 0 <= q_min < q_max, got q_min={lo}, q_max={hi}; pick a range inside the q map.",
            details={"field": "q_min"},
        )
    edges = np.linspace(lo, hi, n_dyn * n_sta + 1)
    # side="right" puts q == edge into the bin above; clip so that q == q_max stays in the last bin.
    static = np.clip(np.searchsorted(edges, q_arr, side="right"), 1, n_dyn * n_sta)
    keep &= (q_arr >= lo) & (q_arr <= hi)
    sqmap = np.where(keep, static, 0).astype(np.int32)
    dqmap = np.where(keep, (sqmap - 1) // n_sta + 1, 0).astype(np.int32)
    return QPartition(q=q_arr, dqmap=dqmap, sqmap=sqmap)
