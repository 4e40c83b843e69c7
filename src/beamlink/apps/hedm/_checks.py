"""Input checks for the HEDM kernels: every bad value becomes one :class:`~beamlink.errors.InvalidInput`.

The generic checks (arrays, integers, real numbers) live in :mod:`beamlink.apps._arrays`; these add the HEDM
wording and the per-pixel dark/flood/threshold maps. ``details["field"]`` names the argument.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import as_array, check_kind, real_array
from beamlink.errors import InvalidInput

__all__ = ["frame_stack", "pixel_map", "threshold_map"]


def frame_stack(value: object, *, field: str = "frames") -> NDArray[np.float64]:
    """Return ``value`` as a finite float64 stack shaped ``(n_frames, y, z)`` with no empty axis."""
    array = real_array(
        value,
        field=field,
        ndim=3,
        axes="(n_frames, y, z)",
        expect="integer counts (uint16/uint32) or floats",
        single="a single frame is passed as frames[None] with shape (1, y, z)",
        finite_fix="Replace dead pixels with 0 (or mask them with a threshold map of 0 there) "
        "before the search.",
    )
    return array.astype(np.float64, copy=False)


def pixel_map(
    value: object, shape: tuple[int, int], *, field: str, positive: bool = False
) -> float | NDArray[np.float64]:
    """Return a finite scalar, or a finite float64 ``(y, z)`` map matching the frame ``shape``.

    With ``positive`` every value must be > 0 (a flood field, a scalar threshold).
    """
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInput(
            f"{field} must be a number or a (y, z) array, not a bool.", details={"field": field}
        )
    array = as_array(value, field=field, axes=f"{shape} (or pass a single number)")
    check_kind(array, field=field, expect=f"a real number or a real {shape} array")
    if array.ndim not in (0, 2) or (array.ndim == 2 and array.shape != shape):
        raise InvalidInput(
            f"{field} has shape {array.shape} but the frames are {shape}; "
            f"pass a scalar or one value per pixel with shape {shape}.",
            details={"field": field, "shape": list(array.shape), "expected": list(shape)},
        )
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise InvalidInput(
            f"{field} holds NaN or infinite values; replace them with finite numbers.",
            details={"field": field},
        )
    if positive and (values <= 0).any():
        raise InvalidInput(
            f"{field} must be > 0 everywhere (found {float(values.min())}); "
            "choose a positive value (for a threshold, typically background + 6·√background).",
            details={"field": field},
        )
    return float(values) if values.ndim == 0 else values


def threshold_map(value: object, shape: tuple[int, int]) -> float | NDArray[np.float64]:
    """Return the search threshold: a scalar > 0, or a ``(y, z)`` map ≥ 0 in which 0 means "ignore"."""
    threshold = pixel_map(value, shape, field="threshold")
    if np.any(np.asarray(threshold) < 0) or (isinstance(threshold, float) and threshold == 0):
        raise InvalidInput(
            "threshold must be > 0 (a map may also hold 0 where pixels are to be ignored); "
            "a typical value is background + 6·√background above the dark.",
            details={"field": "threshold"},
        )
    return threshold
