"""The far-field HEDM scan file: frames over ω in HDF5, the dark, the ω axis and, when synthetic, the truth.

Layout (what :func:`write_scan` writes and :func:`read_scan` checks)::

    /frames            (n_frames, y, z) detector counts: integers (uint16, uint32, ...) or floats
    /dark              (y, z) dark frame (optional; else the root attribute ``dark``, a number, else 0)
    /threshold         (y, z) per-pixel threshold above the dark, 0 = ignore (optional; else the
                       root attribute ``threshold``, a number)
    root attributes:   beamlink_format = "beamlink-hedm-scan", format_version, omega0_deg, domega_deg
                       (frame f is centred on ω = omega0 + f·domega), sample, dark, threshold
    /truth/peaks       (n, 3) float: the drawn spots' (frame, y, z)                         (synthetic only)
    /truth/grain       (n,) int: the grain of each spot; attribute n_grains                  (grain level)

Every problem is an :class:`~beamlink.errors.InvalidInput` whose message names the file, what is wrong and
the fix (an empty stack, a wrong dtype or shape, a zero ω step, NaN in a frame with its index in the scan):
the steps raise it as is, and it is what the CLI and the portal show.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from beamlink.apps.hedm.records import TruePeak
from beamlink.apps.step_io import open_hdf5
from beamlink.errors import InvalidInput

__all__ = ["FORMAT_NAME", "HedmScan", "is_complete_scan", "read_frames", "read_scan", "write_scan"]

FORMAT_NAME = "beamlink-hedm-scan"
FORMAT_VERSION = 1
FRAMES = "frames"
_KINDS = "uif"


@dataclass(frozen=True)
class HedmScan:
    """What a scan file holds, the frames aside (read a block of them with :func:`read_frames`).

    Attributes:
        path: the file.
        n_frames, frame_shape, dtype: of the ``/frames`` stack.
        omega0, domega: the ω axis in degrees (frame f is centred on omega0 + f·domega).
        dark: a number or a (y, z) map, subtracted before the search.
        threshold: the recommended threshold above the dark (number or (y, z) map), or None.
        sample: the sample's name, or None.
        true_peaks: (frame, y, z) of the drawn spots, as peak records (synthetic scans), else None.
        n_grains: number of grains drawn (grain-level synthetic scans), else None.
    """

    path: Path
    n_frames: int
    frame_shape: tuple[int, int]
    dtype: str
    omega0: float
    domega: float
    dark: float | NDArray[np.float64]
    threshold: float | NDArray[np.float64] | None
    sample: str | None
    true_peaks: list[dict[str, float]] | None
    n_grains: int | None

    @property
    def omega_range(self) -> tuple[float, float]:
        """(lowest, highest) ω the scan covers, frame edges included (degrees)."""
        ends = (self.omega0 - self.domega / 2, self.omega0 + (self.n_frames - 0.5) * self.domega)
        return min(ends), max(ends)


def write_scan(
    path: str | Path,
    frames: NDArray[Any],
    *,
    omega0: float,
    domega: float,
    dark: float | NDArray[Any] = 0.0,
    threshold: float | NDArray[Any] | None = None,
    sample: str | None = None,
    truth: Sequence[TruePeak] | None = None,
    n_grains: int | None = None,
) -> Path:
    """Write a scan file (layout in the module docstring); returns ``path``."""
    target = Path(path)
    stack = np.asarray(frames)
    with h5py.File(target, "w") as f:
        f.attrs.update(
            {
                "beamlink_format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "omega0_deg": omega0,
                "domega_deg": domega,
            }
        )
        if sample:
            f.attrs["sample"] = sample
        chunked = stack.ndim == 3 and stack.size > 0  # a frame a chunk: a block of frames reads whole chunks
        f.create_dataset(
            FRAMES,
            data=stack,
            chunks=(1, *stack.shape[1:]) if chunked else None,
            compression="lzf" if chunked else None,
        )
        for name, value in (("dark", dark), ("threshold", threshold)):
            if value is None:
                continue
            if np.ndim(value) == 0:
                f.attrs[name] = float(value)
            else:
                f.create_dataset(name, data=np.asarray(value, dtype=np.float64))
        if truth is not None:
            group = f.create_group("truth")
            group["peaks"] = np.array(
                [[p["frame"], p["y"], p["z"]] for p in truth], dtype=np.float64
            ).reshape(-1, 3)
            if truth and all("grain" in p for p in truth):
                group["grain"] = np.array([p["grain"] for p in truth], dtype=np.int64)
            if n_grains is not None:
                group.attrs["n_grains"] = n_grains
    return target


def _open(path: str | Path) -> AbstractContextManager[Any]:
    return open_hdf5(path, what="scan file", field="scan")


def _frames_dataset(f: Any, source: Path) -> Any:
    dset = f.get(FRAMES)
    if not isinstance(dset, h5py.Dataset):
        raise InvalidInput(
            f"scan file {source} has no dataset /{FRAMES}; put the frames there, shaped (n_frames, y, z) "
            "(write_scan() does).",
            details={"field": "scan", "path": str(source), "dataset": f"/{FRAMES}"},
        )
    if dset.ndim != 3:
        raise InvalidInput(
            f"/{FRAMES} in {source} has shape {dset.shape}, {dset.ndim} axes; it must be (n_frames, y, z): "
            "one detector frame per ω step.",
            details={"field": "scan", "path": str(source), "shape": list(dset.shape)},
        )
    if 0 in dset.shape:
        raise InvalidInput(
            f"/{FRAMES} in {source} is empty (shape {dset.shape}); the scan has no frames to search: "
            "write at least one frame.",
            details={"field": "scan", "path": str(source), "shape": list(dset.shape)},
        )
    if dset.dtype.kind not in _KINDS:
        raise InvalidInput(
            f"/{FRAMES} in {source} has dtype {dset.dtype}; frames must be detector counts, integers "
            "(uint16, uint32) or floats.",
            details={"field": "scan", "path": str(source), "dtype": str(dset.dtype)},
        )
    return dset


def _number(f: Any, source: Path, name: str, default: float | None) -> float | None:
    value = f.attrs.get(name, default)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        raise InvalidInput(
            f"the attribute {name} of {source} is {value!r}; it must be a finite number.",
            details={"field": name, "path": str(source)},
        )
    return number


def _pixel_map(
    f: Any, source: Path, name: str, shape: tuple[int, int], default: float | None
) -> float | NDArray[np.float64] | None:
    """A (y, z) dataset ``name``, else the number in the attribute ``name``, else ``default``."""
    dset = f.get(name)
    if dset is None:
        return _number(f, source, name, default)
    values = np.asarray(dset[()]) if isinstance(dset, h5py.Dataset) else None
    if values is None or values.shape != shape or values.dtype.kind not in _KINDS:
        got = "not a dataset" if values is None else f"shape {values.shape}, dtype {values.dtype}"
        raise InvalidInput(
            f"/{name} in {source} has {got}; it must be a real {shape} map, one value per detector pixel.",
            details={"field": name, "path": str(source), "expected": list(shape)},
        )
    if not np.isfinite(values).all():
        raise InvalidInput(
            f"/{name} in {source} holds NaN or infinite values; replace them with finite numbers.",
            details={"field": name, "path": str(source)},
        )
    return values.astype(np.float64)


def _truth(f: Any) -> tuple[list[dict[str, float]] | None, int | None]:
    group = f.get("truth")
    if not isinstance(group, h5py.Group) or "peaks" not in group:
        return None, None
    peaks = np.asarray(group["peaks"][()], dtype=np.float64).reshape(-1, 3)
    records = [{"frame": float(p[0]), "y": float(p[1]), "z": float(p[2])} for p in peaks]
    grains = group.attrs.get("n_grains")
    return records, None if grains is None else int(grains)


def read_scan(path: str | Path) -> HedmScan:
    """The scan's header, dark, threshold and truth, checked (the frames' shape and dtype, not values)."""
    source = Path(path)
    with _open(source) as f:
        dset = _frames_dataset(f, source)
        n_frames, ny, nz = (int(n) for n in dset.shape)
        omega0 = _number(f, source, "omega0_deg", 0.0)
        domega = _number(f, source, "domega_deg", None)
        if domega is None or domega == 0:
            raise InvalidInput(
                f"scan file {source} gives the ω step domega_deg = {domega}; set the root attribute "
                "domega_deg to the scan's step in degrees (negative for a reversed scan, never 0).",
                details={"field": "domega_deg", "path": str(source)},
            )
        dark = _pixel_map(f, source, "dark", (ny, nz), 0.0)
        assert dark is not None
        sample = f.attrs.get("sample")
        true_peaks, n_grains = _truth(f)
        return HedmScan(
            path=source,
            n_frames=n_frames,
            frame_shape=(ny, nz),
            dtype=str(dset.dtype),
            omega0=float(omega0 or 0.0),
            domega=domega,
            dark=dark,
            threshold=_pixel_map(f, source, "threshold", (ny, nz), None),
            sample=sample.decode() if isinstance(sample, bytes) else (str(sample) if sample else None),
            true_peaks=true_peaks,
            n_grains=n_grains,
        )


def read_frames(path: str | Path, start: int = 0, stop: int | None = None) -> NDArray[np.float64]:
    """Frames ``[start, stop)`` of a scan as float64, checked for NaN or infinite values (named by their
    frame in the scan and pixel)."""
    source = Path(path)
    with _open(source) as f:
        dset = _frames_dataset(f, source)
        end = dset.shape[0] if stop is None else stop
        if not 0 <= start < end <= dset.shape[0]:
            raise InvalidInput(
                f"{source} has {dset.shape[0]} frames; frames [{start}, {end}) are not all in it. Build the "
                "blocks from this scan's own frame count.",
                details={"field": "block", "path": str(source)},
            )
        frames = np.asarray(dset[start:end], dtype=np.float64)
    finite = np.isfinite(frames)
    if not finite.all():
        first = np.argwhere(~finite)[0]
        n_bad = int(frames.size - np.count_nonzero(finite))
        frame = start + int(first[0])
        raise InvalidInput(
            f"frame {frame} of {source} holds NaN or infinite values ({n_bad} in frames {start}-{end - 1}, "
            f"the first at pixel ({int(first[1])}, {int(first[2])})); replace dead pixels with 0 (or give "
            "them a threshold of 0 in /threshold) before the search.",
            details={"field": "scan", "path": str(source), "frame": frame, "n_bad": n_bad},
        )
    return frames


def is_complete_scan(path: Path) -> bool:
    """Whether a file is a whole scan file yet (it opens and its header checks out); for watch mode."""
    try:
        read_scan(path)
    except (InvalidInput, OSError):
        return False
    return True
