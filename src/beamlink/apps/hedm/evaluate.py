"""Score found peaks against ground truth: one-to-one matching, recall, precision and centroid errors.

A found peak matches a true one when their (frame, y, z) centroids are within ``radius`` (frames and pixels
weigh alike, as in the reference note's 0.023 px figure); the pairing minimises the total distance
(:func:`scipy.optimize.linear_sum_assignment`), so one blob cannot claim two true peaks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

__all__ = ["PeakMatch", "match_peaks", "peak_coordinates"]


@dataclass(frozen=True)
class PeakMatch:
    """The outcome of :func:`match_peaks`.

    ``pairs`` (k, 2) holds (found index, true index); ``errors`` (k,) the Euclidean centroid distance of each
    pair in (frame, y, z).
    """

    recall: float
    precision: float
    pairs: NDArray[np.intp]
    errors: NDArray[np.float64]

    @property
    def mean_error(self) -> float:
        """Mean centroid distance of the matched pairs (NaN when nothing matched)."""
        return float(self.errors.mean()) if self.errors.size else float("nan")

    @property
    def p95_error(self) -> float:
        """95th percentile of the matched centroid distances (NaN when nothing matched)."""
        return float(np.percentile(self.errors, 95)) if self.errors.size else float("nan")


def peak_coordinates(peaks: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
    """(n, 3) array of (frame, y, z) from peak or truth records."""
    return np.array([[p["frame"], p["y"], p["z"]] for p in peaks], dtype=np.float64).reshape(-1, 3)


def match_peaks(
    found: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]], *, radius: float = 1.5
) -> PeakMatch:
    """Pair found peaks with true peaks one-to-one within ``radius`` and score the pairing."""
    a, b = peak_coordinates(found), peak_coordinates(truth)
    if len(a) == 0 or len(b) == 0:
        empty = np.zeros((0, 2), dtype=np.intp)
        return PeakMatch(
            recall=0.0 if len(b) else 1.0, precision=0.0 if len(a) else 1.0, pairs=empty, errors=np.zeros(0)
        )
    distance = cdist(a, b)
    # Pairs further apart than the radius must never be chosen over leaving both unmatched.
    cost = np.where(distance <= radius, distance, 1e6)
    rows, cols = linear_sum_assignment(cost)
    ok = distance[rows, cols] <= radius
    pairs = np.stack([rows[ok], cols[ok]], axis=1).astype(np.intp)
    return PeakMatch(
        recall=len(pairs) / len(b),
        precision=len(pairs) / len(a),
        pairs=pairs,
        errors=distance[rows[ok], cols[ok]],
    )
