"""An XPCS measurement on disk: the frame stack, its acquisition metadata and q partition in one HDF5 file.

Layout (version 1)::

    /                     attrs: beamlink_format = "xpcs-measurement", format_version = 1
    /entry/data/frames    (n_frames, height, width) counts, chunked over frames, Fletcher-32 checksummed
    /entry/instrument     attrs: frame_interval_s, pixel_size_m, distance_m, wavelength_m,
                                 beam_center_y_px, beam_center_x_px   (index coordinates, see qmap)
    /entry/qmap/q         (height, width) float64, nm⁻¹
    /entry/qmap/dqmap     (height, width) int32, dynamic bin labels (0 = masked)
    /entry/qmap/sqmap     (height, width) int32, static bin labels (0 = masked)
    /entry/sample         attrs: free-form strings (name, description, ...)
    /entry/truth          attrs: the known answer, only in synthetic files (diffusion_nm2_s, ...)

The checksums let a reader tell a damaged chunk from data: a corrupted file raises
:class:`~beamlink.errors.InvalidInput` naming the file and the dataset instead of giving wrong numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import positive_float, positive_int, real_array, same_shape
from beamlink.apps.step_io import open_hdf5
from beamlink.apps.xpcs.qmap import DetectorGeometry, QPartition
from beamlink.errors import InvalidInput

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "XpcsMeasurement",
    "iter_frames",
    "read_measurement",
    "write_measurement",
]

FORMAT_NAME = "xpcs-measurement"
FORMAT_VERSION = 1
FRAMES = "entry/data/frames"
INSTRUMENT = "entry/instrument"
QMAP = "entry/qmap"
SAMPLE = "entry/sample"
TRUTH = "entry/truth"
_INSTRUMENT_ATTRS = (
    "frame_interval_s",
    "pixel_size_m",
    "distance_m",
    "wavelength_m",
    "beam_center_y_px",
    "beam_center_x_px",
)
_CHUNK_BYTES = 4 << 20  # HDF5 works best with chunks of about 1-4 MiB

AttrValue = str | int | float | bool


@dataclass(frozen=True)
class XpcsMeasurement:
    """One XPCS measurement: frames plus what is needed to analyse them.

    Attributes:
        frames: (n_frames, height, width) counts, or None when read with ``load_frames=False``.
        n_frames: number of frames T.
        frame_dtype: NumPy dtype name of the stored frames.
        geometry: detector geometry (shape, pixel size, distance, wavelength, beam centre).
        frame_interval_s: time between frames Δt, seconds.
        partition: q map and dynamic/static bins.
        sample: free-form sample description.
        truth: the known answer for synthetic data (empty for real data).
        path: the file it was read from, if any.
    """

    frames: NDArray[Any] | None
    n_frames: int
    frame_dtype: str
    geometry: DetectorGeometry
    frame_interval_s: float
    partition: QPartition
    sample: Mapping[str, AttrValue] = field(default_factory=dict)
    truth: Mapping[str, AttrValue] = field(default_factory=dict)
    path: Path | None = None


def _frames_per_chunk(frame_shape: tuple[int, int], itemsize: int) -> int:
    return int(max(1, min(64, _CHUNK_BYTES // (frame_shape[0] * frame_shape[1] * itemsize))))


def write_measurement(
    path: str | Path,
    frames: NDArray[Any] | Iterable[NDArray[Any]],
    *,
    geometry: DetectorGeometry,
    frame_interval_s: float,
    partition: QPartition,
    sample: Mapping[str, AttrValue] | None = None,
    truth: Mapping[str, AttrValue] | None = None,
) -> Path:
    """Write a measurement file; ``frames`` is a (T, H, W) array or an iterable of (B, H, W) batches
    (streamed to disk, so a stack larger than memory can be written). Returns the path."""
    target = Path(path)
    dt = positive_float(frame_interval_s, field="frame_interval_s")
    same_shape(partition.shape, geometry.shape, field="partition", against="geometry")
    batches: Iterable[NDArray[Any]] = [frames] if isinstance(frames, np.ndarray) else frames
    with h5py.File(target, "w") as f:
        f.attrs["beamlink_format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        dset: Any = None
        for batch in batches:
            stack = real_array(batch, field="frames", ndim=3, axes="(n_frames, height, width)")
            same_shape(stack.shape[1:], geometry.shape, field="frames", against="geometry")
            if dset is None:
                per_chunk = _frames_per_chunk(geometry.shape, stack.dtype.itemsize)
                dset = f.create_dataset(
                    FRAMES,
                    shape=(0, *geometry.shape),
                    maxshape=(None, *geometry.shape),
                    dtype=stack.dtype,
                    chunks=(per_chunk, *geometry.shape),
                    fletcher32=True,
                )
            start = dset.shape[0]
            dset.resize(start + stack.shape[0], axis=0)
            dset[start:] = stack
        if dset is None:
            raise InvalidInput(
                "frames is empty (no batch); pass at least one frame.", details={"field": "frames"}
            )
        instrument = f.create_group(INSTRUMENT)
        values = (
            dt,
            geometry.pixel_size_m,
            geometry.distance_m,
            geometry.wavelength_m,
            geometry.beam_center_yx_px[0],
            geometry.beam_center_yx_px[1],
        )
        for name, number in zip(_INSTRUMENT_ATTRS, values, strict=True):
            instrument.attrs[name] = float(number)
        qmap = f.create_group(QMAP)
        qmap.create_dataset("q", data=partition.q, fletcher32=True)
        qmap.create_dataset("dqmap", data=partition.dqmap, fletcher32=True)
        qmap.create_dataset("sqmap", data=partition.sqmap, fletcher32=True)
        for group_name, attrs in ((SAMPLE, sample), (TRUTH, truth)):
            if attrs:
                group = f.create_group(group_name)
                for key, value in attrs.items():
                    group.attrs[key] = value
    return target


def _open(path: str | Path) -> AbstractContextManager[Any]:
    return open_hdf5(
        path,
        what="measurement file",
        field="path",
        format_name=FORMAT_NAME,
        kind="beamlink XPCS measurement",
        fix="write it with write_measurement()",
    )


def _dataset(f: Any, name: str) -> Any:
    """The dataset ``name`` of open file ``f``; raise InvalidInput naming file and dataset if absent."""
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise InvalidInput(
            f"measurement file {f.filename} has no dataset /{name}; the file is incomplete or was not "
            f"written by write_measurement(). Regenerate or re-export it.",
            details={"field": name, "path": str(f.filename), "dataset": f"/{name}"},
        )
    return obj


def _read(dset: Any, selection: Any = ()) -> NDArray[Any]:
    """Read ``dset[selection]``; a checksum or decoding failure becomes InvalidInput naming the dataset."""
    try:
        return np.asarray(dset[selection])
    except OSError as exc:
        raise InvalidInput(
            f"dataset {dset.name} in {dset.file.filename} cannot be read ({exc}); the file is corrupted: "
            f"transfer or regenerate it.",
            details={"field": dset.name.lstrip("/"), "path": str(dset.file.filename), "dataset": dset.name},
        ) from exc


def _attrs(f: Any, group: str) -> dict[str, AttrValue]:
    obj = f.get(group)
    if obj is None:
        return {}
    return {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in obj.attrs.items()}


def _instrument(f: Any) -> dict[str, float]:
    attrs = _attrs(f, INSTRUMENT)
    missing = [name for name in _INSTRUMENT_ATTRS if name not in attrs]
    if missing:
        raise InvalidInput(
            f"measurement file {f.filename} lacks instrument metadata {missing} on /{INSTRUMENT}; "
            f"write the file with write_measurement() and a complete DetectorGeometry.",
            details={"field": INSTRUMENT, "path": str(f.filename), "missing": missing},
        )
    return {name: float(attrs[name]) for name in _INSTRUMENT_ATTRS}


def _frames_dataset(f: Any) -> Any:
    dset = _dataset(f, FRAMES)
    if dset.ndim != 3 or dset.shape[0] == 0:
        raise InvalidInput(
            f"dataset /{FRAMES} in {f.filename} has shape {dset.shape}; it must be (n_frames >= 1, height, "
            f"width). Regenerate the file.",
            details={"field": FRAMES, "path": str(f.filename), "dataset": f"/{FRAMES}"},
        )
    return dset


def read_measurement(path: str | Path, *, load_frames: bool = True) -> XpcsMeasurement:
    """Read a measurement file. With ``load_frames=False`` only the metadata and q maps are read
    (stream the frames with :func:`iter_frames`)."""
    with _open(path) as f:
        frames_dset = _frames_dataset(f)
        inst = _instrument(f)
        geometry = DetectorGeometry(
            shape=(int(frames_dset.shape[1]), int(frames_dset.shape[2])),
            pixel_size_m=inst["pixel_size_m"],
            distance_m=inst["distance_m"],
            wavelength_m=inst["wavelength_m"],
            beam_center_yx_px=(inst["beam_center_y_px"], inst["beam_center_x_px"]),
        )
        maps = {name: _read(_dataset(f, f"{QMAP}/{name}")) for name in ("q", "dqmap", "sqmap")}
        partition = QPartition(q=maps["q"], dqmap=maps["dqmap"], sqmap=maps["sqmap"])
        same_shape(partition.shape, geometry.shape, field=f"{QMAP}/q", against=f"/{FRAMES} frames")
        frames = _read(frames_dset) if load_frames else None
        return XpcsMeasurement(
            frames=frames,
            n_frames=int(frames_dset.shape[0]),
            frame_dtype=str(frames_dset.dtype),
            geometry=geometry,
            frame_interval_s=inst["frame_interval_s"],
            partition=partition,
            sample=_attrs(f, SAMPLE),
            truth=_attrs(f, TRUTH),
            path=Path(path),
        )


def iter_frames(path: str | Path, *, batch_frames: int = 256) -> Iterator[NDArray[Any]]:
    """Yield the frames of a measurement file in batches of ``batch_frames`` (the last may be shorter)."""
    batch = positive_int(batch_frames, field="batch_frames")
    with _open(path) as f:
        dset = _frames_dataset(f)
        for start in range(0, int(dset.shape[0]), batch):
            yield _read(dset, np.s_[start : start + batch])
