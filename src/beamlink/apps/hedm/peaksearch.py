"""Far-field HEDM peak search in (ω, y, z), fanned out over blocks of frames and merged exactly.

Per block (the MIDAS peak search with ``doPeakFit 0``, done in 3-D as the reference note recommends):

1. correct: I' = (I - dark) / flood;
2. threshold: keep voxels with T > 0 and I' > T, where T is a scalar or a per-pixel (per-ring) map
   (:func:`~beamlink.apps.hedm.geometry.ring_threshold_map`); T = 0 marks pixels to ignore;
3. label 26-connected blobs in (frame, y, z) with :func:`scipy.ndimage.label`;
4. accumulate per blob n, Σ I', Σ I'·f, Σ I'·y, Σ I'·z, max I' and the frame range.

The merge then gives every blob its intensity-weighted centroid
``(f_c, y_c, z_c) = Σ I'·(f, y, z) / Σ I'`` and ``ω_c = omega0 + f_c·domega``, and keeps blobs with
``min_px ≤ n ≤ max_px``.

Fan-out: :func:`split_blocks` cuts the scan into blocks that share ``overlap`` ≥ 1 frames with the next one.
Each block owns the frames up to where the next begins, so moments summed over owned frames add up without
double counting, and blob pieces on both sides of a boundary are joined when they share a voxel in the shared
frames. Any path of 26-neighbours steps between adjacent frames, and every pair of adjacent frames lies
inside one block, so this joins exactly the pieces of one blob: the merged peaks are the peaks of one
whole-stack search (up to float summation order, ~1e-12 relative).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from beamlink.apps._arrays import integer, real_number
from beamlink.apps.hedm._checks import frame_stack, pixel_map, threshold_map
from beamlink.apps.hedm.records import BlobPiece, BlockResult, FrameBlock, Peak
from beamlink.errors import InvalidInput

__all__ = ["correct_frames", "merge_blocks", "search_block", "search_stack", "split_blocks"]

log = logging.getLogger(__name__)

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def split_blocks(n_frames: int, block_size: int, overlap: int = 1) -> list[FrameBlock]:
    """Cut ``n_frames`` into blocks of ``block_size`` owned frames, each reading ``overlap`` more.

    Block k owns ``[k·B, min((k+1)·B, n))`` and reads ``[k·B, min((k+1)·B + overlap, n))``. One shared frame
    is enough for an exact merge; more costs reading time and gains nothing.
    """
    n = integer(n_frames, field="n_frames", minimum=1, hint="A scan has at least one frame.")
    size = integer(block_size, field="block_size", minimum=1, hint="Use e.g. 64 frames per block.")
    shared = integer(
        overlap,
        field="overlap",
        minimum=1,
        maximum=size,
        hint="Blocks must share 1..block_size frames so blobs crossing a boundary can be stitched; use 1.",
    )
    blocks: list[FrameBlock] = []
    for index, start in enumerate(range(0, n, size)):
        owned_stop = min(start + size, n)
        blocks.append(
            FrameBlock(
                index=index,
                start=start,
                owned_stop=owned_stop,
                stop=min(owned_stop + shared, n),
                overlap=shared,
            )
        )
    return blocks


def correct_frames(frames: object, *, dark: object = 0.0, flood: object | None = None) -> NDArray[np.float64]:
    """Return I' = (I - dark) / flood as float64, after checking the stack, the dark and the flood."""
    stack = frame_stack(frames)
    shape = (stack.shape[1], stack.shape[2])
    corrected = stack - pixel_map(dark, shape, field="dark")
    if flood is not None:
        corrected /= pixel_map(flood, shape, field="flood", positive=True)
    return corrected


