"""Crop BraggNN patches from a detector frame, the way the real pipeline does.

A peak is a pixel above ``threshold`` that is the brightest within the ``patch_size``² window around it
(:func:`scipy.ndimage.maximum_filter`). Thresholding alone is not enough: the Lorentzian tails of bright
peaks break into fragments above any useful threshold, and each fragment would become a bogus patch. Ties
(flat tops of integer counts) are resolved greedily, brightest first, so no two patches share a peak. Each
peak gives one patch centred on its brightest pixel; a centre found in a patch maps back to the frame as
``origin + centre`` (both (x, y)). Peaks whose patch would cross the frame edge are skipped, because a
zero-padded patch is not what the network was trained on.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from beamlink.apps._arrays import real_array
from beamlink.apps.braggnn._checks import integer, positive_number
from beamlink.apps.braggnn.synthetic import PATCH_SIZE
from beamlink.errors import InvalidInput

__all__ = ["extract_patches"]


def extract_patches(
    frame: object, *, threshold: float, patch_size: int = PATCH_SIZE
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Return ``(patches, origins)``: float32 ``(n, size, size)`` crops and the (x, y) of each crop's
    pixel ``[0, 0]`` in the frame, ``(n, 2)``, in row-major order of the peaks' brightest pixels.
    """
    image = real_array(frame, field="frame", ndim=2, axes="(height, width)").astype(np.float32)
    level = positive_number(threshold, field="threshold", hint="Use about background + 6·√background.")
    size = integer(patch_size, field="patch_size", minimum=3, hint="BraggNN uses 11.")
    if size % 2 == 0:
        raise InvalidInput(
            f"patch_size must be odd so the brightest pixel sits in the middle, got {size}; use 11.",
            details={"field": "patch_size"},
        )
    half = size // 2
    peaks = (image > level) & (image == ndimage.maximum_filter(image, size=size, mode="nearest"))
    rows, cols = np.nonzero(peaks)
    kept: list[tuple[int, int]] = []
    for k in np.argsort(-image[rows, cols], kind="stable"):
        row, col = int(rows[k]), int(cols[k])
        if all(max(abs(row - r), abs(col - c)) > half for r, c in kept):
            kept.append((row, col))
    height, width = image.shape
    inside = sorted((r, c) for r, c in kept if half <= r < height - half and half <= c < width - half)
    patches = np.empty((len(inside), size, size), dtype=np.float32)
    origins = np.empty((len(inside), 2), dtype=np.int64)
    for k, (row, col) in enumerate(inside):
        patches[k] = image[row - half : row + half + 1, col - half : col + half + 1]
        origins[k] = (col - half, row - half)
    return patches, origins
