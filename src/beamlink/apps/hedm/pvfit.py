"""Pseudo-Voigt refinement of peak centres (MIDAS ``doPeakFit 1``, one peak per region, in (y, z)).

The MIDAS peak shape with a flat background, per axis one FWHM Γ shared by the Gaussian and Lorentzian parts:

    I(y, z) = bg + A·[μ·L_y·L_z + (1 - μ)·exp(-4 ln2·((y - y_c)²/Γ_y² + (z - z_c)²/Γ_z²))],
    L_x = 1 / (1 + 4 (x - x_c)²/Γ_x²),   0 ≤ μ ≤ 1.

:func:`refine_peaks` fits it to each peak's ω-summed image (frames ``frame_min..frame_max``, a box of
``2·half_width + 1`` pixels around the centroid) with :func:`scipy.optimize.least_squares` and replaces the
peak's ``y``/``z`` with the fitted centre. ω keeps its centroid value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares

from beamlink.apps._arrays import integer
from beamlink.apps.hedm.peaksearch import correct_frames
from beamlink.apps.hedm.records import Peak, PseudoVoigtFit
from beamlink.errors import InvalidInput

__all__ = ["fit_pseudo_voigt_2d", "pseudo_voigt_2d", "refine_peaks"]

log = logging.getLogger(__name__)

_FOUR_LN2 = 4.0 * np.log(2.0)


def pseudo_voigt_2d(
    params: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The model above; ``params`` = (y_c, z_c, A, Γ_y, Γ_z, μ, bg)."""
    y_c, z_c, amplitude, fwhm_y, fwhm_z, mu, background = params
    dy2 = (y - y_c) ** 2 / fwhm_y**2
    dz2 = (z - z_c) ** 2 / fwhm_z**2
    lorentz = 1.0 / ((1.0 + 4.0 * dy2) * (1.0 + 4.0 * dz2))
    gauss = np.exp(-_FOUR_LN2 * (dy2 + dz2))
    model: NDArray[np.float64] = background + amplitude * (mu * lorentz + (1.0 - mu) * gauss)
    return model


def fit_pseudo_voigt_2d(image: NDArray[np.float64]) -> PseudoVoigtFit:
    """Fit :func:`pseudo_voigt_2d` to ``image`` (index coordinates); start from moments of the image."""
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2 or min(data.shape) < 3 or not np.isfinite(data).all():
        raise InvalidInput(
            f"image must be a finite 2-D array of at least 3x3 pixels, got shape {data.shape}; "
            "widen the box (half_width) or check the frames.",
            details={"field": "image"},
        )
    grid = np.indices(data.shape, dtype=np.float64)
    y: NDArray[np.float64] = grid[0]
    z: NDArray[np.float64] = grid[1]
    background = float(np.percentile(data, 10))
    signal = np.clip(data - background, 0.0, None)
    total = signal.sum()
    if total <= 0:
        raise InvalidInput(
            "image holds no signal above its background; nothing to fit.", details={"field": "image"}
        )
    y0, z0 = (signal * y).sum() / total, (signal * z).sum() / total
    # FWHM = 2·sqrt(2 ln2)·sigma for a Gaussian; the second moments give sigma.
    fwhm_y = 2.3548 * np.sqrt(max((signal * (y - y0) ** 2).sum() / total, 0.05))
    fwhm_z = 2.3548 * np.sqrt(max((signal * (z - z0) ** 2).sum() / total, 0.05))
    start = np.array([y0, z0, signal.max(), fwhm_y, fwhm_z, 0.5, background])
    upper_width = 2.0 * max(data.shape)
    lower = [0.0, 0.0, 0.0, 0.3, 0.3, 0.0, -np.inf]
    upper = [data.shape[0] - 1.0, data.shape[1] - 1.0, np.inf, upper_width, upper_width, 1.0, np.inf]
    start = np.clip(start, np.array(lower) + 1e-9, np.array(upper) - 1e-9)

    def residual(params: NDArray[np.float64]) -> NDArray[np.float64]:
        return (pseudo_voigt_2d(params, y, z) - data).ravel()

    solution = least_squares(residual, start, bounds=(lower, upper), x_scale="jac")
    y_c, z_c, amplitude, g_y, g_z, mu, bg = (float(v) for v in solution.x)
    return PseudoVoigtFit(
        y=y_c,
        z=z_c,
        amplitude=amplitude,
        fwhm_y=g_y,
        fwhm_z=g_z,
        mu=mu,
        background=bg,
        y_centroid=float(y0),
        z_centroid=float(z0),
    )


def refine_peaks(
    frames: object,
    peaks: Sequence[Mapping[str, Any]],
    *,
    dark: object = 0.0,
    flood: object | None = None,
    first_frame: int = 0,
    half_width: int = 4,
) -> list[Peak]:
    """Fit each peak's ω-summed image and return copies whose ``y``/``z`` are the pseudo-Voigt centre.

    ``frames`` must hold every frame of every peak: frame ``f`` of the scan is ``frames[f - first_frame]``.
    A peak whose fit does not converge inside its box keeps its centroid and gets no ``fit`` entry.
    """
    corrected = correct_frames(frames, dark=dark, flood=flood)
    offset = integer(first_frame, field="first_frame", minimum=0)
    half = integer(half_width, field="half_width", minimum=1, maximum=50, hint="Use ≈ 3 peak widths, e.g. 4.")
    n_frames = corrected.shape[0]
    refined: list[Peak] = []
    for position, peak in enumerate(peaks):
        low, high = int(peak["frame_min"]) - offset, int(peak["frame_max"]) - offset
        if low < 0 or high >= n_frames:
            raise InvalidInput(
                f"peaks[{position}] spans frames {peak['frame_min']}..{peak['frame_max']} but frames holds "
                f"{offset}..{offset + n_frames - 1}; pass the frames covering every peak (and first_frame).",
                details={"field": f"peaks[{position}]"},
            )
        y0 = max(0, round(peak["y"]) - half)
        z0 = max(0, round(peak["z"]) - half)
        image = corrected[
            low : high + 1, y0 : round(peak["y"]) + half + 1, z0 : round(peak["z"]) + half + 1
        ].sum(0)
        copy = cast(Peak, {key: value for key, value in peak.items() if key != "fit"})
        try:
            fit = fit_pseudo_voigt_2d(image)
        except (InvalidInput, ValueError) as exc:
            log.debug("peak %d: no fit (%s)", position, exc)
            refined.append(copy)
            continue
        fit["y"] += y0
        fit["z"] += z0
        fit["y_centroid"] = float(peak["y"])
        fit["z_centroid"] = float(peak["z"])
        if abs(fit["y"] - peak["y"]) <= half and abs(fit["z"] - peak["z"]) <= half:
            copy["y"], copy["z"], copy["fit"] = fit["y"], fit["z"], fit
        refined.append(copy)
    return refined