def search_block(
    frames: object,
    block: Mapping[str, Any],
    *,
    threshold: object,
    dark: object = 0.0,
    flood: object | None = None,
) -> BlockResult:
    """Label the blobs of one block of frames and return their pieces (one Map item of the fan-out).

    Args:
        frames: the block's frames, ``stack[block["start"]:block["stop"]]``, shaped ``(n, y, z)``.
        block: one item of :func:`split_blocks`.
        threshold: T, a scalar > 0 or a ``(y, z)`` map (0 = ignore the pixel); voxels with I' > T are kept.
        dark: dark level, scalar or ``(y, z)`` (MIDAS uses the median dark frame).
        flood: optional flat-field ``(y, z)``, > 0.
    """
    spec = _check_block(block)
    corrected = correct_frames(frames, dark=dark, flood=flood)
    n_read, ny, nz = corrected.shape
    if n_read != spec["stop"] - spec["start"]:
        raise InvalidInput(
            f"frames holds {n_read} frames but block {spec['index']} reads "
            f"[{spec['start']}, {spec['stop']}) = {spec['stop'] - spec['start']} frames; "
            "pass stack[block['start']:block['stop']].",
            details={"field": "frames", "n_frames": n_read, "block": dict(spec)},
        )
    thr = threshold_map(threshold, (ny, nz))
    kept = (corrected > thr) & (np.asarray(thr) > 0)
    labels, n_blobs = ndimage.label(kept, structure=_CONNECTIVITY_26)
    if n_blobs == 0:
        return BlockResult(block=spec, shape=[ny, nz], pieces=[])
    # Work on the sparse list of kept voxels only: it is tiny next to the stack.
    f_local, y, z = np.nonzero(labels)
    label = labels[f_local, y, z] - 1
    weight = corrected[f_local, y, z]
    frame = f_local + spec["start"]
    owned = frame < spec["owned_stop"]

    def owned_sum(values: NDArray[Any]) -> NDArray[np.float64]:
        return np.bincount(label[owned], weights=values[owned], minlength=n_blobs).astype(np.float64)

    n_px = np.bincount(label[owned], minlength=n_blobs)
    sum_i = owned_sum(weight)
    sum_f = owned_sum(weight * frame)
    sum_y = owned_sum(weight * y)
    sum_z = owned_sum(weight * z)
    # Extremes over the sparse voxel list: ndimage over the whole stack would sort every voxel.
    index = np.arange(n_blobs)
    max_i = np.atleast_1d(ndimage.maximum(weight, label, index))
    frame_min = np.atleast_1d(ndimage.minimum(frame, label, index)).astype(np.int64)
    frame_max = np.atleast_1d(ndimage.maximum(frame, label, index)).astype(np.int64)

    head_stop = spec["start"] + spec["overlap"] if spec["start"] > 0 else spec["start"]
    shared = (frame < head_stop) | (frame >= spec["owned_stop"])
    link_ids = (frame[shared] * ny + y[shared]) * nz + z[shared]
    link_label = label[shared]
    order = np.argsort(link_label, kind="stable")
    bounds = np.searchsorted(link_label[order], np.arange(n_blobs + 1))
    links_sorted = link_ids[order]

    pieces: list[BlobPiece] = []
    for k in range(n_blobs):
        pieces.append(
            BlobPiece(
                n_px=int(n_px[k]),
                sum_i=float(sum_i[k]),
                sum_i_frame=float(sum_f[k]),
                sum_i_y=float(sum_y[k]),
                sum_i_z=float(sum_z[k]),
                max_i=float(max_i[k]),
                frame_min=int(frame_min[k]),
                frame_max=int(frame_max[k]),
                links=[int(v) for v in links_sorted[bounds[k] : bounds[k + 1]]],
            )
        )
    log.debug("block %d: %d blobs, %d kept voxels", spec["index"], n_blobs, label.size)
    return BlockResult(block=spec, shape=[ny, nz], pieces=pieces)


