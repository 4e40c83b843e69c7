"""Input checks shared by the science kernels: every bad value becomes one ``InvalidInput``.

Each message says what is wrong and how to fix it; ``details["field"]`` names the argument. The array checks
take the kernel's own wording of the fix (``expect``, ``single``, ``finite_fix``) so that one check serves
detector frames, diffraction patterns and complex probes alike.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.errors import InvalidInput

__all__ = [
    "REAL_KINDS",
    "as_array",
    "check_kind",
    "integer",
    "positive_float",
    "positive_int",
    "real_array",
    "real_number",
    "same_shape",
]

# NumPy dtype kinds that hold real numbers; bool ('b') is left out on purpose: a boolean stack passed as
# frames is almost always a mask passed in the wrong place.
REAL_KINDS = "uif"
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
_DETECTOR_DATA = "integer counts or floats (for complex fields pass the intensity, np.abs(field)**2)"
_MASK_THEM = "Set those pixels to 0 and mask them out (q partition / mask), or drop the frames."


def as_array(value: object, *, field: str, axes: str) -> NDArray[Any]:
    """Return ``np.asarray(value)``; a value NumPy cannot read (ragged nested lists) raises InvalidInput.

    ``axes`` spells the expected layout for the message, e.g. ``"(n_frames, height, width)"``.
    """
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{field} could not be read as an array ({exc}); pass a NumPy array shaped {axes}.",
            details={"field": field},
        ) from exc


def check_kind(
    array: NDArray[Any], *, field: str, kinds: str = REAL_KINDS, expect: str = _DETECTOR_DATA
) -> None:
    """Raise InvalidInput unless ``array``'s dtype kind is in ``kinds``; ``expect`` says what to pass."""
    kind = array.dtype.kind
    if kind not in kinds:
        numbers = "real or complex numbers" if "c" in kinds else "real numbers"
        raise InvalidInput(
            f"{field} has {_KIND_NAMES.get(kind, kind)} dtype {array.dtype}; it must hold {numbers}. "
            f"Pass {expect}.",
            details={"field": field, "dtype": str(array.dtype)},
        )


def real_array(
    value: object,
    *,
    field: str,
    ndim: int,
    axes: str,
    check_finite: bool = True,
    expect: str = _DETECTOR_DATA,
    single: str | None = None,
    finite_fix: str = _MASK_THEM,
) -> NDArray[Any]:
    """Return ``value`` as an ndarray of real numbers with ``ndim`` axes, none empty, all finite.

    ``axes`` spells the expected layout, ``expect`` what to pass instead of another dtype, ``single`` how
    to pass one item (for 3 axes by default "a single frame is (1, height, width)"), and ``finite_fix``
    what to do about NaN or infinite values.
    """
    array = as_array(value, field=field, axes=axes)
    check_kind(array, field=field, expect=expect)
    if array.ndim != ndim:
        if single is None:
            single = "a single frame is (1, height, width)" if ndim == 3 else ""
        raise InvalidInput(
            f"{field} must have {ndim} axes {axes}, got {array.ndim} (shape {array.shape}). "
            f"Reshape it to {axes}" + (f"; {single}." if single else "."),
            details={"field": field, "shape": list(array.shape)},
        )
    if array.size == 0:
        raise InvalidInput(
            f"{field} is empty (shape {array.shape}); pass at least one value along every axis {axes}.",
            details={"field": field, "shape": list(array.shape)},
        )
    if check_finite and array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            n_bad = int(array.size - np.count_nonzero(finite))
            raise InvalidInput(
                f"{field} holds {n_bad} NaN or infinite value(s), the first at index {first}. {finite_fix}",
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


def integer(
    value: object, *, field: str, minimum: int | None = None, maximum: int | None = None, hint: str = ""
) -> int:
    """Return ``value`` as an int within ``[minimum, maximum]`` (bools and non-integral floats are refused).

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
