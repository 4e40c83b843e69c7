# ruff: noqa: RUF002  (Greek letters in the equations are meant)
"""Compare a reconstructed object with the truth after removing the ambiguities ptychography cannot fix.

Reference note §5.1: restrict to the illuminated region ``Σ_j |P(r - r_j)|² > 0.1·max``; remove the global
complex scale ``γ = ⟨O_rec, O_true⟩ / ‖O_rec‖²`` (amplitude and global phase); when the probe was refined,
also remove a linear phase ramp φ(r) fitted to ``arg(O_true / O_rec)`` (a ramp on the object and the opposite
ramp on the probe give the same data). Then

    NRMSE = ‖O_true - γ·e^{iφ}·O_rec‖ / ‖O_true‖      (over the illuminated mask).

The ramp is found without unwrapping: its slope is first the phase of the neighbour products
``Σ r(y+1, x)·r*(y, x)`` (and along x) of ``r = O_true·O_rec*``, which is immune to 2π wraps for slopes under
π/px; then a weighted least-squares plane (weights |r|) fitted to the small residual phase refines it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.apps.ptycho.forward import scatter_add, view_index
from beamlink.errors import InvalidInput

__all__ = ["align_object", "global_scale", "illumination_mask", "object_nrmse", "phase_ramp"]


def illumination_mask(
    probe: NDArray[np.complex128],
    positions: NDArray[np.int64],
    object_shape: tuple[int, int],
    *,
    fraction: float = 0.1,
) -> NDArray[np.bool_]:
    """Object pixels where the summed probe power Σ_j |P|² exceeds ``fraction`` of its maximum."""
    window = (probe.shape[0], probe.shape[1])
    index = view_index(np.asarray(positions, dtype=np.int64), window, object_shape)
    power = scatter_add(np.broadcast_to(np.abs(probe) ** 2, index.shape), index, object_shape).real
    mask: NDArray[np.bool_] = power > fraction * power.max()
    return mask


def global_scale(
    reference: NDArray[np.complex128], estimate: NDArray[np.complex128], mask: NDArray[np.bool_]
) -> complex:
    """γ = ⟨O_rec, O_true⟩ / ‖O_rec‖² on the mask: the complex factor best mapping estimate onto reference."""
    rec, true = estimate[mask], reference[mask]
    return complex(np.vdot(rec, true) / np.vdot(rec, rec).real)


def phase_ramp(
    reference: NDArray[np.complex128], estimate: NDArray[np.complex128], mask: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """The plane φ(y, x) = a + b·y + c·x best matching arg(O_true / O_rec) on the mask (module docstring)."""
    ratio = np.where(mask, reference * np.conj(estimate), 0.0)
    grid = np.indices(mask.shape, dtype=np.float64)
    y: NDArray[np.float64] = grid[0]
    x: NDArray[np.float64] = grid[1]
    slope_y = np.angle(np.sum(ratio[1:, :] * np.conj(ratio[:-1, :])))
    slope_x = np.angle(np.sum(ratio[:, 1:] * np.conj(ratio[:, :-1])))
    plane = slope_y * y + slope_x * x
    residual = np.angle(ratio * np.exp(-1j * plane))
    weight = np.sqrt(np.abs(ratio[mask]))
    design = np.stack([np.ones(int(mask.sum())), y[mask], x[mask]], axis=1)
    correction, *_ = np.linalg.lstsq(design * weight[:, None], residual[mask] * weight, rcond=None)
    ramp: NDArray[np.float64] = plane + correction[0] + correction[1] * y + correction[2] * x
    return ramp


def align_object(
    reference: NDArray[Any],
    estimate: NDArray[Any],
    mask: NDArray[np.bool_] | None = None,
    *,
    remove_ramp: bool = False,
) -> NDArray[np.complex128]:
    """γ·e^{iφ}·O_rec: the estimate with the ramp (optionally) and the global complex scale taken out."""
    true, rec, region = _check(reference, estimate, mask)
    if remove_ramp:
        rec = rec * np.exp(1j * phase_ramp(true, rec, region))
    aligned: NDArray[np.complex128] = global_scale(true, rec, region) * rec
    return aligned


def object_nrmse(
    reference: NDArray[Any],
    estimate: NDArray[Any],
    mask: NDArray[np.bool_] | None = None,
    *,
    remove_ramp: bool = False,
) -> float:
    """NRMSE = ‖O_true - γ·e^{iφ}·O_rec‖ / ‖O_true‖ over the mask (whole object when ``mask`` is None)."""
    true, rec, region = _check(reference, estimate, mask)
    aligned = align_object(true, rec, region, remove_ramp=remove_ramp)
    return float(np.linalg.norm((true - aligned)[region]) / np.linalg.norm(true[region]))


def _check(
    reference: object, estimate: object, mask: object | None
) -> tuple[NDArray[np.complex128], NDArray[np.complex128], NDArray[np.bool_]]:
    true = np.asarray(reference)
    rec = np.asarray(estimate)
    if true.ndim != 2 or true.shape != rec.shape or true.size == 0:
        raise InvalidInput(
            f"reference and estimate must be 2-D arrays of one shape, got {true.shape} and {rec.shape}; "
            "compare objects reconstructed on the truth's grid.",
            details={"field": "estimate"},
        )
    if true.dtype.kind not in "uifc" or rec.dtype.kind not in "uifc":
        raise InvalidInput(
            "reference and estimate must be numeric (complex) arrays.", details={"field": "estimate"}
        )
    region = np.ones(true.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if region.shape != true.shape or not region.any():
        raise InvalidInput(
            f"mask must be a boolean {true.shape} array with at least one True pixel; "
            "build it with illumination_mask().",
            details={"field": "mask"},
        )
    true_c, rec_c = true.astype(np.complex128), rec.astype(np.complex128)
    if not (np.isfinite(true_c[region]).all() and np.isfinite(rec_c[region]).all()) or not np.any(
        rec_c[region]
    ):
        raise InvalidInput(
            "estimate must be finite and not zero on the mask (did the reconstruction diverge?).",
            details={"field": "estimate"},
        )
    return true_c, rec_c, region
