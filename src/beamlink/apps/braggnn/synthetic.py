"""Seeded synthetic Bragg peaks with known sub-pixel centres (reference note §4.4).

- :func:`make_patches` — ``(n, 11, 11)`` patches, one pseudo-Voigt peak each
  (:mod:`~beamlink.apps.braggnn.peakshape`), as the network and the least-squares baseline see them.
- :func:`make_frame` — a larger detector frame holding separated peaks; crop it with
  :func:`beamlink.apps.braggnn.patches.extract_patches` to get patches the way the real pipeline does
  (around each peak's brightest pixel, not around its true centre).

Draws follow the prototype of the reference note: for each peak A ~ U(100, 2000) counts, Γ_x, Γ_y ~ U(1.5, 4)
px, μ ~ U(0, 1), background ~ U(0, 10) counts; the pixels are then Poisson-sampled. In :func:`make_patches`
the centre is the patch centre + U(-½, ½) + a whole shift of -1, 0 or +1 px per axis, which mimics the ±1 px
crop augmentation of BraggNN's training, so a network cannot learn "the peak is always in pixel 5".
Predicting the patch centre for every patch then errs by about 1.15 px on average: the bar to beat.

Centres are ``(x, y)`` = (column, row) in pixels, a pixel's centre at its integer index — BraggNN's order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from beamlink.apps.braggnn._checks import integer
from beamlink.apps.braggnn.peakshape import pseudo_voigt_2d
from beamlink.errors import InvalidInput

__all__ = ["PATCH_SIZE", "make_frame", "make_patches"]

PATCH_SIZE = 11
"""Side of a BraggNN patch in pixels (the released model's ``psz``)."""

_BLOCK = 65_536


def _range(value: tuple[float, float], *, field: str, minimum: float = 0.0) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not (np.isfinite(low) and np.isfinite(high) and minimum <= low <= high):
        raise InvalidInput(
            f"{field} must be a range (low, high) with {minimum} <= low <= high, got {tuple(value)}.",
            details={"field": field},
        )
    return low, high


def _draw_shapes(
    n: int,
    rng: np.random.Generator,
    amplitude: tuple[float, float],
    fwhm_px: tuple[float, float],
    background: tuple[float, float],
) -> NDArray[np.float64]:
    """(n, 5) columns A, Γ_x, Γ_y, μ, bg drawn from the given ranges (the centres are drawn by the caller)."""
    a = _range(amplitude, field="amplitude")
    g = _range(fwhm_px, field="fwhm_px", minimum=0.3)
    b = _range(background, field="background")
    return np.column_stack(
        [
            rng.uniform(*a, size=n),
            rng.uniform(*g, size=n),
            rng.uniform(*g, size=n),
            rng.uniform(0.0, 1.0, size=n),
            rng.uniform(*b, size=n),
        ]
    )


def make_patches(
    n_patches: int,
    *,
    seed: int = 0,
    patch_size: int = PATCH_SIZE,
    amplitude: tuple[float, float] = (100.0, 2000.0),
    fwhm_px: tuple[float, float] = (1.5, 4.0),
    background: tuple[float, float] = (0.0, 10.0),
    max_shift_px: int = 1,
    poisson: bool = True,
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Return ``(patches, centres)``: float32 counts ``(n, size, size)`` and true centres ``(n, 2)`` (x, y).

    ``poisson=False`` returns the expected counts (no noise), for exactness checks. ``max_shift_px`` is the
    largest whole-pixel offset of the centre from the patch centre (0 keeps it within ±½ px).
    """
    count = integer(n_patches, field="n_patches", minimum=1, hint="Ask for at least one patch.")
    size = integer(patch_size, field="patch_size", minimum=5, hint="BraggNN uses 11.")
    shift = integer(max_shift_px, field="max_shift_px", minimum=0)
    limit = (size - 1) // 2 - 2  # keeps every centre at least 1.5 px inside the patch
    if shift > limit:
        raise InvalidInput(
            f"max_shift_px = {shift} would put peaks on the edge of a {size}-pixel patch; "
            f"use at most {limit} (BraggNN's crop augmentation uses 1).",
            details={"field": "max_shift_px"},
        )
    rng = np.random.default_rng(seed)
    middle = (size - 1) / 2.0
    centres = (
        middle + rng.uniform(-0.5, 0.5, size=(count, 2)) + rng.integers(-shift, shift + 1, size=(count, 2))
    )
    params = np.column_stack([centres, _draw_shapes(count, rng, amplitude, fwhm_px, background)])
    y, x = np.indices((size, size), dtype=np.float64)
    counts = np.empty((count, size, size), dtype=np.float32)
    # Rendered in blocks: the model's float64 temporaries for 10⁶ patches would need several GB at once.
    for start in range(0, count, _BLOCK):
        expected = pseudo_voigt_2d(params[start : start + _BLOCK], x, y)
        counts[start : start + _BLOCK] = rng.poisson(expected) if poisson else expected
    return counts, centres


def make_frame(
    n_peaks: int = 40,
    *,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    amplitude: tuple[float, float] = (100.0, 2000.0),
    fwhm_px: tuple[float, float] = (1.5, 4.0),
    background: float = 5.0,
    min_separation_px: float = 14.0,
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Return ``(frame, centres)``: a Poisson-noisy float32 frame and its true peak centres ``(n, 2)`` (x, y).

    Peaks keep ``min_separation_px`` apart (so each 11x11 crop holds one peak, as BraggNN's training set
    does) and a patch's half-width plus one pixel from the edges. The background is flat.
    """
    count = integer(n_peaks, field="n_peaks", minimum=0)
    height = integer(shape[0], field="shape", minimum=PATCH_SIZE + 4, hint="Use frames of at least 15x15.")
    width = integer(shape[1], field="shape", minimum=PATCH_SIZE + 4, hint="Use frames of at least 15x15.")
    flat = _range((background, background), field="background")[0]
    rng = np.random.default_rng(seed)
    margin = PATCH_SIZE // 2 + 1.5
    low, high = np.array([margin, margin]), np.array([width - 1 - margin, height - 1 - margin])
    centres = np.zeros((0, 2))
    misses = 0
    # Random sequential placement; stop after many misses in a row (the frame is full).
    while len(centres) < count and misses < 2000:
        point = rng.uniform(low, high)
        if len(centres) and np.hypot(*(centres - point).T).min() < min_separation_px:
            misses += 1
            continue
        misses = 0
        centres = np.vstack([centres, point])
    if len(centres) < count:
        raise InvalidInput(
            f"could not place {count} peaks {min_separation_px} px apart on a {height}x{width} frame "
            f"(placed {len(centres)}); ask for fewer peaks or a larger frame.",
            details={"field": "n_peaks"},
        )
    shapes = _draw_shapes(count, rng, amplitude, fwhm_px, (0.0, 0.0))
    params = np.column_stack([centres, shapes])
    y, x = np.indices((height, width), dtype=np.float64)
    expected = np.full((height, width), flat)
    for row in params:  # one peak at a time: an (n, h, w) temporary would be large for big frames
        expected += pseudo_voigt_2d(row, x, y)
    frame = rng.poisson(expected).astype(np.float32)
    return frame, centres