def merge_blocks(
    results: Sequence[Mapping[str, Any]],
    *,
    min_px: int = 4,
    max_px: int = 10_000,
    omega0: float = 0.0,
    domega: float = 1.0,
) -> list[Peak]:
    """Join the block results into peaks: stitch pieces that share voxels, sum moments, take centroids.

    ``results`` must cover the scan: the blocks of one :func:`split_blocks` call, in any order. Peaks come
    out sorted by (frame, y, z), with ``min_px ≤ n_px ≤ max_px``.
    """
    low = integer(min_px, field="min_px", minimum=1, hint="Use ≥ 4 to drop hot pixels and noise.")
    high = integer(max_px, field="max_px", minimum=low, hint="max_px must be at least min_px.")
    start_omega = real_number(omega0, field="omega0")
    step = real_number(domega, field="domega", nonzero=True)
    ordered = _check_results(results)
    # Plain mappings: the pieces may have come back through JSON, so they are checked, not trusted.
    pieces: list[Mapping[str, Any]] = [piece for result in ordered for piece in result["pieces"]]
    if not pieces:
        return []
    try:
        moments = np.array([[p[key] for key in _MOMENT_KEYS] for p in pieces], dtype=np.float64)
        group = _stitch([p["links"] for p in pieces])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"a blob piece is malformed ({exc!r}); pass search_block() results unchanged.",
            details={"field": "results"},
        ) from exc
    n_groups = int(group.max()) + 1
    # Columns: n_px, Σ I, Σ I·f, Σ I·y, Σ I·z (additive) | max_i, frame_min, frame_max (extremes).
    sums = np.stack([np.bincount(group, weights=moments[:, c], minlength=n_groups) for c in range(5)], axis=1)
    ids = np.arange(n_groups)
    max_i = np.atleast_1d(ndimage.maximum(moments[:, 5], group, ids))
    frame_min = np.atleast_1d(ndimage.minimum(moments[:, 6], group, ids))
    frame_max = np.atleast_1d(ndimage.maximum(moments[:, 7], group, ids))
    n_px, sum_i = sums[:, 0], sums[:, 1]
    frame_c, y_c, z_c = (sums[:, 2:5] / sum_i[:, None]).T

    peaks: list[Peak] = []
    for k in np.flatnonzero((n_px >= low) & (n_px <= high)):
        omegas = (start_omega + frame_min[k] * step, start_omega + frame_max[k] * step)
        peaks.append(
            Peak(
                frame=float(frame_c[k]),
                omega=float(start_omega + frame_c[k] * step),
                y=float(y_c[k]),
                z=float(z_c[k]),
                intensity=float(sum_i[k]),
                n_px=int(n_px[k]),
                max_i=float(max_i[k]),
                frame_min=int(frame_min[k]),
                frame_max=int(frame_max[k]),
                omega_min=float(min(omegas)),
                omega_max=float(max(omegas)),
            )
        )
    peaks.sort(key=lambda p: (p["frame"], p["y"], p["z"]))
    return peaks


def search_stack(
    stack: object,
    *,
    threshold: object,
    dark: object = 0.0,
    flood: object | None = None,
    block_size: int | None = None,
    overlap: int = 1,
    min_px: int = 4,
    max_px: int = 10_000,
    omega0: float = 0.0,
    domega: float = 1.0,
) -> list[Peak]:
    """Run split → search → merge in this process (``block_size=None``: the whole stack is one block)."""
    frames = frame_stack(stack, field="stack")
    n_frames = frames.shape[0]
    blocks = (
        split_blocks(n_frames, n_frames, 1)
        if block_size is None
        else split_blocks(n_frames, block_size, overlap)
    )
    results = [
        search_block(frames[b["start"] : b["stop"]], b, threshold=threshold, dark=dark, flood=flood)
        for b in blocks
    ]
    return merge_blocks(results, min_px=min_px, max_px=max_px, omega0=omega0, domega=domega)


def _stitch(links: Sequence[Sequence[int]]) -> NDArray[np.intp]:
    """Group pieces that share any link voxel: connected components of the piece-voxel bipartite graph."""
    n_pieces = len(links)
    counts = np.fromiter((len(v) for v in links), dtype=np.intp, count=n_pieces)
    if counts.sum() == 0:
        return np.arange(n_pieces)
    voxel = np.fromiter((v for piece in links for v in piece), dtype=np.int64, count=int(counts.sum()))
    _, voxel_node = np.unique(voxel, return_inverse=True)
    piece_node = np.repeat(np.arange(n_pieces), counts)
    n_nodes = n_pieces + int(voxel_node.max()) + 1
    graph = coo_matrix(
        (np.ones(voxel.size, dtype=np.int8), (piece_node, n_pieces + voxel_node)), shape=(n_nodes, n_nodes)
    )
    _, component = connected_components(graph, directed=False)
    # Renumber so the groups of the pieces are 0..k-1 (voxel-only nodes cannot exist, but stay safe).
    _, group = np.unique(component[:n_pieces], return_inverse=True)
    return np.asarray(group, dtype=np.intp)


