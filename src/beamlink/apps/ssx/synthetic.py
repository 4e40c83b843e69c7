"""Synthetic serial-crystallography stills: Gaussian Bragg spots on a noisy background, with ground truth.

Image model (expected counts per pixel, then Poisson-sampled):

    λ(y, x) = b·(1 + g·exp(-(r - r_ring)² / (2 w²))) + Σ_k N_k ∫_pixel G(y, x; c_k, sigma_k)

with background b photons/px, a smooth radial "solvent ring" of relative height g at r_ring = 0.3·width and
width w = 0.05·width (r from the image centre), and K spots of integrated N_k photons, 2-D Gaussians of width
sigma_k centred at c_k, integrated exactly over each pixel (differences of the normal CDF). Spots are at least
``min_separation_px`` apart and away from the edges. Optional hot pixels (single-pixel spikes that the
minimum spot size must reject) and a masked horizontal panel gap.

Coordinates follow DIALS: pixel [i, j] covers [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5).
Defaults follow the prototype of ``science-clients.md`` §2.3 (b = 2, g = 0.5, sigma_k = 0.8-1.5 px,
200-2000 photons, 12 px apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from beamlink.apps._arrays import positive_float, positive_int
from beamlink.errors import InvalidInput

__all__ = ["StillConfig", "StillTruth", "make_still", "make_stills"]

_HALF_WINDOW = 6  # render each spot on a 13x13 patch: at least 4 widths for sigma <= 1.5 px


@dataclass(frozen=True)
class StillConfig:
    """Parameters of the synthetic stills (pixels and photons)."""

    shape: tuple[int, int] = (512, 512)
    background: float = 2.0
    ring_gain: float = 0.5
    sigma_px: tuple[float, float] = (0.8, 1.5)
    photons: tuple[float, float] = (200.0, 2000.0)
    min_separation_px: float = 12.0
    edge_margin_px: int = 8
    n_hot_pixels: int = 0
    hot_pixel_counts: int = 2000
    panel_gap_px: int = 0

    def __post_init__(self) -> None:
        for axis in self.shape:
            positive_int(axis, field="shape", minimum=2 * self.edge_margin_px + 1)
        positive_float(self.background, field="background")
        for field, (lo, hi) in (("sigma_px", self.sigma_px), ("photons", self.photons)):
            if not 0 < lo <= hi:
                raise InvalidInput(
                    f"{field} must be a range (low, high) with 0 < low <= high, got {(lo, hi)}.",
                    details={"field": field},
                )
        if self.sigma_px[1] * 4 > _HALF_WINDOW or self.edge_margin_px < _HALF_WINDOW:
            raise InvalidInput(
                f"spots are rendered on ±{_HALF_WINDOW} px patches: keep sigma_px <= {_HALF_WINDOW / 4} and "
                f"edge_margin_px >= {_HALF_WINDOW}.",
                details={"field": "sigma_px"},
            )

    def mask(self) -> NDArray[np.bool_]:
        """True for pixels that record data (False in the panel gap)."""
        mask = np.ones(self.shape, dtype=bool)
        if self.panel_gap_px:
            top = (self.shape[0] - self.panel_gap_px) // 2
            mask[top : top + self.panel_gap_px] = False
        return mask


@dataclass(frozen=True)
class StillTruth:
    """Ground truth of one still.

    Attributes:
        centers_yx: spot centres (row, column) in DIALS pixel coordinates, (K, 2).
        photons: integrated photons of each spot, (K,).
        sigma_px: Gaussian width of each spot, (K,).
        hot_pixels_yx: positions (row, column) of single hot pixels, array indices, (n_hot, 2).
    """

    centers_yx: NDArray[np.float64]
    photons: NDArray[np.float64]
    sigma_px: NDArray[np.float64]
    hot_pixels_yx: NDArray[np.int64]

    @property
    def n_spots(self) -> int:
        """Number of spots K."""
        return int(self.centers_yx.shape[0])


def _background(config: StillConfig) -> NDArray[np.float64]:
    height, width = config.shape
    rows, cols = np.indices(config.shape, dtype=np.float64)
    r = np.hypot(rows + 0.5 - height / 2, cols + 0.5 - width / 2)
    ring = np.exp(-((r - 0.3 * width) ** 2) / (2 * (0.05 * width) ** 2))
    return config.background * (1.0 + config.ring_gain * ring)


def _place(n: int, config: StillConfig, rng: np.random.Generator) -> NDArray[np.float64]:
    """``n`` points at least ``min_separation_px`` apart, inside the margins and off masked rows."""
    mask = config.mask()
    lo = float(config.edge_margin_px)
    hi = np.array(config.shape, dtype=np.float64) - config.edge_margin_px
    placed = np.empty((0, 2))
    stalled = 0
    while placed.shape[0] < n and stalled < 5:  # rejection sampling in rounds; stop when rounds stop helping
        before = placed.shape[0]
        candidates = rng.uniform(lo, hi, size=(4 * n, 2))
        # Keep spot patches clear of the gap, so every true spot is measurable.
        rows = np.floor(candidates[:, 0]).astype(int)
        near_gap = np.zeros(candidates.shape[0], dtype=bool)
        for dy in range(-_HALF_WINDOW, _HALF_WINDOW + 1):
            near_gap |= ~mask[np.clip(rows + dy, 0, config.shape[0] - 1), 0]
        for point in candidates[~near_gap]:
            if placed.shape[0] == n:
                break
            if placed.shape[0] == 0 or np.min(np.hypot(*(placed - point).T)) >= config.min_separation_px:
                placed = np.vstack([placed, point])
        stalled = stalled + 1 if placed.shape[0] == before else 0
    if placed.shape[0] < n:
        raise InvalidInput(
            f"could not place {n} spots {config.min_separation_px} px apart on a {config.shape} image; "
            f"ask for fewer spots or a larger image.",
            details={"field": "n_spots"},
        )
    return placed


def _render(
    centers: NDArray[np.float64],
    photons: NDArray[np.float64],
    sigma: NDArray[np.float64],
    shape: tuple[int, int],
) -> NDArray[np.float64]:
    """Expected counts of the spots: separable pixel-integrated Gaussians scattered onto the image."""
    image = np.zeros(shape)
    if centers.shape[0] == 0:
        return image
    offsets = np.arange(-_HALF_WINDOW, _HALF_WINDOW + 1)
    corner = np.floor(centers).astype(np.int64)  # pixel holding the centre
    weights = []
    for axis in (0, 1):
        pix = corner[:, axis, None] + offsets  # (K, window) pixel indices
        # Fraction of a 1-D Gaussian falling in pixel [i, i+1).
        upper = ndtr((pix + 1 - centers[:, axis, None]) / sigma[:, None])
        lower = ndtr((pix - centers[:, axis, None]) / sigma[:, None])
        weights.append((pix, upper - lower))
    (rows, wy), (cols, wx) = weights
    patches = photons[:, None, None] * wy[:, :, None] * wx[:, None, :]
    flat = rows[:, :, None] * shape[1] + cols[:, None, :]
    image.ravel()[:] = np.bincount(flat.ravel(), weights=patches.ravel(), minlength=image.size)
    return image


def _hot_pixels(
    config: StillConfig, centers: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.int64]:
    """Hot pixel positions off the spot patches: a hot pixel on a spot would change the truth, not test the
    size filter."""
    hot = np.empty((0, 2), dtype=np.int64)
    while hot.shape[0] < config.n_hot_pixels:
        candidate = np.array([rng.integers(0, config.shape[0]), rng.integers(0, config.shape[1])])
        if centers.shape[0] and np.min(np.abs(centers - (candidate + 0.5)).max(axis=1)) <= _HALF_WINDOW:
            continue
        hot = np.vstack([hot, candidate])
    return hot


def make_still(
    n_spots: int, *, config: StillConfig | None = None, rng: np.random.Generator
) -> tuple[NDArray[np.int32], StillTruth]:
    """One still with ``n_spots`` spots; returns (image (H, W) int32 counts, truth). Masked pixels read 0."""
    cfg = config or StillConfig()
    n = positive_int(n_spots, field="n_spots", minimum=0)
    centers = _place(n, cfg, rng)
    sigma = rng.uniform(*cfg.sigma_px, size=n)
    photons = rng.uniform(*cfg.photons, size=n)
    expected = _background(cfg) + _render(centers, photons, sigma, cfg.shape)
    image = rng.poisson(expected).astype(np.int32)
    hot = _hot_pixels(cfg, centers, rng)
    image[hot[:, 0], hot[:, 1]] = cfg.hot_pixel_counts
    image[~cfg.mask()] = 0
    return image, StillTruth(centers_yx=centers, photons=photons, sigma_px=sigma, hot_pixels_yx=hot)


def make_stills(
    spot_counts: Sequence[int], *, config: StillConfig | None = None, seed: int = 0
) -> tuple[NDArray[np.int32], list[StillTruth], NDArray[np.bool_]]:
    """A run of stills, one per entry of ``spot_counts`` (0 gives a blank frame).

    Returns (stack (N, H, W) int32, truths, mask (H, W) bool).
    """
    cfg = config or StillConfig()
    if len(spot_counts) == 0:
        raise InvalidInput(
            "spot_counts is empty; give one spot count per frame.", details={"field": "spot_counts"}
        )
    rng = np.random.default_rng(seed)
    images, truths = [], []
    for count in spot_counts:
        image, truth = make_still(count, config=cfg, rng=rng)
        images.append(image)
        truths.append(truth)
    return np.stack(images), truths, cfg.mask()
