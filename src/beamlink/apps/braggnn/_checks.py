"""Input checks for the BraggNN kernels: every bad value becomes one :class:`~beamlink.errors.InvalidInput`.

Each message says what is wrong and how to fix it; ``details["field"]`` names the argument. The array
checks reuse :func:`beamlink.apps._arrays.real_array`, so dtype, empty and NaN messages read the same as in
the other science kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.apps import _arrays
from beamlink.apps._arrays import real_array
from beamlink.errors import InvalidInput

__all__ = ["centre_array", "integer", "patch_stack", "positive_number"]

_PATCH_AXES = "(n_patches, {size}, {size})"


def patch_stack(value: object, *, patch_size: int, field: str = "patches") -> NDArray[np.float64]:
    """Return ``value`` as a finite float64 stack shaped ``(n_patches, patch_size, patch_size)``."""
    axes = _PATCH_AXES.format(size=patch_size)
    array = real_array(value, field=field, ndim=3, axes=axes)
    if array.shape[1:] != (patch_size, patch_size):
        raise InvalidInput(
            f"{field} must be {patch_size}x{patch_size} patches {axes}, got shape {array.shape}. "
            f"Crop {patch_size}x{patch_size} pixels around each peak's brightest pixel "
            "(beamlink.apps.braggnn.patches.extract_patches does this for a frame).",
            details={"field": field, "shape": list(array.shape), "expected": [patch_size, patch_size]},
        )
    return array.astype(np.float64, copy=False)


def centre_array(value: object, *, n_patches: int, field: str = "centres") -> NDArray[np.float64]:
    """Return ``value`` as finite float64 ``(n_patches, 2)`` centres in (x, y) patch pixels."""
    array = real_array(value, field=field, ndim=2, axes="(n_patches, 2) as (x, y)")
    if array.shape != (n_patches, 2):
        raise InvalidInput(
            f"{field} has shape {array.shape} but there are {n_patches} patches; pass one (x, y) centre per "
            "patch, shaped (n_patches, 2), x (the column) first.",
            details={"field": field, "shape": list(array.shape), "expected": [n_patches, 2]},
        )
    return array.astype(np.float64, copy=False)


def integer(value: object, *, field: str, minimum: int = 1, hint: str = "") -> int:
    """Return ``value`` as an int ≥ ``minimum`` (bools and floats are refused)."""
    return _arrays.integer(value, field=field, minimum=minimum, hint=hint)


def positive_number(value: Any, *, field: str, hint: str = "") -> float:
    """Return ``value`` as a finite float > 0."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidInput(
            f"{field} must be a real number, got {value!r} ({type(value).__name__}).",
            details={"field": field},
        )
    number = float(value)
    if not np.isfinite(number) or number <= 0:
        raise InvalidInput(
            f"{field} must be a finite number > 0, got {number}. {hint}".rstrip(), details={"field": field}
        )
    return number
