"""What every app's endpoint steps do with their arguments: paths given as JSON strings, the output
folder, numbers made JSON-safe. Errors are InvalidInput naming the argument and the fix, since their
message is what the CLI and the portal show when a step fails."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from beamlink.errors import InvalidInput

__all__ = ["finite", "open_hdf5", "output_dir", "path_argument"]


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


@contextmanager
def open_hdf5(
    path: str | Path,
    *,
    what: str,
    field: str,
    format_name: str | None = None,
    kind: str = "",
    fix: str = "",
    missing_fix: str = "check the path (and that the transfer finished)",
    broken_fix: str = "transfer or write it again",
    short_name: bool = False,
) -> Iterator[Any]:
    """An HDF5 file open for reading; a missing, unreadable (corrupted, truncated) or foreign file is an
    InvalidInput: ``what`` names the file ("scan file"), ``field`` the step argument that gave it.

    With ``format_name`` the root attribute ``beamlink_format`` must equal it (``kind`` says what such a
    file is, ``fix`` how to make one). ``short_name`` writes the file's name, not its whole path, in the
    messages about its content."""
    import h5py

    source = Path(path)
    shown = source.name if short_name else str(source)
    details = {"field": field, "path": str(source)}
    if not source.is_file():
        raise InvalidInput(
            f"{what} {source} does not exist or is not a file; {missing_fix}.", details=details
        )
    try:
        handle = h5py.File(source, "r")
    except OSError as exc:
        raise InvalidInput(
            f"{what} {shown} is not a readable HDF5 file ({exc}); it is corrupted or truncated: "
            f"{broken_fix}.",
            details=details,
        ) from exc
    with handle:
        found = handle.attrs.get("beamlink_format")
        if format_name is not None and found != format_name:
            raise InvalidInput(
                f"{what} {shown} is HDF5 but not a {kind} (root attribute beamlink_format is {found!r}, "
                f"expected {format_name!r}); {fix}.",
                details=details,
            )
        yield handle
