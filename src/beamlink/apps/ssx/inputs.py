"""The SSX run file: a stack of stills in HDF5, the detector mask and, for synthetic runs, the truth.

Layout (what :func:`write_run` writes and :func:`read_run` checks)::

    /stills              (n_frames, height, width) detector counts: integers (uint16, int32, ...) or floats
    /mask                (height, width) bool, True where the pixel records data (optional; 0/1 integers too)
    /truth/n_spots       (n_frames,) int: spots drawn on each still                       (synthetic only)
    /truth/centers_yx    (Σ n_spots, 2) float: every drawn centre, frame after frame, DIALS pixel coordinates
    root attributes: beamlink_format = "beamlink-ssx-stills", format_version, sample (optional)

Every problem is an :class:`~beamlink.errors.InvalidInput` whose message names the file, what is wrong and
the fix (an empty stack, a wrong dtype or shape, NaN in a frame with the frame's index, a mask of another
shape): the compute step raises it as is, and it is what the CLI and the portal show.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from beamlink.apps.ssx.synthetic import StillTruth
from beamlink.apps.step_io import open_hdf5
from beamlink.errors import InvalidInput

__all__ = ["FORMAT_NAME", "SsxRun", "is_complete_run", "iter_stills", "read_run", "read_still", "write_run"]

FORMAT_NAME = "beamlink-ssx-stills"
FORMAT_VERSION = 1
STILLS = "stills"
MASK = "mask"
_KINDS = "uif"  # unsigned, signed, float: detector counts; bool, complex, strings are refused


@dataclass(frozen=True)
class SsxRun:
    """What a run file holds, the frames themselves aside (stream them with :func:`iter_stills`).

    Attributes:
        path: the file.
        n_frames, frame_shape, dtype: of the ``/stills`` stack.
        mask: (height, width) bool, True = pixel records data; None when the file has none.
        sample: the sample's name, or None.
        true_centers: per frame, the (k, 2) spot centres drawn (synthetic runs), else None.
    """

    path: Path
    n_frames: int
    frame_shape: tuple[int, int]
    dtype: str
    mask: NDArray[np.bool_] | None
    sample: str | None
    true_centers: list[NDArray[np.float64]] | None

    @property
    def true_spot_counts(self) -> list[int] | None:
        return None if self.true_centers is None else [int(c.shape[0]) for c in self.true_centers]


def write_run(
    path: str | Path,
    stills: NDArray[Any],
    mask: NDArray[np.bool_] | None = None,
    *,
    sample: str | None = None,
    truths: Sequence[StillTruth] | None = None,
) -> Path:
    """Write a run file (layout in the module docstring); returns ``path``."""
    target = Path(path)
    with h5py.File(target, "w") as f:
        f.attrs["beamlink_format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        if sample:
            f.attrs["sample"] = sample
        frames = np.asarray(stills)
        chunked = frames.ndim == 3 and frames.size > 0  # one chunk per still: reading a still reads one chunk
        f.create_dataset(
            STILLS,
            data=frames,
            chunks=(1, *frames.shape[1:]) if chunked else None,
            compression="lzf" if chunked else None,
        )
        if mask is not None:
            f.create_dataset(MASK, data=np.asarray(mask, dtype=bool))
        if truths is not None:
            group = f.create_group("truth")
            group.create_dataset("n_spots", data=np.array([t.n_spots for t in truths], dtype=np.int64))
            centers = [t.centers_yx.reshape(-1, 2) for t in truths]
            group.create_dataset("centers_yx", data=np.concatenate(centers) if centers else np.empty((0, 2)))
    return target


def _open(path: str | Path) -> AbstractContextManager[Any]:
    return open_hdf5(path, what="stills file", field="stills")


def _stills_dataset(f: Any, source: Path) -> Any:
    dset = f.get(STILLS)
    if not isinstance(dset, h5py.Dataset):
        raise InvalidInput(
            f"stills file {source} has no dataset /{STILLS}; put the frames there, shaped (n_frames, height, "
            "width) (write_run() does).",
            details={"field": "stills", "path": str(source), "dataset": f"/{STILLS}"},
        )
    if dset.ndim != 3:
        raise InvalidInput(
            f"/{STILLS} in {source} has shape {dset.shape}, {dset.ndim} axes; it must be (n_frames, height, "
            "width): a single still is (1, height, width).",
            details={"field": "stills", "path": str(source), "shape": list(dset.shape)},
        )
    if 0 in dset.shape:
        raise InvalidInput(
            f"/{STILLS} in {source} is empty (shape {dset.shape}); the run has no stills to process: write "
            "at least one frame.",
            details={"field": "stills", "path": str(source), "shape": list(dset.shape)},
        )
    if dset.dtype.kind not in _KINDS:
        raise InvalidInput(
            f"/{STILLS} in {source} has dtype {dset.dtype}; stills must be detector counts, integers "
            "(uint16, int32) or floats. A boolean stack is usually a mask written in the wrong place.",
            details={"field": "stills", "path": str(source), "dtype": str(dset.dtype)},
        )
    return dset


def _mask(f: Any, source: Path, shape: tuple[int, int]) -> NDArray[np.bool_] | None:
    dset = f.get(MASK)
    if dset is None:
        return None
    values = np.asarray(dset[()]) if isinstance(dset, h5py.Dataset) else None
    if values is None or values.shape != shape:
        got = "not a dataset" if values is None else f"shape {values.shape}"
        raise InvalidInput(
            f"/{MASK} in {source} has {got} but the stills are {shape}; write one value per pixel, "
            "True where the pixel records data.",
            details={"field": "mask", "path": str(source), "expected": list(shape)},
        )
    if values.dtype == np.bool_:
        return values
    if values.dtype.kind in "ui" and np.isin(values, (0, 1)).all():
        return values.astype(bool)
    raise InvalidInput(
        f"/{MASK} in {source} has dtype {values.dtype}; it must be boolean (or 0/1 integers), True where the "
        "pixel records data.",
        details={"field": "mask", "path": str(source), "dtype": str(values.dtype)},
    )


def _truth(f: Any, source: Path, n_frames: int) -> list[NDArray[np.float64]] | None:
    group = f.get("truth")
    if not isinstance(group, h5py.Group) or "n_spots" not in group or "centers_yx" not in group:
        return None
    counts = np.asarray(group["n_spots"][()], dtype=np.int64).reshape(-1)
    centers = np.asarray(group["centers_yx"][()], dtype=np.float64).reshape(-1, 2)
    if counts.size != n_frames or counts.sum() != centers.shape[0] or (counts < 0).any():
        raise InvalidInput(
            f"/truth in {source} does not match the stills: {counts.size} spot counts summing to "
            f"{int(counts.sum())} for {n_frames} frames and {centers.shape[0]} centres; rewrite the file, or "
            "delete /truth.",
            details={"field": "truth", "path": str(source)},
        )
    return np.split(centers, np.cumsum(counts)[:-1])


def read_run(path: str | Path) -> SsxRun:
    """The run's header, mask and truth, checked (the stack's shape and dtype included, not its values)."""
    source = Path(path)
    with _open(source) as f:
        dset = _stills_dataset(f, source)
        n_frames, height, width = (int(n) for n in dset.shape)
        sample = f.attrs.get("sample")
        return SsxRun(
            path=source,
            n_frames=n_frames,
            frame_shape=(height, width),
            dtype=str(dset.dtype),
            mask=_mask(f, source, (height, width)),
            sample=sample.decode() if isinstance(sample, bytes) else (str(sample) if sample else None),
            true_centers=_truth(f, source, n_frames),
        )


def iter_stills(path: str | Path) -> Iterator[NDArray[Any]]:
    """The stills one at a time, each checked for NaN or infinite values (named by frame and pixel)."""
    source = Path(path)
    with _open(source) as f:
        dset = _stills_dataset(f, source)
        for index in range(dset.shape[0]):
            frame = np.asarray(dset[index])
            if frame.dtype.kind == "f":
                finite = np.isfinite(frame)
                if not finite.all():
                    first = tuple(int(i) for i in np.argwhere(~finite)[0])
                    n_bad = int(frame.size - np.count_nonzero(finite))
                    raise InvalidInput(
                        f"frame {index} of {source} holds {n_bad} NaN or infinite value(s), the first at "
                        f"pixel {first}; set those pixels to 0 and mark them False in /{MASK}, or drop the "
                        "frame.",
                        details={"field": "stills", "path": str(source), "frame": index, "n_bad": n_bad},
                    )
            yield frame


def read_still(path: str | Path, index: int) -> NDArray[Any]:
    """Still ``index`` of a run file (for figures)."""
    source = Path(path)
    with _open(source) as f:
        dset = _stills_dataset(f, source)
        if not 0 <= index < dset.shape[0]:
            raise InvalidInput(
                f"{source} has {dset.shape[0]} stills; there is no frame {index}.",
                details={"field": "index", "path": str(source)},
            )
        return np.asarray(dset[index])


def is_complete_run(path: Path) -> bool:
    """Whether a file is a whole run file yet (it opens and its header checks out); for watch mode."""
    try:
        read_run(path)
    except (InvalidInput, OSError):
        return False
    return True
