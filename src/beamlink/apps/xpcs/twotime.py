"""Two-time correlation C_d(t1, t2) and the one-time g2 taken from its diagonals.

As boost-corr ``TwotimeCorrelator.calc_normal_twotime``: each frame's pixel values are first divided by that
frame's mean over the pixel's static bin (``smooth="sqmap"``), which removes frame-to-frame changes of the
incident intensity. Then, with X the (T x N_d) matrix of the N_d pixels of dynamic bin d and S_t = Σ_p X_tp,

    C_d(t1, t2) = ⟨I_p(t1) I_p(t2)⟩_{p∈d} / (⟨I_p(t1)⟩_{p∈d} ⟨I_p(t2)⟩_{p∈d})
                = N_d (X Xᵀ)_{t1 t2} / (S_t1 S_t2).

The one-time curve is the diagonal average g2_d(τ) = mean_t C_d(t, t+τ), τ = 1..T-1. Because every frame
is normalised by its own mean over the bin, it runs below the multi-tau g2 by about β/N_d (0.004 for
β = 0.5 and 132 pixels; about twice that with smoothing over static bins half that size).
The whole stack is held in memory and C costs T² per bin: use it for T up to a few thousand frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import real_array, same_shape
from beamlink.apps.xpcs.qmap import QPartition
from beamlink.errors import InvalidInput

__all__ = ["TwoTime", "g2_from_two_time", "two_time"]


@dataclass(frozen=True)
class TwoTime:
    """Two-time correlation matrices.

    Attributes:
        bins: dynamic bin labels, (n_bins,).
        c: C(t1, t2) per bin, float32, (n_bins, T, T); NaN rows for frames without counts.
    """

    bins: NDArray[np.int64]
    c: NDArray[np.float32]


def two_time(
    frames: NDArray[Any], partition: QPartition, *, bins: Sequence[int] | None = None, smooth: bool = True
) -> TwoTime:
    """Two-time correlation of ``frames`` (T, height, width) for the chosen dynamic ``bins`` (default all)."""
    stack = real_array(frames, field="frames", ndim=3, axes="(n_frames, height, width)")
    same_shape(stack.shape[1:], partition.shape, field="frames", against="the q partition")
    if stack.shape[0] < 2:
        raise InvalidInput(
            f"two-time needs at least 2 frames, got {stack.shape[0]}.", details={"field": "frames"}
        )
    chosen = np.arange(1, partition.n_dynamic + 1) if bins is None else np.asarray(bins, dtype=np.int64)
    if chosen.size == 0 or chosen.min() < 1 or chosen.max() > partition.n_dynamic:
        raise InvalidInput(
            f"bins must be dynamic labels in 1..{partition.n_dynamic}, got {list(chosen)}.",
            details={"field": "bins"},
        )
    n_frames = stack.shape[0]
    flat = stack.reshape(n_frames, -1)
    dq = partition.dqmap.ravel()
    sq = partition.sqmap.ravel()
    out = np.empty((chosen.size, n_frames, n_frames), dtype=np.float32)
    for i, label in enumerate(chosen.tolist()):
        pixels = np.flatnonzero(dq == label)
        if pixels.size == 0:
            out[i] = np.nan
            continue
        x = flat[:, pixels].astype(np.float64)
        if smooth:
            # Frame-wise mean over each static bin, broadcast back to the bin's pixels.
            static = sq[pixels]
            _, inverse = np.unique(static, return_inverse=True)
            one_hot = np.eye(inverse.max() + 1)[inverse]  # (pixels, static bins of this ring)
            frame_means = ((x @ one_hot) / one_hot.sum(axis=0))[:, inverse]
            x = np.divide(x, frame_means, out=np.zeros_like(x), where=frame_means > 0)
        s = x.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = (pixels.size * (x @ x.T)) / np.outer(s, s)
    return TwoTime(bins=chosen, c=out)


def g2_from_two_time(c: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Diagonal averages g2(τ) = mean_t C(t, t+τ), τ = 1..T-1, of (n_bins, T, T) or (T, T) matrices.

    Returns (n_bins, T-1), or (T-1,) for a single matrix. The upper triangle is averaged (C is symmetric).
    """
    arr = np.asarray(c)
    single = arr.ndim == 2
    stack = real_array(
        arr[None] if single else arr, field="c", ndim=3, axes="(n_bins, T, T)", check_finite=False
    )
    n = stack.shape[-1]
    if stack.shape[-2] != n or n < 2:
        raise InvalidInput(
            f"c must hold square TxT matrices with T >= 2, got shape {stack.shape}.", details={"field": "c"}
        )
    rows, cols = np.triu_indices(n, k=1)
    lag = cols - rows
    counts = np.bincount(lag, minlength=n)[1:]
    g2 = np.stack([np.bincount(lag, weights=m[rows, cols], minlength=n)[1:] / counts for m in stack])
    return g2[0] if single else g2
