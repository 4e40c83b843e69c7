"""Centre errors in pixels between predicted and true centres, as the paper reports them.

The error of one peak is the Euclidean distance between its predicted and true (x, y) centre; the paper
reports the mean and the 50th/75th/95th/99.5th percentiles (reference note §4.2).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import real_array, same_shape
from beamlink.errors import InvalidInput

__all__ = ["centre_errors", "error_summary", "mean_centre_error"]

_PERCENTILES = (50.0, 75.0, 95.0, 99.5)


def centre_errors(predicted: object, true: object) -> NDArray[np.float64]:
    """``(n,)`` Euclidean distances between ``(n, 2)`` predicted and true centres (same units in, px out)."""
    got = real_array(predicted, field="predicted", ndim=2, axes="(n_peaks, 2)")
    want = real_array(true, field="true", ndim=2, axes="(n_peaks, 2)")
    if got.shape[1] != 2:
        raise InvalidInput(
            f"predicted must be (n_peaks, 2) centres, got shape {got.shape}.",
            details={"field": "predicted", "shape": list(got.shape)},
        )
    same_shape(want.shape, got.shape, field="true", against="predicted")
    errors: NDArray[np.float64] = np.hypot(*(got.astype(np.float64) - want.astype(np.float64)).T)
    return errors


def mean_centre_error(predicted: object, true: object) -> float:
    """Mean of :func:`centre_errors`."""
    return float(centre_errors(predicted, true).mean())


def error_summary(predicted: object, true: object) -> dict[str, float]:
    """JSON-ready ``{"mean", "p50", "p75", "p95", "p99.5", "max"}`` of :func:`centre_errors`, in pixels."""
    errors = centre_errors(predicted, true)
    summary = {"mean": float(errors.mean())}
    for q in _PERCENTILES:
        summary[f"p{q:g}"] = float(np.percentile(errors, q))
    summary["max"] = float(errors.max())
    return summary
