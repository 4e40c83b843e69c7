"""A BraggNN peak file: patches to locate (with their true centres when known) and a training set, in HDF5.

Layout (version 1)::

    /                 attrs: beamlink_format = "braggnn-peaks", format_version = 1, sample (name),
                             synthetic (bool)
    /patches          (n, p, p) counts, one Bragg peak per patch, cropped around its brightest pixel
    /centres          (n, 2) true centres (x, y) = (column, row) in patch pixels; optional (synthetic data,
                      or centres from another method to compare with)
    /train/patches    (n_train, p, p) counts with known centres, to train a model on; optional
    /train/centres    (n_train, 2) their centres (x, y), required with /train/patches

Patches are square (p = 11 for BraggNN), real (integer counts or floats), finite. :func:`read_peaks` checks
all of it with the kernels' own checks (:mod:`beamlink.apps.braggnn._checks`) and raises
:class:`~beamlink.errors.InvalidInput` whose message starts with the file's name and ends with the fix.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import as_array
from beamlink.apps.braggnn._checks import centre_array, patch_stack
from beamlink.apps.step_io import open_hdf5
from beamlink.errors import InvalidInput

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "BraggPeaks",
    "example_peaks",
    "is_complete_peaks",
    "read_peaks",
    "write_peaks",
]

FORMAT_NAME = "braggnn-peaks"
FORMAT_VERSION = 1
_LAYOUT = (
    "a peak file holds /patches (n, 11, 11) and optionally /centres (n, 2), /train/patches and "
    "/train/centres; write it with beamlink.apps.braggnn.inputs.write_peaks()"
)


@dataclass(frozen=True)
class BraggPeaks:
    """A checked peak file: float64 patches, their centres when known, and the training set when present."""

    path: Path
    patches: NDArray[np.float64]
    centres: NDArray[np.float64] | None
    train_patches: NDArray[np.float64] | None
    train_centres: NDArray[np.float64] | None
    sample: str
    synthetic: bool

    @property
    def n_patches(self) -> int:
        return int(self.patches.shape[0])

    @property
    def patch_size(self) -> int:
        return int(self.patches.shape[1])


def write_peaks(
    path: str | Path,
    *,
    patches: NDArray[Any],
    centres: NDArray[Any] | None = None,
    train_patches: NDArray[Any] | None = None,
    train_centres: NDArray[Any] | None = None,
    sample: str = "",
    synthetic: bool = False,
) -> Path:
    """Write a peak file (module docstring) as given, unchecked: :func:`read_peaks` does the checks, so a
    test can write a bad file on purpose."""
    target = Path(path)
    with h5py.File(target, "w") as f:
        f.attrs["beamlink_format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["sample"] = sample
        f.attrs["synthetic"] = synthetic
        for name, value in (
            ("patches", patches),
            ("centres", centres),
            ("train/patches", train_patches),
            ("train/centres", train_centres),
        ):
            if value is not None:
                f.create_dataset(name, data=np.asarray(value))
    return target


def _open(path: str | Path) -> AbstractContextManager[Any]:
    return open_hdf5(
        path,
        what="peak file",
        field="data",
        format_name=FORMAT_NAME,
        kind="beamlink BraggNN peak file",
        fix=_LAYOUT,
        short_name=True,
    )


def _read(f: Any, name: str, path: Path) -> NDArray[Any] | None:
    obj = f.get(name)
    if obj is None:
        return None
    if not isinstance(obj, h5py.Dataset):
        raise InvalidInput(
            f"peak file {path.name}: /{name} is a group, not a dataset; {_LAYOUT}.",
            details={"field": name, "path": str(path)},
        )
    try:
        return as_array(obj[()], field=name, axes="")
    except (OSError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"dataset /{name} of peak file {path.name} cannot be read ({exc}); the file is corrupted: "
            "transfer or regenerate it.",
            details={"field": name, "path": str(path)},
        ) from exc


def _patches(value: NDArray[Any], *, field: str, path: Path) -> NDArray[np.float64]:
    """A square (n, p, p) real, finite, non-empty stack; the kernels' messages with the file's name."""
    size = int(value.shape[1]) if value.ndim == 3 and value.shape[1] > 0 else 11
    try:
        return patch_stack(value, patch_size=size, field=field)
    except InvalidInput as exc:
        raise _in_file(path, exc) from exc


def _centres(value: NDArray[Any] | None, *, n: int, field: str, path: Path) -> NDArray[np.float64] | None:
    if value is None:
        return None
    try:
        return centre_array(value, n_patches=n, field=field)
    except InvalidInput as exc:
        raise _in_file(path, exc) from exc


def _in_file(path: Path, exc: InvalidInput) -> InvalidInput:
    return InvalidInput(f"peak file {path.name}: {exc.message}", details={**exc.details, "path": str(path)})


def read_peaks(path: str | Path) -> BraggPeaks:
    """Read and check a peak file (module docstring); every problem is an InvalidInput naming the file."""
    source = Path(path)
    with _open(source) as f:
        raw = _read(f, "patches", source)
        if raw is None:
            raise InvalidInput(
                f"peak file {source.name} has no dataset /patches; {_LAYOUT}.",
                details={"field": "patches", "path": str(source)},
            )
        patches = _patches(raw, field="patches", path=source)
        centres = _centres(_read(f, "centres", source), n=patches.shape[0], field="centres", path=source)
        raw_train = _read(f, "train/patches", source)
        train_patches = train_centres = None
        if raw_train is not None:
            train_patches = _patches(raw_train, field="train/patches", path=source)
            if train_patches.shape[1:] != patches.shape[1:]:
                raise InvalidInput(
                    f"peak file {source.name}: /train/patches are {train_patches.shape[1]}x"
                    f"{train_patches.shape[2]} but /patches are {patches.shape[1]}x{patches.shape[2]}; "
                    "crop both sets to one patch size.",
                    details={"field": "train/patches", "path": str(source)},
                )
            raw_centres = _read(f, "train/centres", source)
            if raw_centres is None:
                raise InvalidInput(
                    f"peak file {source.name} has /train/patches but no /train/centres; training needs the "
                    "known centre (x, y) of every training patch: add them, or drop /train.",
                    details={"field": "train/centres", "path": str(source)},
                )
            train_centres = _centres(
                raw_centres, n=train_patches.shape[0], field="train/centres", path=source
            )
        return BraggPeaks(
            path=source,
            patches=patches,
            centres=centres,
            train_patches=train_patches,
            train_centres=train_centres,
            sample=str(f.attrs.get("sample", "")),
            synthetic=bool(f.attrs.get("synthetic", False)),
        )


def is_complete_peaks(path: Path) -> bool:
    """Whether a file is a whole peak file: it opens and has a 3-axis /patches (data not read)."""
    try:
        with _open(path) as f:
            patches = f.get("patches")
            return isinstance(patches, h5py.Dataset) and patches.ndim == 3
    except (InvalidInput, OSError):
        return False


def example_peaks(
    folder: Path, *, n_train: int = 2048, n_test: int = 256, seed: int = 0, name: str = "demo-B001"
) -> Path:
    """Synthetic pseudo-Voigt peaks with known centres in ``folder``: ``n_train`` training patches and
    ``n_test`` patches to locate (other seeds), Poisson noise, centres within ±1.5 px of the patch middle.
    Written under a temporary name and renamed when whole; an intact earlier copy is kept.

    Known answer: the least-squares fit finds the centres to about 0.03 px; predicting the patch middle
    errs by about 1.15 px; a network trained a few epochs on the training set lands in between
    (tests/apps/braggnn/test_steps.py).
    """
    from beamlink.apps.braggnn.synthetic import make_patches

    path = folder / f"{name}-{n_test}p.h5"
    if path.is_file() and is_complete_peaks(path):
        return path
    train_patches, train_centres = make_patches(n_train, seed=seed)
    patches, centres = make_patches(n_test, seed=seed + 1)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    write_peaks(
        partial,
        patches=patches,
        centres=centres,
        train_patches=train_patches,
        train_centres=train_centres,
        sample=f"synthetic pseudo-Voigt peaks, seed {seed}",
        synthetic=True,
    )
    partial.rename(path)
    return path
