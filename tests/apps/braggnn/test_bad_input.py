"""Bad input to the BraggNN kernels: one clear InvalidInput naming the field and the fix.

The patch and centre checks run before torch is needed, so these cases run without torch too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from beamlink.apps.braggnn.evaluate import centre_errors
from beamlink.apps.braggnn.fit import fit_patches
from beamlink.apps.braggnn.model import BraggNNConfig
from beamlink.apps.braggnn.patches import extract_patches
from beamlink.apps.braggnn.synthetic import make_frame, make_patches
from beamlink.apps.braggnn.training import train
from beamlink.errors import InvalidInput

PATCHES, CENTRES = make_patches(8, seed=0)


def _with_nan() -> np.ndarray:
    patches = PATCHES.copy()
    patches[3, 4, 5] = np.nan
    return patches


CASES: list[tuple[str, Callable[[], object], str, str]] = [
    (
        "empty stack",
        lambda: train(np.zeros((0, 11, 11)), np.zeros((0, 2)), epochs=1),
        "patches",
        "at least one",
    ),
    ("one 2-D patch", lambda: train(PATCHES[0], CENTRES[:1], epochs=1), "patches", "(n_patches, 11, 11)"),
    ("9x9 patches", lambda: train(PATCHES[:, :9, :9], CENTRES, epochs=1), "patches", "Crop 11x11"),
    ("complex dtype", lambda: train(PATCHES.astype(complex), CENTRES, epochs=1), "patches", "real numbers"),
    ("bool dtype", lambda: train(PATCHES > 5, CENTRES, epochs=1), "patches", "real numbers"),
    ("ragged list", lambda: train([[[1.0, 2.0]], [[1.0]]], CENTRES, epochs=1), "patches", "NumPy array"),
    ("NaN patch", lambda: train(_with_nan(), CENTRES, epochs=1), "patches", "(3, 4, 5)"),
    ("too few centres", lambda: train(PATCHES, CENTRES[:5], epochs=1), "centres", "one (x, y) centre"),
    ("centres (n, 3)", lambda: train(PATCHES, np.zeros((8, 3)), epochs=1), "centres", "x (the column) first"),
    ("NaN centre", lambda: train(PATCHES, np.full((8, 2), np.nan), epochs=1), "centres", "NaN"),
    (
        "frame centres",
        lambda: train(PATCHES, CENTRES + 100, epochs=1),
        "centres",
        "not normalised or in frame",
    ),
    ("zero epochs", lambda: train(PATCHES, CENTRES, epochs=0), "epochs", "25 epochs"),
    (
        "float batch",
        lambda: train(PATCHES, CENTRES, epochs=1, batch_size=2.5),  # type: ignore[arg-type]
        "batch_size",
        "whole number",
    ),
    ("negative lr", lambda: train(PATCHES, CENTRES, epochs=1, lr=-1.0), "lr", "3e-4"),
    ("negative seed", lambda: train(PATCHES, CENTRES, epochs=1, seed=-1), "seed", "≥ 0"),
    ("zero threads", lambda: train(PATCHES, CENTRES, epochs=1, threads=0), "threads", "cores"),
    (
        "patch size of config",
        lambda: train(PATCHES, CENTRES, epochs=1, config=BraggNNConfig(patch_size=9)),
        "patches",
        "9x9",
    ),
    ("fit 2-D", lambda: fit_patches(np.zeros((11, 11))), "patches", "(n_patches, 11, 11)"),
    ("fit NaN", lambda: fit_patches(_with_nan()), "patches", "NaN"),
    ("fit empty", lambda: fit_patches(np.zeros((0, 11, 11))), "patches", "at least one"),
    ("frame 3-D", lambda: extract_patches(PATCHES, threshold=1.0), "frame", "(height, width)"),
    (
        "zero threshold",
        lambda: extract_patches(np.zeros((20, 20)), threshold=0.0),
        "threshold",
        "6·√background",
    ),
    (
        "even patch",
        lambda: extract_patches(np.zeros((20, 20)), threshold=1.0, patch_size=10),
        "patch_size",
        "odd",
    ),
    ("no patches", lambda: make_patches(0), "n_patches", "at least one"),
    ("shift too big", lambda: make_patches(5, max_shift_px=4), "max_shift_px", "at most 3"),
    ("bad fwhm", lambda: make_patches(5, fwhm_px=(4.0, 1.0)), "fwhm_px", "low <= high"),
    ("crowded frame", lambda: make_frame(500, shape=(64, 64)), "n_peaks", "fewer peaks"),
    ("errors shape", lambda: centre_errors(np.zeros((3, 2)), np.zeros((4, 2))), "true", "(4, 2)"),
    (
        "errors 3 columns",
        lambda: centre_errors(np.zeros((3, 3)), np.zeros((3, 3))),
        "predicted",
        "(n_peaks, 2)",
    ),
]


@pytest.mark.parametrize(("name", "call", "field", "fix"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_invalid_input(name: str, call: Callable[[], object], field: str, fix: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()
    assert caught.value.details["field"] == field, name
    assert fix in caught.value.message, caught.value.message
    assert caught.value.code == "INVALID_INPUT"
