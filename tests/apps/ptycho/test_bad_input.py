"""Bad input to the ptychography kernels: one clear InvalidInput naming the field and the fix."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from apps._bad_input import Case, assert_invalid_input, bad_input_cases
from beamlink.apps.ptycho.compare import object_nrmse
from beamlink.apps.ptycho.plots import plot_reconstruction
from beamlink.apps.ptycho.reconstruct import dm, epie, rpie
from beamlink.apps.ptycho.synthetic import make_probe, make_scan, scan_positions

M = 8
SHAPE = (16, 16)
PATTERNS = np.ones((4, M, M))
POSITIONS = np.array([[0, 0], [0, 8], [8, 0], [8, 8]])
PROBE = np.ones((M, M), dtype=complex)


def _with(value: float) -> np.ndarray:
    patterns = PATTERNS.copy()
    patterns[1, 2, 3] = value
    return patterns


def _run(
    intensities: object = PATTERNS,
    positions: object = POSITIONS,
    probe: object = PROBE,
    object_shape: object = SHAPE,
    **options: object,
) -> object:
    return rpie(intensities, positions, probe, object_shape=object_shape, n_iter=1, **options)  # type: ignore[arg-type]


CASES: list[Case] = [
    ("empty stack", lambda: _run(np.ones((0, M, M)), np.zeros((0, 2))), "intensities", "at least one"),
    ("empty patterns", lambda: _run(np.ones((4, 0, 0))), "intensities", "at least one"),
    ("2-D intensities", lambda: _run(np.ones((M, M))), "intensities", "pattern[None]"),
    ("complex intensities", lambda: _run(PATTERNS.astype(complex)), "intensities", "|Ψ|²"),
    ("string intensities", lambda: _run(np.full((4, M, M), "x")), "intensities", "float"),
    ("ragged intensities", lambda: _run([[[1.0]], [[1.0, 2.0]]]), "intensities", "NumPy array"),
    ("NaN in patterns", lambda: _run(_with(np.nan)), "intensities", "(1, 2, 3)"),
    ("negative counts", lambda: _run(_with(-1.0)), "intensities", "Clip them at 0"),
    ("probe shape", lambda: _run(probe=np.ones((M + 1, M + 1))), "probe", "match the pattern size"),
    ("probe dtype", lambda: _run(probe=np.full((M, M), "p")), "probe", "complex"),
    ("zero probe", lambda: _run(probe=np.zeros((M, M))), "probe", "not all zero"),
    ("probe larger than object", lambda: _run(object_shape=(6, 6)), "object_shape", "at least as large"),
    ("object shape arity", lambda: _run(object_shape=(16,)), "object_shape", "(n0, n1)"),
    (
        "position outside",
        lambda: _run(positions=POSITIONS + np.array([0, 1])),
        "positions",
        "Enlarge object_shape",
    ),
    ("negative position", lambda: _run(positions=POSITIONS - 1), "positions", "smallest is 0"),
    ("too few positions", lambda: _run(positions=POSITIONS[:3]), "positions", "one position per pattern"),
    ("too many patterns", lambda: _run(np.ones((5, M, M))), "positions", "one position per pattern"),
    ("fractional positions", lambda: _run(positions=POSITIONS + 0.5), "positions", "np.rint"),
    ("positions shape", lambda: _run(positions=POSITIONS.ravel()), "positions", "(n_positions, 2)"),
    ("alpha above 1", lambda: _run(alpha=1.5), "alpha", "(0, 1]"),
    ("zero alpha", lambda: _run(alpha=0.0), "alpha", "0.05-0.25 for rPIE"),
    (
        "zero iterations",
        lambda: rpie(PATTERNS, POSITIONS, PROBE, object_shape=SHAPE, n_iter=0),
        "n_iter",
        "≥ 1",
    ),
    (
        "guess shape",
        lambda: _run(object_guess=np.ones((4, 4), complex)),
        "object_guess",
        "leave it out",
    ),
    ("ePIE beta", lambda: epie(PATTERNS, POSITIONS, PROBE, object_shape=SHAPE, beta=-0.1), "beta", "(0, 1]"),
    (
        "DM mismatch",
        lambda: dm(PATTERNS, POSITIONS[:2], PROBE, object_shape=SHAPE),
        "positions",
        "same order",
    ),
    ("compare shapes", lambda: object_nrmse(np.ones((4, 4)), np.ones((5, 5))), "estimate", "truth's grid"),
    ("compare zero", lambda: object_nrmse(np.ones((4, 4)), np.zeros((4, 4))), "estimate", "diverge"),
    (
        "compare mask",
        lambda: object_nrmse(np.ones((4, 4)), np.ones((4, 4)), np.zeros((4, 4), bool)),
        "mask",
        "True",
    ),
    ("plot shapes", lambda: plot_reconstruction(np.ones(4, complex), PROBE), "obj", "2-D"),
    ("probe radius", lambda: make_probe(16, 9.0), "radius", "m/4"),
    ("scan window", lambda: scan_positions(8, 16, 2), "m", "n ≥ m"),
    ("photons", lambda: make_scan(n=40, photons=-5.0), "photons", "None for noise-free"),
]


@bad_input_cases(CASES)
def test_bad_input_raises_invalid_input(name: str, call: Callable[[], object], field: str, fix: str) -> None:
    assert_invalid_input(name, call, field, fix)


def test_good_small_input_runs() -> None:
    result = _run()
    assert result.object.shape == SHAPE  # type: ignore[attr-defined]
