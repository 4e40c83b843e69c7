"""The HEDM flow's compute steps: split the scan into frame blocks, search each block (one Map item on the
compute endpoint), merge the blocks into peaks, then plot (non_compute).

Each step is a plain module-level function, pickled by reference, that an endpoint calls with JSON keyword
arguments (paths as strings) and whose return value is JSON (never NaN). The steps wrap the kernels of
:mod:`~beamlink.apps.hedm.peaksearch` (``split_blocks`` → ``search_block`` → ``merge_blocks``):

* :func:`split_scan` checks the scan file's header and returns the blocks, the Map's items;
* :func:`search_block` reads one block's frames from the file, labels its blobs and writes the pieces to
  ``<blocks_dir>/block_NNNN.json`` (the pieces of a large scan would not fit in a flow's state); it returns
  the block and the file;
* :func:`merge_peaks` reads every block's pieces, stitches them into peaks, scores them against the truth a
  synthetic scan carries, and writes ``<stem>_peaks.csv``;
* :func:`plot` draws the summed frame with its peaks and the peaks per ω.

A bad scan file raises :class:`~beamlink.errors.InvalidInput` from :mod:`.inputs` naming the file and the
fix (in the split step for the header, in the block that holds a NaN for the values); that message is what
the CLI and the portal show when the step fails.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from beamlink.apps._arrays import positive_float
from beamlink.apps.hedm import peaksearch
from beamlink.apps.hedm.evaluate import match_peaks
from beamlink.apps.hedm.inputs import HedmScan, read_frames, read_scan
from beamlink.apps.hedm.records import BlockResult, Peak
from beamlink.apps.step_io import finite as _finite
from beamlink.apps.step_io import output_dir as _output_dir
from beamlink.apps.step_io import path_argument as _path_argument
from beamlink.errors import InvalidInput

__all__ = [
    "PEAKS_PER_OMEGA_PNG",
    "PEAK_COLUMNS",
    "SUMMED_FRAME_PNG",
    "merge_peaks",
    "plot",
    "read_peaks",
    "search_block",
    "split_scan",
]

logger = logging.getLogger(__name__)

SUMMED_FRAME_PNG = "summed_frame.png"
PEAKS_PER_OMEGA_PNG = "peaks_per_omega.png"
PEAK_COLUMNS = (
    "frame",
    "omega",
    "y",
    "z",
    "intensity",
    "n_px",
    "max_i",
    "frame_min",
    "frame_max",
    "omega_min",
    "omega_max",
)
_INT_COLUMNS = {"n_px", "frame_min", "frame_max"}
_PLOT_BLOCK_FRAMES = 64  # frames read at a time to sum the scan for its figure


def _scan_summary(scan: HedmScan) -> dict[str, Any]:
    low, high = scan.omega_range
    return {
        "n_frames": scan.n_frames,
        "frame_shape": list(scan.frame_shape),
        "omega0": scan.omega0,
        "domega": scan.domega,
        "omega_min": low,
        "omega_max": high,
        "omega_range_deg": high - low,
    }


def split_scan(scan: str, block_size: int = 16, overlap: int = 1) -> dict[str, Any]:
    """Check the scan's header and cut it into blocks of ``block_size`` frames sharing ``overlap``.

    Returns ``{"blocks": [FrameBlock, ...], "n_blocks", "n_frames", "frame_shape", "omega0", "domega",
    "omega_min", "omega_max", "omega_range_deg"}``; ``blocks`` are the Map's items.
    """
    header = read_scan(_path_argument(scan, "scan"))
    blocks = peaksearch.split_blocks(header.n_frames, block_size, overlap)
    return {"blocks": [dict(b) for b in blocks], "n_blocks": len(blocks), **_scan_summary(header)}


def _threshold(given: object, header: HedmScan) -> Any:
    if given is not None:
        return given
    if header.threshold is None:
        raise InvalidInput(
            f"no search threshold: {header.path} has no /threshold map or threshold attribute and the input "
            "gives none; pass --set threshold=N (counts above the dark, typically background + "
            "6·√background).",
            details={"field": "threshold"},
        )
    return header.threshold


def search_block(scan: str, block: dict[str, Any], blocks_dir: str, threshold: Any = None) -> dict[str, Any]:
    """Label the blobs of one block of frames (one Map item) and write their pieces to a file.

    ``threshold`` (counts above the dark: a number, or a (y, z) list of lists with 0 = ignore) defaults to
    the scan's own. Returns ``{"block": the block, "file": <blocks_dir>/block_NNNN.json, "n_pieces",
    "seconds"}``.
    """
    source = _path_argument(scan, "scan")
    if not isinstance(block, Mapping) or not all(
        isinstance(block.get(k), int) for k in ("index", "start", "stop")
    ):
        raise InvalidInput(
            "block must be one item of the split step's blocks (index, start, owned_stop, stop, overlap), "
            f"got {block!r}.",
            details={"field": "block"},
        )
    header = read_scan(source)
    out = _output_dir(blocks_dir, "blocks_dir")
    started = time.perf_counter()
    frames = read_frames(source, block["start"], block["stop"])
    result = peaksearch.search_block(frames, block, threshold=_threshold(threshold, header), dark=header.dark)
    seconds = time.perf_counter() - started
    path = out.absolute() / f"block_{int(block['index']):04d}.json"
    path.write_text(json.dumps(result, separators=(",", ":")))
    logger.debug(
        "block %s of %s: %d pieces in %.3f s", block["index"], source, len(result["pieces"]), seconds
    )
    return {
        "block": dict(result["block"]),
        "file": str(path),
        "n_pieces": len(result["pieces"]),
        "seconds": seconds,
    }


def _load_blocks(blocks: object) -> list[BlockResult]:
    if not isinstance(blocks, list) or not blocks:
        raise InvalidInput(
            "blocks must be the non-empty list the search step returned, one entry per block.",
            details={"field": "blocks"},
        )
    loaded: list[BlockResult] = []
    for position, entry in enumerate(blocks):
        file = entry.get("file") if isinstance(entry, Mapping) else None
        try:
            loaded.append(json.loads(_path_argument(file, f"blocks[{position}].file").read_text()))
        except (OSError, ValueError) as exc:
            raise InvalidInput(
                f"the pieces of block {position} cannot be read from {file} ({exc}); run the search again.",
                details={"field": f"blocks[{position}]"},
            ) from exc
    return loaded


def _write_peaks(path: Path, peaks: list[Peak]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PEAK_COLUMNS)
        for peak in peaks:
            row: dict[str, Any] = dict(peak)
            writer.writerow([row[c] if c in _INT_COLUMNS else f"{row[c]:.10g}" for c in PEAK_COLUMNS])


def read_peaks(path: str | Path) -> list[dict[str, float]]:
    """The peaks of a ``<stem>_peaks.csv`` written by :func:`merge_peaks`."""
    source = Path(path)
    try:
        with source.open(newline="") as handle:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"peak list {source} cannot be read ({exc}); run the merge step again.",
            details={"field": "peaks", "path": str(source)},
        ) from exc


def merge_peaks(
    scan: str,
    blocks: list[dict[str, Any]],
    output_dir: str,
    min_px: int = 4,
    max_px: int = 10_000,
    match_radius: float = 1.5,
) -> dict[str, Any]:
    """Stitch the blocks' pieces into peaks (``min_px ≤ voxels ≤ max_px``), write ``<stem>_peaks.csv``.

    Returns ``{"peaks": path, "peaks_name", "n_peaks", "n_blocks", "mean_intensity", "n_frames",
    "frame_shape", "omega0", "domega", "omega_min", "omega_max", "omega_range_deg", "truth": {"n_true_peaks",
    "recall", "precision", "mean_error", "p95_error", "n_grains"} or None, "warnings"}``; the truth is scored
    when the scan carries the generator's (matching within ``match_radius`` in (frame, y, z)).
    """
    source = _path_argument(scan, "scan")
    header = read_scan(source)
    out = _output_dir(output_dir)
    radius = positive_float(match_radius, field="match_radius")
    results = _load_blocks(blocks)
    peaks = peaksearch.merge_blocks(
        results, min_px=min_px, max_px=max_px, omega0=header.omega0, domega=header.domega
    )
    path = out.absolute() / f"{source.stem}_peaks.csv"
    _write_peaks(path, peaks)
    truth: dict[str, Any] | None = None
    if header.true_peaks is not None:
        match = match_peaks(peaks, header.true_peaks, radius=radius)
        truth = {
            "n_true_peaks": len(header.true_peaks),
            "recall": match.recall,
            "precision": match.precision,
            "mean_error": _finite(match.mean_error),
            "p95_error": _finite(match.p95_error),
            "n_grains": header.n_grains,
        }
    warnings = [] if peaks else ["no peak passed the threshold and the size limits: check the threshold."]
    intensity = [p["intensity"] for p in peaks]
    return {
        "peaks": str(path),
        "peaks_name": path.name,
        "n_peaks": len(peaks),
        "n_blocks": len(results),
        "mean_intensity": float(np.mean(intensity)) if intensity else None,
        **_scan_summary(header),
        "truth": truth,
        "warnings": warnings,
    }


def _per_frame(peaks: list[dict[str, float]], n_frames: int, weights: str | None = None) -> list[float]:
    index = np.clip(np.rint([p["frame"] for p in peaks]).astype(np.int64), 0, n_frames - 1)
    values = None if weights is None else [p[weights] for p in peaks]
    return [float(v) for v in np.bincount(index, weights=values, minlength=n_frames)]


def plot(scan: str, peaks: str, output_dir: str) -> dict[str, Any]:
    """Draw ``summed_frame.png`` (Σ over ω of the dark-subtracted frames, peaks circled) and
    ``peaks_per_omega.png`` into ``output_dir``.

    Returns ``{"images": [{"name", "caption"}, ...], "plots": [...]}`` (names relative to ``output_dir``;
    plots as :class:`beamlink.protocol.search.Plot` dicts, one point per frame).
    """
    from beamlink.apps.hedm.plots import plot_peaks_per_omega, plot_summed_frame

    source = _path_argument(scan, "scan")
    header = read_scan(source)
    found = read_peaks(_path_argument(peaks, "peaks"))
    out = _output_dir(output_dir)
    # Σ_f (I_f - dark) = Σ_f I_f - n·dark: summed block by block, so the scan is never whole in memory.
    summed = np.zeros(header.frame_shape)
    for first in range(0, header.n_frames, _PLOT_BLOCK_FRAMES):
        summed += read_frames(source, first, min(first + _PLOT_BLOCK_FRAMES, header.n_frames)).sum(axis=0)
    dark = np.asarray(header.dark) * header.n_frames
    plot_summed_frame(summed[None], found, dark=dark, path=out / SUMMED_FRAME_PNG)
    plot_peaks_per_omega(
        found,
        n_frames=header.n_frames,
        omega0=header.omega0,
        domega=header.domega,
        path=out / PEAKS_PER_OMEGA_PNG,
    )
    omega = [header.omega0 + f * header.domega for f in range(header.n_frames)]
    low, high = header.omega_range
    return {
        "images": [
            {
                "name": SUMMED_FRAME_PNG,
                "caption": f"{source.name} summed over ω = {low:g}…{high:g}°, {len(found)} peaks circled.",
            },
            {
                "name": PEAKS_PER_OMEGA_PNG,
                "caption": f"Peaks per frame against ω ({len(found)} in all, {header.n_frames} frames).",
            },
        ],
        "plots": [
            {
                "title": "Peaks per frame",
                "x_label": "ω (°)",
                "y_label": "peaks",
                "log_x": False,
                "log_y": False,
                "series": [{"name": "peak centroids", "x": omega, "y": _per_frame(found, header.n_frames)}],
            },
            {
                "title": "Integrated intensity of the peaks per frame",
                "x_label": "ω (°)",
                "y_label": "Σ I (counts)",
                "log_x": False,
                "log_y": False,
                "series": [
                    {"name": "Σ intensity", "x": omega, "y": _per_frame(found, header.n_frames, "intensity")}
                ],
            },
        ],
    }
