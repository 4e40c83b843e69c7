"""Input checks shared by the science kernels: every bad array becomes one ``InvalidInput``.

Each message says what is wrong and how to fix it; ``details["field"]`` names the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.errors import InvalidInput

__all__ = ["positive_float", "positive_int", "real_array", "same_shape"]

# NumPy dtype kinds that hold real numbers; bool ('b') is left out on purpose: a boolean stack passed as
# frames is almost always a mask passed in the wrong place.
_REAL_KINDS = frozenset("uif")
_KIND_NAMES = {
    "b": "boolean",
    "c": "complex",
    "U": "string",
    "S": "bytes",
    "O": "Python object",
    "M": "datetime",
    "m": "timedelta",
    "V": "structured",
}


def real_array(value: object, *, field: str, ndim: int, axes: str, check_finite: bool = True) -> NDArray[Any]:
    """Return ``value`` as an ndarray of real numbers with ``ndim`` axes, none empty, all finite.

    ``axes`` spells the expected layout for the message, e.g. ``"(n_frames, height, width)"``.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidInput(
            f"{field} could not be read as an array ({exc}); pass a NumPy array shaped {axes}.",
            details={"field": field},
        ) from exc
    kind = array.dtype.kind
    if kind not in _REAL_KINDS:
        raise InvalidInput(
            f"{field} has {_KIND_NAMES.get(kind, kind)} dtype {array.dtype}; detector data must be real "
            f"numbers. "
            f"Pass integer counts or floats (for complex fields pass the intensity, np.abs(field)**2).",
            details={"field": field, "dtype": str(array.dtype)},
        )
    if array.ndim != ndim:
        raise InvalidInput(
            f"{field} must have {ndim} axes {axes}, got {array.ndim} (shape {array.shape}). "
            f"Reshape it to {axes}" + ("; a single frame is (1, height, width)." if ndim == 3 else "."),
            details={"field": field, "shape": list(array.shape)},
        )
    if array.size == 0:
        raise InvalidInput(
            f"{field} is empty (shape {array.shape}); pass at least one value along every axis {axes}.",
            details={"field": field, "shape": list(array.shape)},
        )
    if check_finite and kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            n_bad = int(array.size - np.count_nonzero(finite))
            raise InvalidInput(
                f"{field} holds {n_bad} NaN or infinite value(s), the first at index {first}. "
                f"Set those pixels to 0 and mask them out (q partition / mask), or drop the frames.",
                details={"field": field, "n_bad": n_bad, "first_index": list(first)},
            )
    return array


def same_shape(shape: tuple[int, ...], expected: tuple[int, ...], *, field: str, against: str) -> None:
    """Raise InvalidInput unless ``shape == expected``."""
    if tuple(shape) != tuple(expected):
        raise InvalidInput(
            f"{field} has shape {tuple(shape)} but {against} has shape {tuple(expected)}; "
            f"build {field} for the same detector frame shape.",
            details={"field": field, "shape": list(shape), "expected": list(expected)},
        )


def positive_float(value: object, *, field: str) -> float:
    """Return ``value`` as a finite float > 0, or raise InvalidInput naming ``field``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{field} must be a positive number, got {value!r}.", details={"field": field}
        ) from exc
    if not np.isfinite(number) or number <= 0:
        raise InvalidInput(
            f"{field} must be a finite number > 0, got {number}; give it in the unit its name states.",
            details={"field": field, "value": number},
        )
    return number


def positive_int(value: object, *, field: str, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``, or raise InvalidInput naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInput(f"{field} must be an integer, got {value!r}.", details={"field": field})
    if int(value) < minimum:
        raise InvalidInput(
            f"{field} must be >= {minimum}, got {value}.", details={"field": field, "value": int(value)}
        )
    return int(value)