_MOMENT_KEYS = ("n_px", "sum_i", "sum_i_frame", "sum_i_y", "sum_i_z", "max_i", "frame_min", "frame_max")
_BLOCK_KEYS = ("index", "start", "owned_stop", "stop", "overlap")


def _check_block(block: Mapping[str, Any]) -> FrameBlock:
    if not isinstance(block, Mapping) or any(key not in block for key in _BLOCK_KEYS):
        raise InvalidInput(
            f"block must be one item of split_blocks(), a dict with keys {list(_BLOCK_KEYS)}; got {block!r}.",
            details={"field": "block"},
        )
    values = {key: integer(block[key], field=f"block.{key}", minimum=0) for key in _BLOCK_KEYS}
    spec = FrameBlock(
        index=values["index"],
        start=values["start"],
        owned_stop=values["owned_stop"],
        stop=values["stop"],
        overlap=values["overlap"],
    )
    if not spec["start"] < spec["owned_stop"] <= spec["stop"] or spec["overlap"] < 1:
        raise InvalidInput(
            f"block {dict(spec)} is inconsistent (need start < owned_stop ≤ stop and overlap ≥ 1); "
            "build blocks with split_blocks().",
            details={"field": "block"},
        )
    return spec


def _check_results(results: Sequence[Mapping[str, Any]]) -> list[BlockResult]:
    """Check that the results tile the scan with consistent blocks and frame shapes; return them in order."""
    if isinstance(results, Mapping) or not isinstance(results, Sequence) or not results:
        raise InvalidInput(
            "results must be a non-empty list of search_block() results, one per block of split_blocks().",
            details={"field": "results"},
        )
    checked: list[BlockResult] = []
    for position, result in enumerate(results):
        if not isinstance(result, Mapping) or not {"block", "shape", "pieces"} <= result.keys():
            raise InvalidInput(
                f"results[{position}] is not a search_block() result (keys block, shape, pieces).",
                details={"field": f"results[{position}]"},
            )
        checked.append(
            BlockResult(
                block=_check_block(result["block"]), shape=list(result["shape"]), pieces=result["pieces"]
            )
        )
    checked.sort(key=lambda r: r["block"]["start"])
    shapes = {tuple(r["shape"]) for r in checked}
    if len(shapes) != 1:
        raise InvalidInput(
            f"the blocks come from frames of different shapes {sorted(shapes)}; "
            "merge the blocks of one scan only.",
            details={"field": "results"},
        )
    expected_start = 0
    for result in checked:
        block = result["block"]
        if block["start"] != expected_start:
            raise InvalidInput(
                f"the blocks do not tile the scan: expected a block starting at frame {expected_start}, "
                f"got {block['start']}. Pass every block of split_blocks() exactly once.",
                details={"field": "results", "missing_from_frame": expected_start},
            )
        expected_start = block["owned_stop"]
    for before, after in pairwise(checked):
        # This block's tail and the next block's head must be the same frames to stitch blobs.
        tail, head = before["block"], after["block"]
        if tail["stop"] != min(head["start"] + head["overlap"], head["stop"]):
            raise InvalidInput(
                f"blocks {tail['index']} and {head['index']} do not share the same frames "
                f"(tail ends at {tail['stop']}, head at {head['start'] + head['overlap']}); "
                "build all blocks with one split_blocks() call.",
                details={"field": "results"},
            )
    if checked[-1]["block"]["stop"] != checked[-1]["block"]["owned_stop"]:
        raise InvalidInput(
            f"the last block reads frames up to {checked[-1]['block']['stop']} that no block owns; "
            "a block is missing at the end. Pass every block of split_blocks() exactly once.",
            details={"field": "results"},
        )
    return checked
