"""Input checks for the ptycho kernels: each bad value becomes one :class:`~beamlink.errors.InvalidInput`.

The generic checks live in :mod:`beamlink.apps._arrays`; these tie a scan together (one position per pattern,
a probe the size of a pattern, every window inside the object). ``details["field"]`` names the argument.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import REAL_KINDS, as_array, check_kind, integer, real_array
from beamlink.errors import InvalidInput

__all__ = ["Scan", "check_scan", "unit_interval"]


@dataclass(frozen=True)
class Scan:
    """A checked scan: intensities (J, m0, m1), top-left corners (J, 2), complex probe, object shape."""

    intensities: NDArray[np.float64]
    positions: NDArray[np.int64]
    probe: NDArray[np.complex128]
    object_shape: tuple[int, int]


def check_scan(intensities: object, positions: object, probe: object, object_shape: object) -> Scan:
    """Check that intensities, positions, probe and object shape describe one consistent scan."""
    data = real_array(
        intensities,
        field="intensities",
        ndim=3,
        axes="(n_positions, m0, m1)",
        expect="integer or float intensities (for a complex field pass |Ψ|², not the field itself)",
        single="one pattern is passed as pattern[None]",
        finite_fix="Set dead or masked pixels to 0 or drop the pattern.",
    ).astype(np.float64)
    if (data < 0).any():
        raise InvalidInput(
            f"intensities hold negative values (min {float(data.min())}); photon counts cannot be negative. "
            "Clip them at 0 after background subtraction.",
            details={"field": "intensities"},
        )
    n_patterns, window = data.shape[0], (data.shape[1], data.shape[2])

    wave = as_array(probe, field="probe", axes=str(window))
    check_kind(wave, field="probe", kinds=REAL_KINDS + "c", expect=f"a complex (or real) {window} array")
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

    shape_values = as_array(object_shape, field="object_shape", axes="(n0, n1)").reshape(-1)
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

    where = as_array(positions, field="positions", axes="(n_positions, 2)")
    if where.dtype.kind not in REAL_KINDS or where.ndim != 2 or where.shape[1] != 2:
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
