"""Spot finding on a still: the DIALS "dispersion" threshold, 4-connected spots, filters and centroids.

Threshold (DIALS ``dials/algorithms/image/threshold/local.h``). For every pixel take the (2k_y+1)x(2k_x+1)
window (default 7x7) cut at the image edges; over its m valid pixels (mask True and I < 2²⁴) let
x = Σ I and y = Σ I². A pixel is **strong** iff

1. it is valid, m ≥ min_local, x ≥ 0 and I > global_threshold;
2. m·y - x² - g·x·(m-1) > g·x·n_b·√(2(m-1))    — the index of dispersion s²/μ is above
   g·(1 + n_b·√(2/(m-1))), i.e. the window is not plain Poisson background (n_b = sigma_background);
3. m·I - x > n_s·√(g·x·m)                        — I - μ > n_s·√(g·μ) (n_s = sigma_strong),

with g the detector gain. The window sums come from summed-area tables (cumulative sums, slicing only).

Spots are the 4-connected components of strong pixels (``scipy.ndimage.label``). A spot is kept when
min_spot_size ≤ n_pixels ≤ max_spot_size and its centroid lies within max_separation px of its brightest
pixel. Centroid = intensity-weighted mean of the raw pixel values (no background subtraction, as DIALS
``centroid_valid``); intensity = their sum. Coordinates follow DIALS: pixel [i, j] has its centre at
(i + 0.5, j + 0.5). An image with more than max_strong_pixel_fraction strong pixels is rejected (no spots):
DIALS stops there, since such a threshold is finding ice or a bad frame, not Bragg spots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from beamlink.apps._arrays import positive_float, positive_int, real_array, same_shape
from beamlink.errors import InvalidInput

__all__ = [
    "FrameSpots",
    "SpotFinderParams",
    "SpotTable",
    "box_sums",
    "dispersion_threshold",
    "filter_spots",
    "find_spots",
    "label_spots",
    "measure_spots",
]

OVERLOAD = 1 << 24  # DIALS treats values at or above 2²⁴ as invalid (overloaded or flagged)
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class SpotFinderParams:
    """DIALS ``find_spots`` parameters (defaults are the DIALS defaults for a pixel-array detector).

    Attributes:
        kernel_size: half-widths (k_y, k_x) of the local window; (3, 3) is a 7x7 window.
        sigma_background: n_b of the dispersion test.
        sigma_strong: n_s of the strong-pixel test.
        gain: detector gain g (1 for photon counting).
        global_threshold: a strong pixel must exceed this value.
        min_local: minimum number of valid pixels in the window.
        min_spot_size, max_spot_size: allowed spot sizes in pixels.
        max_separation: largest centroid-to-brightest-pixel distance, pixels.
        max_strong_pixel_fraction: above this fraction of strong pixels the image is rejected.
    """

    kernel_size: tuple[int, int] = (3, 3)
    sigma_background: float = 6.0
    sigma_strong: float = 3.0
    gain: float = 1.0
    global_threshold: float = 0.0
    min_local: int = 2
    min_spot_size: int = 3
    max_spot_size: int = 1000
    max_separation: float = 2.0
    max_strong_pixel_fraction: float = 0.25

    def __post_init__(self) -> None:
        for k in self.kernel_size:
            positive_int(k, field="kernel_size")
        positive_float(self.sigma_background, field="sigma_background")
        positive_float(self.sigma_strong, field="sigma_strong")
        positive_float(self.gain, field="gain")
        positive_int(self.min_local, field="min_local", minimum=2)
        positive_int(self.min_spot_size, field="min_spot_size")
        positive_int(self.max_spot_size, field="max_spot_size", minimum=self.min_spot_size)
        positive_float(self.max_separation, field="max_separation")
        positive_float(self.max_strong_pixel_fraction, field="max_strong_pixel_fraction")


@dataclass(frozen=True)
class SpotTable:
    """Spots of one image (all arrays have n rows).

    Attributes:
        centroid_yx: intensity-weighted centroid (row, column), DIALS pixel coordinates, (n, 2) float64.
        intensity: summed counts, (n,) float64.
        n_pixels: strong pixels in the spot, (n,) int64.
        peak_yx: array index (row, column) of the brightest pixel, (n, 2) int64.
        bbox: bounding box (row0, row1, col0, col1), half-open array indices, (n, 4) int64.
    """

    centroid_yx: NDArray[np.float64]
    intensity: NDArray[np.float64]
    n_pixels: NDArray[np.int64]
    peak_yx: NDArray[np.int64]
    bbox: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.intensity.shape[0])

    @classmethod
    def empty(cls) -> SpotTable:
        """A table with no spots."""
        return cls(
            centroid_yx=np.empty((0, 2)),
            intensity=np.empty(0),
            n_pixels=np.empty(0, dtype=np.int64),
            peak_yx=np.empty((0, 2), dtype=np.int64),
            bbox=np.empty((0, 4), dtype=np.int64),
        )

    def select(self, keep: NDArray[np.bool_]) -> SpotTable:
        """The spots where ``keep`` is True."""
        return SpotTable(
            centroid_yx=self.centroid_yx[keep],
            intensity=self.intensity[keep],
            n_pixels=self.n_pixels[keep],
            peak_yx=self.peak_yx[keep],
            bbox=self.bbox[keep],
        )

    def to_dict(self) -> dict[str, list[Any]]:
        """Plain lists (JSON-serialisable), one entry per spot."""
        return {
            "centroid_yx": self.centroid_yx.tolist(),
            "intensity": self.intensity.tolist(),
            "n_pixels": self.n_pixels.tolist(),
            "peak_yx": self.peak_yx.tolist(),
            "bbox": self.bbox.tolist(),
        }


@dataclass(frozen=True)
class FrameSpots:
    """Spot-finding outcome for one image.

    Attributes:
        spots: the spots that passed the filters.
        n_strong_pixels: pixels that passed the threshold.
        strong_fraction: n_strong_pixels / valid pixels.
        rejected: True when strong_fraction exceeded max_strong_pixel_fraction (``spots`` is then empty).
    """

    spots: SpotTable
    n_strong_pixels: int
    strong_fraction: float
    rejected: bool


def box_sums(values: NDArray[Any], kernel_size: tuple[int, int]) -> NDArray[np.float64]:
    """Σ over the (2k_y+1)x(2k_x+1) window around every pixel, the window cut at the image edges.

    Zero padding plus a summed-area table: S = cumsum(cumsum(pad(values))), then each window sum is
    S[y1, x1] - S[y0, x1] - S[y1, x0] + S[y0, x0], taken for all pixels at once with slices. Equals
    ``scipy.ndimage.uniform_filter(values, mode="constant") x window area``, but exact for integer data
    (float64 sums are exact below 2⁵³).
    """
    ky, kx = kernel_size
    height, width = values.shape
    table = np.zeros((height + 2 * ky + 1, width + 2 * kx + 1))
    table[ky + 1 : ky + 1 + height, kx + 1 : kx + 1 + width] = values
    np.cumsum(table, axis=0, out=table)
    np.cumsum(table, axis=1, out=table)
    wy, wx = 2 * ky + 1, 2 * kx + 1
    return table[wy:, wx:] - table[:-wy, wx:] - table[wy:, :-wx] + table[:-wy, :-wx]


def _valid_pixels(image: NDArray[np.float64], mask: NDArray[np.bool_] | None) -> NDArray[np.bool_]:
    valid = image < OVERLOAD
    if mask is not None:
        valid &= mask
    return valid


def _check_image(image: object, mask: object | None) -> tuple[NDArray[np.float64], NDArray[np.bool_] | None]:
    arr = real_array(image, field="image", ndim=2, axes="(height, width)")
    if mask is None:
        return np.asarray(arr, dtype=np.float64), None
    mask_arr = np.asarray(mask)
    same_shape(mask_arr.shape, arr.shape, field="mask", against="image")
    if mask_arr.dtype != np.bool_:
        raise InvalidInput(
            f"mask must be boolean (True = pixel records data), got dtype {mask_arr.dtype}; "
            f"pass mask.astype(bool).",
            details={"field": "mask"},
        )
    return np.asarray(arr, dtype=np.float64), mask_arr


def _threshold(
    image: NDArray[np.float64], valid: NDArray[np.bool_], params: SpotFinderParams
) -> NDArray[np.bool_]:
    """The three DIALS conditions on an already-checked float64 image."""
    signal = np.where(valid, image, 0.0)
    m = box_sums(valid.astype(np.float64), params.kernel_size)
    x = box_sums(signal, params.kernel_size)
    y = box_sums(signal * signal, params.kernel_size)
    g = params.gain
    with np.errstate(invalid="ignore"):
        not_background = (m * y - x * x - g * x * (m - 1)) > g * x * params.sigma_background * np.sqrt(
            2.0 * np.maximum(m - 1, 0.0)
        )
        strong = (m * image - x) > params.sigma_strong * np.sqrt(np.maximum(g * x * m, 0.0))
    return (
        valid
        & (m >= params.min_local)
        & (x >= 0)
        & (image > params.global_threshold)
        & not_background
        & strong
    )


def dispersion_threshold(
    image: NDArray[Any], mask: NDArray[np.bool_] | None = None, params: SpotFinderParams | None = None
) -> NDArray[np.bool_]:
    """Strong-pixel map (H, W) of ``image`` by the DIALS dispersion test (see the module docstring)."""
    arr, mask_arr = _check_image(image, mask)
    return _threshold(arr, _valid_pixels(arr, mask_arr), params or SpotFinderParams())


def label_spots(strong: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
    """4-connected components of the strong pixels: (labels (H, W) int32, 0 = background; count)."""
    labels, count = ndimage.label(strong, structure=_FOUR_CONNECTED, output=np.int32)
    return labels, int(count)


def measure_spots(image: NDArray[Any], labels: NDArray[np.int32], count: int) -> SpotTable:
    """Centroid, intensity, size, brightest pixel and bounding box of labels 1..count."""
    if count == 0:
        return SpotTable.empty()
    arr = np.asarray(image, dtype=np.float64)
    width = arr.shape[1]
    flat_labels = labels.ravel()
    where = np.flatnonzero(flat_labels)
    lab = flat_labels[where]
    values = arr.ravel()[where]
    rows, cols = np.divmod(where, width)
    n_pixels = np.bincount(lab, minlength=count + 1)[1:]
    intensity = np.bincount(lab, weights=values, minlength=count + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(lab, weights=values * (rows + 0.5), minlength=count + 1)[1:] / intensity
        cx = np.bincount(lab, weights=values * (cols + 0.5), minlength=count + 1)[1:] / intensity
    # Brightest pixel: sort by (label, value); the last pixel of each label's run is its maximum.
    order = np.lexsort((values, lab))
    last = order[np.cumsum(n_pixels) - 1]
    peak = np.column_stack([rows[last], cols[last]]).astype(np.int64)
    slices = ndimage.find_objects(labels, max_label=count)
    bbox = np.array([[s[0].start, s[0].stop, s[1].start, s[1].stop] for s in slices if s is not None])
    return SpotTable(
        centroid_yx=np.column_stack([cy, cx]),
        intensity=np.asarray(intensity, dtype=np.float64),
        n_pixels=n_pixels.astype(np.int64),
        peak_yx=peak,
        bbox=bbox.astype(np.int64).reshape(-1, 4),
    )


def filter_spots(table: SpotTable, params: SpotFinderParams | None = None) -> SpotTable:
    """Keep spots of allowed size whose centroid is within max_separation of the brightest pixel centre."""
    p = params or SpotFinderParams()
    separation = np.hypot(*(table.centroid_yx - (table.peak_yx + 0.5)).T) if len(table) else np.empty(0)
    keep = (
        (table.n_pixels >= p.min_spot_size)
        & (table.n_pixels <= p.max_spot_size)
        & (separation <= p.max_separation)
    )
    return table.select(keep)


def find_spots(
    image: NDArray[Any], mask: NDArray[np.bool_] | None = None, params: SpotFinderParams | None = None
) -> FrameSpots:
    """Threshold, label, measure and filter the spots of one image (H, W)."""
    p = params or SpotFinderParams()
    arr, mask_arr = _check_image(image, mask)
    valid = _valid_pixels(arr, mask_arr)
    strong = _threshold(arr, valid, p)
    n_strong = int(np.count_nonzero(strong))
    fraction = n_strong / max(int(np.count_nonzero(valid)), 1)
    if fraction > p.max_strong_pixel_fraction:
        return FrameSpots(
            spots=SpotTable.empty(), n_strong_pixels=n_strong, strong_fraction=fraction, rejected=True
        )
    labels, count = label_spots(strong)
    spots = filter_spots(measure_spots(arr, labels, count), p)
    return FrameSpots(spots=spots, n_strong_pixels=n_strong, strong_fraction=fraction, rejected=False)
