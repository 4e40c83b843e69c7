"""Input checks for the ptycho kernels: each bad value becomes one :class:`~beamlink.errors.InvalidInput`.

Each message says what is wrong and how to fix it; ``details["field"]`` names the argument.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.errors import InvalidInput

__all__ = ["Scan", "check_scan", "integer", "unit_interval"]


@dataclass(frozen=True)
class Scan:
    """A checked scan: intensities (J, m0, m1), top-left corners (J, 2), complex probe, object shape."""

    intensities: NDArray[np.float64]
    positions: NDArray[np.int64]
    probe: NDArray[np.complex128]
    object_shape: tuple[int, int]


def _array(value: object, field: str, layout: str) -> NDArray[Any]:
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidInput(
            f"{field} could not be read as an array ({exc}); pass a NumPy array shaped {layout}.",
            details={"field": field},
        ) from exc


def check_scan(intensities: object, positions: object, probe: object, object_shape: object) -> Scan:
    """Check that intensities, positions, probe and object shape describe one consistent scan."""
    data = _array(intensities, "intensities", "(n_positions, m0, m1)")
    if data.dtype.kind not in "uif":
        hint = " (pass |Ψ|², not the complex field)" if data.dtype.kind == "c" else ""
        raise InvalidInput(
            f"intensities have dtype {data.dtype}; diffraction intensities must be real counts{hint}. "
            "Pass integer or float intensities.",
            details={"field": "intensities", "dtype": str(data.dtype)},
        )
    if data.ndim != 3:
        raise InvalidInput(
            f"intensities must have 3 axes (n_positions, m0, m1), got shape {data.shape}; "
            "one pattern is passed as pattern[None].",
            details={"field": "intensities", "shape": list(data.shape)},
        )
    if data.size == 0:
        raise InvalidInput(
            f"intensities are empty (shape {data.shape}); pass at least one diffraction pattern.",
            details={"field": "intensities", "shape": list(data.shape)},
        )
    data = data.astype(np.float64)
    if not np.isfinite(data).all():
        first = [int(i) for i in np.argwhere(~np.isfinite(data))[0]]
        raise InvalidInput(
            f"intensities hold NaN or infinite values (first at (pattern, row, col) = {tuple(first)}); "
            "set dead or masked pixels to 0 or drop the pattern.",
            details={"field": "intensities", "first_bad_pixel": first},
        )
    if (data < 0).any():
        raise InvalidInput(
            f"intensities hold negative values (min {float(data.min())}); photon counts cannot be negative. "
            "Clip them at 0 after background subtraction.",
            details={"field": "intensities"},
        )
    n_patterns, window = data.shape[0], (data.shape[1], data.shape[2])

    wave = _array(probe, "probe", str(window))
    if wave.dtype.kind not in "uifc":
        raise InvalidInput(
            f"probe has dtype {wave.dtype}; pass a complex (or real) {window} array.",
            details={"field": "probe", "dtype": str(wave.dtype)},
        )
    if wave.shape != window:
        raise InvalidInput(
            f"probe has shape {wave.shape} but the diffraction patterns are {window}; "
            "the probe window must match the pattern size (crop or pad the probe).",
            details={"field": "probe", "shape": list(wave.shape), "expected": list(window)},
        )
    wave = wave.astype(np.complex128)
    if not np.isfinite(wave).all() or not np.any(wave):
        raise InvalidInput(
            "probe must be finite and not all zero; start from the known probe or a blurred aperture.",
            details={"field": "probe"},
        )

    shape_values = _array(object_shape, "object_shape", "(n0, n1)").reshape(-1)
    if shape_values.size != 2:
        raise InvalidInput(
            f"object_shape must be two sizes (n0, n1), got {object_shape!r}.",
            details={"field": "object_shape"},
        )
    shape = (
        integer(shape_values[0], field="object_shape", minimum=1),
        integer(shape_values[1], field="object_shape", minimum=1),
    )
    if shape[0] < window[0] or shape[1] < window[1]:
        raise InvalidInput(
            f"the probe window {window} is larger than the object {shape}; "
            "make the object at least as large as the probe window plus the scan extent.",
            details={"field": "object_shape", "shape": list(shape), "probe_shape": list(window)},
        )

    where = _array(positions, "positions", "(n_positions, 2)")
    if where.dtype.kind not in "uif" or where.ndim != 2 or where.shape[1] != 2:
        raise InvalidInput(
            f"positions must be a real (n_positions, 2) array of (row, col) top-left corners, "
            f"got dtype {where.dtype} and shape {where.shape}.",
            details={"field": "positions", "shape": list(where.shape)},
        )
    if where.shape[0] != n_patterns:
        raise InvalidInput(
            f"there are {where.shape[0]} scan positions but {n_patterns} diffraction patterns; "
            "pass one position per pattern, in the same order.",
            details={"field": "positions", "n_positions": where.shape[0], "n_patterns": n_patterns},
        )
    if not np.isfinite(where).all() or np.any(where != np.round(where)):
        raise InvalidInput(
            "positions must be whole pixels (this kernel shifts by integers); round them with np.rint first.",
            details={"field": "positions"},
        )
    corners = where.astype(np.int64)
    limit = np.array([shape[0] - window[0], shape[1] - window[1]])
    outside = np.flatnonzero(np.any((corners < 0) | (corners > limit), axis=1))
    if outside.size:
        k = int(outside[0])
        raise InvalidInput(
            f"{outside.size} scan position(s) put the probe outside the object, the first is #{k} at "
            f"{tuple(int(v) for v in corners[k])}; valid top-left corners run from (0, 0) to {tuple(limit)}. "
            "Enlarge object_shape or shift the positions so the smallest is 0.",
            details={"field": "positions", "first_outside": k},
        )
    return Scan(intensities=data, positions=corners, probe=wave, object_shape=shape)


def integer(value: object, *, field: str, minimum: int | None = None) -> int:
    """Return ``value`` as an int ≥ ``minimum`` (bools and non-integral floats are refused)."""
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInput(f"{field} must be an integer, not a bool.", details={"field": field})
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError as exc:
        raise InvalidInput(
            f"{field} must be a whole number, got {value!r} ({type(value).__name__}).",
            details={"field": field},
        ) from exc
    if minimum is not None and number < minimum:
        raise InvalidInput(
            f"{field} must be ≥ {minimum}, got {number}; pass a larger value.",
            details={"field": field, "minimum": minimum},
        )
    return number


def unit_interval(value: object, *, field: str) -> float:
    """Return ``value`` as a float in (0, 1] (the PIE step sizes and rPIE regularisation weights)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInput(f"{field} must be a number in (0, 1], got {value!r}.", details={"field": field})
    number = float(value)
    if not 0.0 < number <= 1.0:
        raise InvalidInput(
            f"{field} must lie in (0, 1], got {number}; typical: 0.05-0.25 for rPIE, 1 for ePIE and DM.",
            details={"field": field},
        )
    return number
