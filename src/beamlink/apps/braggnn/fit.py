"""The conventional baseline: a least-squares 2-D pseudo-Voigt fit per patch (reference note §4.5).

Each patch is fitted with :func:`scipy.optimize.least_squares` (trust-region reflective, analytic Jacobian,
unweighted residuals as MIDAS fits them) to the 7-parameter shape of
:mod:`~beamlink.apps.braggnn.peakshape`. The starting points of all patches are computed at once from
image moments: background = the 10th percentile, centre = the intensity-weighted centroid above it, FWHM =
2.355·(second moment)^½, μ = ½. The fit itself is one call per patch because every patch converges in its own
number of steps; batching them into one solver call would tie all patches to one trust region.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares

from beamlink.apps.braggnn._checks import patch_stack
from beamlink.apps.braggnn.peakshape import pseudo_voigt_2d, pseudo_voigt_2d_jacobian
from beamlink.apps.braggnn.synthetic import PATCH_SIZE

__all__ = ["PatchFits", "fit_centres", "fit_patches", "starting_points"]

log = logging.getLogger(__name__)

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class PatchFits:
    """What :func:`fit_patches` found.

    Attributes:
        params: ``(n, 7)`` fitted parameters in the order of
            :data:`beamlink.apps.braggnn.peakshape.PARAMETERS`.
        converged: ``(n,)`` True where the solver reported success.
        cost: ``(n,)`` half the sum of squared residuals at the solution (counts²).
    """

    params: NDArray[np.float64]
    converged: NDArray[np.bool_]
    cost: NDArray[np.float64]

    @property
    def centres(self) -> NDArray[np.float64]:
        """``(n, 2)`` fitted centres (x, y) in patch pixels."""
        return self.params[:, :2].copy()


def starting_points(patches: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n, 7)`` moment estimates for a ``(n, h, w)`` stack (see the module docstring)."""
    n, height, width = patches.shape
    y, x = np.indices((height, width), dtype=np.float64)
    background = np.percentile(patches.reshape(n, -1), 10, axis=1)
    signal = np.clip(patches - background[:, None, None], 0.0, None)
    total = signal.sum(axis=(1, 2))
    # A flat patch has no signal: start it in the middle rather than divide by zero.
    weight = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    x0 = np.where(total > 0, (signal * x).sum(axis=(1, 2)) * weight, (width - 1) / 2)
    y0 = np.where(total > 0, (signal * y).sum(axis=(1, 2)) * weight, (height - 1) / 2)
    var_x = (signal * (x - x0[:, None, None]) ** 2).sum(axis=(1, 2)) * weight
    var_y = (signal * (y - y0[:, None, None]) ** 2).sum(axis=(1, 2)) * weight
    return np.column_stack(
        [
            x0,
            y0,
            signal.max(axis=(1, 2)),
            _FWHM_PER_SIGMA * np.sqrt(np.maximum(var_x, 0.05)),
            _FWHM_PER_SIGMA * np.sqrt(np.maximum(var_y, 0.05)),
            np.full(n, 0.5),
            background,
        ]
    )


def fit_patches(patches: object, *, patch_size: int = PATCH_SIZE) -> PatchFits:
    """Fit every patch of a ``(n, patch_size, patch_size)`` stack; see the module docstring.

    The centre is bounded to the patch, widths to [0.3, 2·patch_size] px, μ to [0, 1] and the amplitude to
    ≥ 0, so a fit cannot wander off to a neighbouring peak or turn into a dip.
    """
    stack = patch_stack(patches, patch_size=patch_size)
    n, height, width = stack.shape
    y, x = np.indices((height, width), dtype=np.float64)
    lower = np.array([0.0, 0.0, 0.0, 0.3, 0.3, 0.0, -np.inf])
    upper = np.array([width - 1.0, height - 1.0, np.inf, 2.0 * width, 2.0 * height, 1.0, np.inf])
    starts = np.clip(starting_points(stack), lower + 1e-6, upper - 1e-6)
    params = np.empty((n, 7))
    converged = np.empty(n, dtype=bool)
    cost = np.empty(n)
    for k in range(n):
        data = stack[k]

        def residual(p: NDArray[np.float64], data: NDArray[np.float64] = data) -> NDArray[np.float64]:
            return (pseudo_voigt_2d(p, x, y) - data).ravel()

        def jacobian(p: NDArray[np.float64]) -> NDArray[np.float64]:
            return pseudo_voigt_2d_jacobian(p, x, y).reshape(-1, 7)

        solution = least_squares(residual, starts[k], jac=jacobian, bounds=(lower, upper), x_scale="jac")
        params[k], converged[k], cost[k] = solution.x, solution.success, solution.cost
    if not converged.all():
        log.debug("%d of %d pseudo-Voigt fits did not converge", int((~converged).sum()), n)
    return PatchFits(params=params, converged=converged, cost=cost)


def fit_centres(patches: object, *, patch_size: int = PATCH_SIZE) -> NDArray[np.float64]:
    """``(n, 2)`` least-squares centres (x, y) in patch pixels: :func:`fit_patches` without the extras."""
    return fit_patches(patches, patch_size=patch_size).centres
