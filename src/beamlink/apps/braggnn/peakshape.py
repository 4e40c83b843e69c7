"""The 2-D pseudo-Voigt peak shape that the generator draws and the least-squares baseline fits.

It is the MIDAS form (reference note §3.1 and §4.4; the same shape as :mod:`beamlink.apps.hedm.pvfit`), one
FWHM Γ per axis shared by the Lorentzian and Gaussian parts, point-sampled at pixel centres:

    I(x, y) = bg + A·[μ·L_x·L_y + (1 - μ)·exp(-4 ln2·((x - x0)²/Γ_x² + (y - y0)²/Γ_y²))],
    L_x = 1 / (1 + 4 (x - x0)²/Γ_x²),   0 ≤ μ ≤ 1,

with x the column and y the row of a pixel, a pixel's centre at its integer index. Parameters are always
ordered as :data:`PARAMETERS`. Both functions broadcast: ``params`` may be ``(7,)`` or ``(n, 7)`` and the
result gains the leading axis.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["PARAMETERS", "pseudo_voigt_2d", "pseudo_voigt_2d_jacobian"]

PARAMETERS = ("x0", "y0", "amplitude", "fwhm_x", "fwhm_y", "mu", "background")

_FOUR_LN2 = 4.0 * np.log(2.0)


def _parts(
    params: NDArray[np.float64], x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], ...]:
    p = np.asarray(params, dtype=np.float64)
    # Trailing singleton axes let (n, 7) parameters broadcast over a (h, w) grid.
    x0, y0, amplitude, fwhm_x, fwhm_y, mu, background = (p[..., i, None, None] for i in range(7))
    u = (x - x0) ** 2 / fwhm_x**2
    v = (y - y0) ** 2 / fwhm_y**2
    lorentz = 1.0 / ((1.0 + 4.0 * u) * (1.0 + 4.0 * v))
    gauss = np.exp(-_FOUR_LN2 * (u + v))
    return x0, y0, amplitude, fwhm_x, fwhm_y, mu, background, u, v, lorentz, gauss


def pseudo_voigt_2d(
    params: NDArray[np.float64], x: NDArray[np.float64], y: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Evaluate the shape above on the pixel grid ``x`` (columns) and ``y`` (rows)."""
    *_, amplitude, _, _, mu, background, _, _, lorentz, gauss = _parts(params, x, y)
    model: NDArray[np.float64] = background + amplitude * (mu * lorentz + (1.0 - mu) * gauss)
    return model


def pseudo_voigt_2d_jacobian(
    params: NDArray[np.float64], x: NDArray[np.float64], y: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Derivatives of :func:`pseudo_voigt_2d` by each parameter, stacked on a new last axis of length 7.

    Analytic, because a finite-difference Jacobian costs seven extra model evaluations per step and makes
    the least-squares baseline several times slower than it needs to be, which would flatter the network.
    """
    x0, y0, amplitude, fwhm_x, fwhm_y, mu, _, u, v, lorentz, gauss = _parts(params, x, y)
    # ∂I/∂u and ∂I/∂v through both profile parts.
    d_lorentz_u = -4.0 * lorentz / (1.0 + 4.0 * u)
    d_lorentz_v = -4.0 * lorentz / (1.0 + 4.0 * v)
    d_gauss = -_FOUR_LN2 * gauss
    d_u = amplitude * (mu * d_lorentz_u + (1.0 - mu) * d_gauss)
    d_v = amplitude * (mu * d_lorentz_v + (1.0 - mu) * d_gauss)
    columns = (
        d_u * (-2.0 * (x - x0) / fwhm_x**2),
        d_v * (-2.0 * (y - y0) / fwhm_y**2),
        mu * lorentz + (1.0 - mu) * gauss,
        d_u * (-2.0 * u / fwhm_x),
        d_v * (-2.0 * v / fwhm_y),
        amplitude * (lorentz - gauss),
        np.ones_like(u),
    )
    shape = np.broadcast_shapes(*(c.shape for c in columns))
    return np.stack([np.broadcast_to(c, shape) for c in columns], axis=-1)
