"""Score found spots against ground truth: one-to-one matching, recall, precision and centroid error.

Found and true positions are paired by minimum total distance (``scipy.optimize.linear_sum_assignment``);
a pair counts as a match when it is at most ``max_distance`` px apart. Then

    recall = matches / true spots,   precision = matches / found spots,

and the centroid error is the distance of each matched pair. Both position sets must use the same
convention (DIALS pixel coordinates in this package).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from beamlink.apps._arrays import positive_float
from beamlink.errors import InvalidInput

__all__ = ["SpotMatch", "match_spots"]


@dataclass(frozen=True)
class SpotMatch:
    """Outcome of matching found spots to true spots.

    Attributes:
        n_true, n_found, n_matched: counts.
        recall: n_matched / n_true (1 when there is no true spot).
        precision: n_matched / n_found (1 when nothing was found).
        errors_px: centroid distance of each matched pair, (n_matched,).
        true_index, found_index: indices of the matched pairs, (n_matched,).
    """

    n_true: int
    n_found: int
    n_matched: int
    recall: float
    precision: float
    errors_px: NDArray[np.float64]
    true_index: NDArray[np.int64]
    found_index: NDArray[np.int64]

    @property
    def mean_error_px(self) -> float:
        """Mean centroid error of the matches (NaN without matches)."""
        return float(self.errors_px.mean()) if self.n_matched else float("nan")

    @property
    def p95_error_px(self) -> float:
        """95th percentile of the centroid error (NaN without matches)."""
        return float(np.percentile(self.errors_px, 95)) if self.n_matched else float("nan")


def _points(value: Any, field: str) -> NDArray[np.float64]:
    arr = np.asarray(value)
    if arr.size == 0:
        return np.empty((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "uif":
        raise InvalidInput(
            f"{field} must be an (n, 2) array of (row, column) positions, got shape {arr.shape}.",
            details={"field": field},
        )
    return arr.astype(np.float64)


def match_spots(found_yx: NDArray[Any], true_yx: NDArray[Any], *, max_distance: float = 2.0) -> SpotMatch:
    """Match found spot centroids to true centres one to one within ``max_distance`` px."""
    found = _points(found_yx, "found_yx")
    truth = _points(true_yx, "true_yx")
    limit = positive_float(max_distance, field="max_distance")
    if found.shape[0] and truth.shape[0]:
        distance = cdist(truth, found)
        # Pairs beyond the limit must never be chosen over leaving a spot unmatched: price them out.
        cost = np.where(distance <= limit, distance, 1e6)
        rows, cols = linear_sum_assignment(cost)
        ok = distance[rows, cols] <= limit
        true_index, found_index = rows[ok].astype(np.int64), cols[ok].astype(np.int64)
        errors = distance[rows, cols][ok]
    else:
        true_index = found_index = np.empty(0, dtype=np.int64)
        errors = np.empty(0)
    n_matched = int(errors.size)
    return SpotMatch(
        n_true=int(truth.shape[0]),
        n_found=int(found.shape[0]),
        n_matched=n_matched,
        recall=n_matched / truth.shape[0] if truth.shape[0] else 1.0,
        precision=n_matched / found.shape[0] if found.shape[0] else 1.0,
        errors_px=errors,
        true_index=true_index,
        found_index=found_index,
    )
