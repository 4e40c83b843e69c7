"""The MIDAS way: 2-D peak search per frame, then merge peaks across consecutive frames into 3-D spots.

Per frame (``PeaksFittingOMPZarrRefactor.c`` with ``doPeakFit 0``): threshold I' = (I - dark)/flood > T,
8-connected regions, and the intensity-weighted centroid (y_f, z_f), I_f = Σ I' and n_f of each region.

Across frames (``MergeOverlappingPeaksAllZarr.c``): a region in frame f joins the spot that had a region in
frame f - 1 whose centre is within ``overlap_px`` (MIDAS ``OverlapLength``, default 2 px); the pairing is
one-to-one and minimises the total distance. A spot's values are then
``f_c = Σ I_f·f / Σ I_f``, ``y_c = Σ I_f·y_f / Σ I_f``, ``z_c = Σ I_f·z_f / Σ I_f`` and ``I = Σ I_f``, which
equal the 3-D centroid of the same voxels. The reference note measured this and 3-D labelling
(:mod:`~beamlink.apps.hedm.peaksearch`) to agree within 0.01 px and 0.4 % in intensity; it is kept as a
cross-check of the 3-D search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from beamlink.apps._arrays import integer, real_number
from beamlink.apps.hedm._checks import threshold_map
from beamlink.apps.hedm.peaksearch import correct_frames
from beamlink.apps.hedm.records import FramePeak, Peak

__all__ = ["merge_across_omega", "search_frames"]

# 8-connectivity inside a frame and none across frames: one ndimage.label call labels every frame at once.
_CONNECTIVITY_8_PER_FRAME = np.zeros((3, 3, 3), dtype=bool)
_CONNECTIVITY_8_PER_FRAME[1] = True


def search_frames(
    frames: object,
    *,
    threshold: object,
    dark: object = 0.0,
    flood: object | None = None,
    first_frame: int = 0,
) -> list[FramePeak]:
    """Every 8-connected region of every frame, as :class:`FramePeak` records (frame numbers from
    ``first_frame``). ``threshold``, ``dark`` and ``flood`` are as for
    :func:`~beamlink.apps.hedm.peaksearch.search_block`."""
    corrected = correct_frames(frames, dark=dark, flood=flood)
    offset = integer(first_frame, field="first_frame", minimum=0)
    thr = threshold_map(threshold, (corrected.shape[1], corrected.shape[2]))
    labels, n_regions = ndimage.label(
        (corrected > thr) & (np.asarray(thr) > 0), structure=_CONNECTIVITY_8_PER_FRAME
    )
    if n_regions == 0:
        return []
    f, y, z = np.nonzero(labels)
    label = labels[f, y, z] - 1
    weight = corrected[f, y, z]
    sums = np.stack(
        [
            np.bincount(label, weights=values, minlength=n_regions)
            for values in (weight, weight * y, weight * z)
        ]
    )
    n_px = np.bincount(label, minlength=n_regions)
    frame_of = np.zeros(n_regions, dtype=np.int64)
    frame_of[label] = f
    max_i = np.atleast_1d(ndimage.maximum(weight, label, np.arange(n_regions)))
    return [
        FramePeak(
            frame=int(frame_of[k]) + offset,
            y=float(sums[1, k] / sums[0, k]),
            z=float(sums[2, k] / sums[0, k]),
            intensity=float(sums[0, k]),
            n_px=int(n_px[k]),
            max_i=float(max_i[k]),
        )
        for k in range(n_regions)
    ]


def merge_across_omega(
    frame_peaks: Sequence[FramePeak],
    *,
    overlap_px: float = 2.0,
    min_px: int = 4,
    max_px: int = 10_000,
    omega0: float = 0.0,
    domega: float = 1.0,
) -> list[Peak]:
    """Link per-frame regions of consecutive frames into spots; keep spots with ``min_px ≤ n ≤ max_px``."""
    reach = real_number(overlap_px, field="overlap_px", positive=True)
    low = integer(min_px, field="min_px", minimum=1, hint="Use ≥ 4 to drop hot pixels and noise.")
    high = integer(max_px, field="max_px", minimum=low, hint="max_px must be at least min_px.")
    start = real_number(omega0, field="omega0")
    step = real_number(domega, field="domega", nonzero=True)
    ordered = sorted(frame_peaks, key=lambda p: p["frame"])
    spot_of = np.full(len(ordered), -1, dtype=np.int64)
    n_spots = 0
    previous: list[int] = []  # indices into ordered of the regions in the previous frame
    k = 0
    while k < len(ordered):
        frame = ordered[k]["frame"]
        current = []
        while k < len(ordered) and ordered[k]["frame"] == frame:
            current.append(k)
            k += 1
        if previous and ordered[previous[0]]["frame"] == frame - 1:
            distance = cdist(
                [[ordered[i]["y"], ordered[i]["z"]] for i in previous],
                [[ordered[i]["y"], ordered[i]["z"]] for i in current],
            )
            rows, cols = linear_sum_assignment(np.where(distance <= reach, distance, 1e6))
            for r, c in zip(rows, cols, strict=True):
                if distance[r, c] <= reach:
                    spot_of[current[c]] = spot_of[previous[r]]
        for i in current:
            if spot_of[i] < 0:
                spot_of[i] = n_spots
                n_spots += 1
        previous = current
    if not ordered:
        return []
    weight = np.array([p["intensity"] for p in ordered])
    frames = np.array([p["frame"] for p in ordered], dtype=np.float64)
    columns = {
        "i": weight,
        "if": weight * frames,
        "iy": weight * np.array([p["y"] for p in ordered]),
        "iz": weight * np.array([p["z"] for p in ordered]),
        "n": np.array([p["n_px"] for p in ordered], dtype=np.float64),
    }
    sums = {key: np.bincount(spot_of, weights=values, minlength=n_spots) for key, values in columns.items()}
    ids = np.arange(n_spots)
    max_i = np.atleast_1d(ndimage.maximum(np.array([p["max_i"] for p in ordered]), spot_of, ids))
    f_min = np.atleast_1d(ndimage.minimum(frames, spot_of, ids))
    f_max = np.atleast_1d(ndimage.maximum(frames, spot_of, ids))
    peaks: list[Peak] = []
    for s in np.flatnonzero((sums["n"] >= low) & (sums["n"] <= high)):
        frame_c = sums["if"][s] / sums["i"][s]
        omegas = (start + f_min[s] * step, start + f_max[s] * step)
        peaks.append(
            Peak(
                frame=float(frame_c),
                omega=float(start + frame_c * step),
                y=float(sums["iy"][s] / sums["i"][s]),
                z=float(sums["iz"][s] / sums["i"][s]),
                intensity=float(sums["i"][s]),
                n_px=int(sums["n"][s]),
                max_i=float(max_i[s]),
                frame_min=int(f_min[s]),
                frame_max=int(f_max[s]),
                omega_min=float(min(omegas)),
                omega_max=float(max(omegas)),
            )
        )
    peaks.sort(key=lambda p: (p["frame"], p["y"], p["z"]))
    return peaks
