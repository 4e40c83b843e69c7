"""What every app's endpoint steps do with their arguments: paths given as JSON strings, the output
folder, numbers made JSON-safe. Errors are InvalidInput naming the argument and the fix, since their
message is what the CLI and the portal show when a step fails."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from beamlink.errors import InvalidInput

__all__ = ["finite", "output_dir", "path_argument"]


def path_argument(value: object, field: str) -> Path:
    """A path given as a JSON string; anything else is an InvalidInput naming the argument."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            f"{field} must be a non-empty path string, got {value!r}; pass the absolute path.",
            details={"field": field},
        )
    return Path(value)


def output_dir(value: object, field: str = "output_dir") -> Path:
    """The folder a step writes into, created if needed."""
    target = path_argument(value, field)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(
            f"cannot create the output folder {target} ({exc.strerror or exc}); pass a folder the endpoint "
            "can write to.",
            details={"field": field, "path": str(target)},
        ) from exc
    return target


def finite(value: object) -> float | None:
    """``value`` as a float, or None when it is absent, not a number, NaN or infinite (JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
