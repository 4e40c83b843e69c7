"""Input checks for the HEDM kernels: every bad value becomes one :class:`~beamlink.errors.InvalidInput`.

Each message says what is wrong and how to fix it; ``details["field"]`` names the argument.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.errors import InvalidInput

__all__ = ["frame_stack", "integer", "pixel_map", "real_number", "threshold_map"]

# Bool is left out on purpose: a boolean stack passed as frames is almost always a mask in the wrong place.
_REAL_KINDS = frozenset("uif")


def frame_stack(value: object, *, field: str = "frames") -> NDArray[np.float64]:
    """Return ``value`` as a finite float64 stack shaped ``(n_frames, y, z)`` with no empty axis."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidInput(
            f"{field} could not be read as an array ({exc}); pass a NumPy array shaped (n_frames, y, z).",
            details={"field": field},
        ) from exc
    if array.dtype.kind not in _REAL_KINDS:
        raise InvalidInput(
            f"{field} has dtype {array.dtype}; detector frames must be real numbers. "
            "Pass integer counts (uint16/uint32) or floats.",
            details={"field": field, "dtype": str(array.dtype)},
        )
    if array.ndim != 3:
        raise InvalidInput(
            f"{field} must have 3 axes (n_frames, y, z), got shape {array.shape}. "
            "A single frame is passed as frames[None] with shape (1, y, z).",
            details={"field": field, "shape": list(array.shape)},
        )
    if array.size == 0:
        raise InvalidInput(
            f"{field} is empty (shape {array.shape}); pass at least one frame of at least one pixel.",
            details={"field": field, "shape": list(array.shape)},
        )
    stack = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(stack)
    if bad.any():
        where = [int(i) for i in np.argwhere(bad)[0]]
        raise InvalidInput(
            f"{field} holds {int(bad.sum())} NaN or infinite pixel(s), "
            f"the first at (frame, y, z) = {tuple(where)}. "
            "Replace dead pixels with 0 (or mask them with a threshold map of 0 there) before the search.",
            details={"field": field, "first_bad_pixel": where},
        )
    return stack


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
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{field} could not be read as a number or an array ({exc}); pass a float or a {shape} array.",
            details={"field": field},
        ) from exc
    if array.dtype.kind not in _REAL_KINDS:
        raise InvalidInput(
            f"{field} has dtype {array.dtype}; pass a real number or a real {shape} array.",
            details={"field": field, "dtype": str(array.dtype)},
        )
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


def integer(
    value: object, *, field: str, minimum: int | None = None, maximum: int | None = None, hint: str = ""
) -> int:
    """Return ``value`` as an int within ``[minimum, maximum]`` (bools and floats are refused).

    ``hint`` is appended to the range messages to say how to choose a valid value.
    """
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInput(f"{field} must be an integer, not a bool.", details={"field": field})
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError as exc:
        raise InvalidInput(
            f"{field} must be an integer, got {value!r} ({type(value).__name__}); pass a whole number.",
            details={"field": field},
        ) from exc
    if minimum is not None and number < minimum:
        raise InvalidInput(
            f"{field} must be ≥ {minimum}, got {number}. {hint}".rstrip(),
            details={"field": field, "minimum": minimum},
        )
    if maximum is not None and number > maximum:
        raise InvalidInput(
            f"{field} must be ≤ {maximum}, got {number}. {hint}".rstrip(),
            details={"field": field, "maximum": maximum},
        )
    return number


def real_number(value: Any, *, field: str, positive: bool = False, nonzero: bool = False) -> float:
    """Return ``value`` as a finite float; ``positive`` asks for > 0 and ``nonzero`` for ≠ 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInput(
            f"{field} must be a real number, got {value!r} ({type(value).__name__}).",
            details={"field": field},
        )
    number = float(value)
    if not np.isfinite(number):
        raise InvalidInput(f"{field} must be finite, got {number}.", details={"field": field})
    if positive and number <= 0:
        raise InvalidInput(f"{field} must be > 0, got {number}.", details={"field": field})
    if nonzero and number == 0:
        raise InvalidInput(
            f"{field} must not be 0 (it is a step; use a negative value for a reversed scan).",
            details={"field": field},
        )
    return number
