"""Multi-tau intensity autocorrelation g2(q, τ) with symmetric normalisation.

For pixel p with intensity I_p(t), t = 0..T-1, and lag τ (in frames) the correlator accumulates

    G2_p(τ) = ⟨I_p(t) I_p(t+τ)⟩_t          (pair_mean)
    IP_p(τ) = ⟨I_p(t)⟩ over t ∈ [0, T-τ)    (past_mean)
    IF_p(τ) = ⟨I_p(t)⟩ over t ∈ [τ, T)      (future_mean)

and normalises per static bin s, then averages the static bins inside each dynamic bin d
(APS / boost-corr ``compute_g2``; symmetric normalisation of Schätzel 1988 and Lumma et al.,
Rev. Sci. Instrum. 71, 3274 (2000)):

    g2_s(τ) = ⟨G2_p⟩_{p∈s} / (⟨IP_p⟩_{p∈s} ⟨IF_p⟩_{p∈s}),     g2_d(τ) = mean_{s⊂d} g2_s(τ),
    err_d(τ) = std_{p∈d}(G2_p / (IP_p IF_p)) / √N_d.

Multi-tau lag grid (boost-corr ``gen_tau_bin`` with dpl = 4): level 0 has τ = 1..2·dpl, level l ≥ 1 has
τ = (dpl+1..2·dpl)·2^l. Level l works on frames coarse-grained by 2^l,
x_l[t] = (x_{l-1}[2t] + x_{l-1}[2t+1])/2 (an odd trailing frame is dropped), and a lag k·2^l exists
while k < T_l = ⌊T/2^l⌋. With k = τ/2^l:
G2 = mean_{t<T_l-k} x_l[t]·x_l[t+k], IP = mean x_l[0:T_l-k], IF = mean x_l[k:T_l].

The correlator is streaming: it keeps, per level, running sums plus the first and last 2·dpl frames, so a
stack of any length goes through in batches in bounded memory, and the result equals the batch form above.
Naming trap: boost-corr's ``G2[:, 1]`` ("IP") is our ``future_mean`` and its ``G2[:, 2]`` ("IF") our
``past_mean``; their product, and so g2, is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
from numpy.typing import NDArray

from beamlink.apps._arrays import positive_float, positive_int, real_array, same_shape
from beamlink.apps.xpcs.qmap import QPartition
from beamlink.errors import InvalidInput

__all__ = [
    "G2Curves",
    "MultitauCorrelator",
    "MultitauSums",
    "correlate_g2",
    "multitau",
    "normalize_g2",
    "tau_grid",
]

_STACK_AXES = "(n_frames, height, width)"
DEFAULT_BATCH_FRAMES = 256


def _level_lags(level: int, dpl: int) -> NDArray[np.int64]:
    """Lags k (in level-l frames) computed at ``level``: 1..2·dpl at level 0, dpl+1..2·dpl above."""
    first = 1 if level == 0 else dpl + 1
    return np.arange(first, 2 * dpl + 1, dtype=np.int64)


def tau_grid(n_frames: int, dpl: int = 4) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Multi-tau lags τ (frames) and their levels for a stack of ``n_frames`` frames.

    Equal to boost-corr ``gen_tau_bin(n_frames, dpl)``: T = 4096 gives 43 lags, 10⁴ gives 48, 10⁵ gives 61.
    """
    n = positive_int(n_frames, field="n_frames")
    dpl = positive_int(dpl, field="dpl")
    taus: list[int] = []
    levels: list[int] = []
    level = 0
    while True:
        ks = _level_lags(level, dpl)
        ks = ks[ks < (n >> level)]
        if ks.size == 0:
            break
        taus.extend(int(k) << level for k in ks)
        levels.extend([level] * ks.size)
        level += 1
    return np.asarray(taus, dtype=np.int64), np.asarray(levels, dtype=np.int64)


@dataclass(frozen=True)
class MultitauSums:
    """Per-pixel multi-tau averages, before normalisation.

    Attributes:
        tau_frames: lags τ in frames, (n_tau,).
        levels: multi-tau level of each lag, (n_tau,).
        n_pairs: frame pairs averaged at each lag, T_l - k, (n_tau,).
        pair_mean: G2_p(τ) = ⟨I_p(t) I_p(t+τ)⟩, (n_tau, n_pixels).
        past_mean: IP_p(τ) = ⟨I_p⟩ over the first T-τ frames, (n_tau, n_pixels).
        future_mean: IF_p(τ) = ⟨I_p⟩ over the last T-τ frames, (n_tau, n_pixels).
        pixels: flat indices (into height·width) of the correlated pixels, (n_pixels,).
        frame_shape: detector frame shape (height, width).
        n_frames: number of frames T.
        mean_intensity: ⟨I_p⟩ over all frames, (n_pixels,).
    """

    tau_frames: NDArray[np.int64]
    levels: NDArray[np.int64]
    n_pairs: NDArray[np.int64]
    pair_mean: NDArray[np.float64]
    past_mean: NDArray[np.float64]
    future_mean: NDArray[np.float64]
    pixels: NDArray[np.intp]
    frame_shape: tuple[int, int]
    n_frames: int
    mean_intensity: NDArray[np.float64]


class _Level:
    """Running sums of one multi-tau level (frames already coarse-grained by 2^level)."""

    def __init__(self, lags: NDArray[np.int64], n_pixels: int) -> None:
        self.lags = lags
        self.depth = int(lags.max())
        self.n_frames = 0
        self.total = np.zeros(n_pixels)
        self.products = np.zeros((lags.size, n_pixels))
        # First and last `depth` frames: they turn the running total into the past/future means at the end,
        # and the tail pairs the first frames of the next batch with the end of the previous one.
        self.head = np.empty((0, n_pixels))
        self.tail = np.empty((0, n_pixels))
        self.pending: NDArray[np.float64] | None = None  # an odd frame waiting for its partner

    def push(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Add frames ``x`` (B, n_pixels); return the frames coarse-grained for the next level."""
        n_new, n_tail = x.shape[0], self.tail.shape[0]
        for i, k in enumerate(self.lags.tolist()):
            if n_new > k:  # pairs with both frames in this batch
                self.products[i] += np.einsum("tp,tp->p", x[: n_new - k], x[k:])
            # pairs whose earlier frame is in the tail kept from previous batches
            first, stop = max(0, k - n_tail), min(k, n_new)
            if first < stop:
                lead = self.tail[n_tail - k + first : n_tail - k + stop]
                self.products[i] += np.einsum("tp,tp->p", lead, x[first:stop])
        self.total += x.sum(axis=0)
        if self.head.shape[0] < self.depth:
            self.head = np.concatenate([self.head, x[: self.depth - self.head.shape[0]]])
        self.tail = np.concatenate([self.tail, x[-self.depth :]])[-self.depth :]
        self.n_frames += n_new

        if self.pending is not None:
            x = np.concatenate([self.pending[None], x])
        n_pairs = x.shape[0] // 2
        coarse = 0.5 * (x[0 : 2 * n_pairs : 2] + x[1 : 2 * n_pairs : 2])
        self.pending = x[-1].copy() if x.shape[0] % 2 else None
        return coarse

    def means(
        self,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Lags with at least one pair, and their pair, past and future means."""
        valid = self.lags < self.n_frames
        ks = self.lags[valid]
        pair, past, future = [], [], []
        for i, k in zip(np.flatnonzero(valid).tolist(), ks.tolist(), strict=True):
            n_pairs = self.n_frames - k
            pair.append(self.products[i] / n_pairs)
            past.append((self.total - self.tail[-k:].sum(axis=0)) / n_pairs)
            future.append((self.total - self.head[:k].sum(axis=0)) / n_pairs)
        n_pix = self.total.size
        return (
            ks,
            np.asarray(pair).reshape(-1, n_pix),
            np.asarray(past).reshape(-1, n_pix),
            np.asarray(future).reshape(-1, n_pix),
        )


class MultitauCorrelator:
    """Streaming multi-tau correlator: feed frame batches with :meth:`process`, then call :meth:`result`.

    Memory is bounded by the batch plus about 4·dpl frames per level; the number of levels follows from
    the number of frames seen, so T need not be known in advance.
    """

    def __init__(
        self, frame_shape: tuple[int, int], *, pixel_mask: NDArray[np.bool_] | None = None, dpl: int = 4
    ) -> None:
        if len(frame_shape) != 2:
            raise InvalidInput(
                f"frame_shape must be (height, width), got {frame_shape}.", details={"field": "frame_shape"}
            )
        self.frame_shape = (
            positive_int(frame_shape[0], field="frame_shape"),
            positive_int(frame_shape[1], field="frame_shape"),
        )
        self.dpl = positive_int(dpl, field="dpl")
        if pixel_mask is None:
            self._pixels: NDArray[np.intp] | None = None
            n_pixels = self.frame_shape[0] * self.frame_shape[1]
        else:
            mask = np.asarray(pixel_mask)
            same_shape(mask.shape, self.frame_shape, field="pixel_mask", against="the frames")
            if mask.dtype != np.bool_ or not mask.any():
                raise InvalidInput(
                    "pixel_mask must be a boolean map with at least one True pixel (True = correlate).",
                    details={"field": "pixel_mask"},
                )
            self._pixels = np.flatnonzero(mask)
            n_pixels = self._pixels.size
        self._n_pixels = n_pixels
        self._levels: list[_Level] = []

    @property
    def n_frames(self) -> int:
        """Frames processed so far."""
        return self._levels[0].n_frames if self._levels else 0

    def process(self, batch: NDArray[Any]) -> None:
        """Add a batch of frames (B, height, width) of real numbers (any integer or float dtype)."""
        frames = real_array(batch, field="frames", ndim=3, axes=_STACK_AXES)
        same_shape(
            frames.shape[1:], self.frame_shape, field="frames", against="the q partition / frame_shape"
        )
        flat = frames.reshape(frames.shape[0], -1)
        if self._pixels is not None:
            flat = flat[:, self._pixels]
        x: NDArray[np.float64] = np.asarray(flat, dtype=np.float64)
        level = 0
        while x.shape[0]:
            if level == len(self._levels):
                self._levels.append(_Level(_level_lags(level, self.dpl), self._n_pixels))
            x = self._levels[level].push(x)
            level += 1

    def result(self) -> MultitauSums:
        """The per-pixel averages for every lag that has at least one pair of frames."""
        if self.n_frames < 2:
            raise InvalidInput(
                f"multi-tau needs at least 2 frames, got {self.n_frames}; pass a longer stack.",
                details={"field": "frames", "n_frames": self.n_frames},
            )
        taus, levels, n_pairs, pair, past, future = [], [], [], [], [], []
        for level, state in enumerate(self._levels):
            ks, p, pa, fu = state.means()
            taus.append(ks << level)
            levels.append(np.full(ks.size, level, dtype=np.int64))
            n_pairs.append(state.n_frames - ks)
            pair.append(p)
            past.append(pa)
            future.append(fu)
        pixels = (
            np.arange(self._n_pixels, dtype=np.intp) if self._pixels is None else self._pixels.astype(np.intp)
        )
        level0 = self._levels[0]
        return MultitauSums(
            tau_frames=np.concatenate(taus),
            levels=np.concatenate(levels),
            n_pairs=np.concatenate(n_pairs),
            pair_mean=np.concatenate(pair),
            past_mean=np.concatenate(past),
            future_mean=np.concatenate(future),
            pixels=pixels,
            frame_shape=self.frame_shape,
            n_frames=level0.n_frames,
            mean_intensity=level0.total / level0.n_frames,
        )


def _batches(frames: NDArray[Any] | Iterable[NDArray[Any]], batch_frames: int) -> Iterable[NDArray[Any]]:
    """Cut a (T, H, W) array into batches of ``batch_frames`` frames; pass an iterable of batches through."""
    if isinstance(frames, np.ndarray):
        stack = real_array(frames, field="frames", ndim=3, axes=_STACK_AXES, check_finite=False)
        return (stack[i : i + batch_frames] for i in range(0, stack.shape[0], batch_frames))
    if isinstance(frames, str | bytes) or not isinstance(frames, Iterable):
        raise InvalidInput(
            f"frames must be an array {_STACK_AXES} or an iterable of such batches, "
            f"got {type(frames).__name__}.",
            details={"field": "frames"},
        )
    return frames


def _frame_shape(first: NDArray[Any]) -> tuple[int, int]:
    frames = real_array(first, field="frames", ndim=3, axes=_STACK_AXES, check_finite=False)
    return (int(frames.shape[1]), int(frames.shape[2]))


def multitau(
    frames: NDArray[Any] | Iterable[NDArray[Any]],
    *,
    pixel_mask: NDArray[np.bool_] | None = None,
    dpl: int = 4,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
) -> MultitauSums:
    """Multi-tau pair/past/future means of every (masked-in) pixel.

    ``frames`` is a (T, height, width) array, or an iterable of (B, height, width) batches (streamed, e.g.
    from :func:`beamlink.apps.xpcs.measurement.iter_frames`).
    """
    batch_frames = positive_int(batch_frames, field="batch_frames")
    correlator: MultitauCorrelator | None = None
    for batch in _batches(frames, batch_frames):
        if correlator is None:
            correlator = MultitauCorrelator(_frame_shape(batch), pixel_mask=pixel_mask, dpl=dpl)
        correlator.process(batch)
    if correlator is None:
        raise InvalidInput(
            "frames is empty (no batch); pass at least 2 frames.", details={"field": "frames", "n_frames": 0}
        )
    return correlator.result()


@dataclass(frozen=True)
class G2Curves:
    """Normalised g2 curves, one per dynamic q bin.

    Attributes:
        tau_frames: lags in frames, (n_tau,).
        levels: multi-tau level of each lag; its frames are averages of 2^level frames, (n_tau,).
        tau_s: lags in seconds (tau_frames · frame_interval_s), (n_tau,).
        g2: g2(τ) per dynamic bin, (n_tau, n_dynamic); NaN where a bin has no pixels or no counts.
        g2_err: 1-sigma error of g2, (n_tau, n_dynamic); NaN at lags with a single frame pair, where
            every pixel's ratio is exactly 1 and the spread says nothing.
        q: ⟨q⟩ of each dynamic bin, nm⁻¹, (n_dynamic,).
        q2: ⟨q²⟩ of each dynamic bin, nm⁻², (n_dynamic,).
        n_pixels: pixels in each dynamic bin, (n_dynamic,).
        n_frames: frames correlated.
        frame_interval_s: time between frames, seconds.
    """

    tau_frames: NDArray[np.int64]
    levels: NDArray[np.int64]
    tau_s: NDArray[np.float64]
    g2: NDArray[np.float64]
    g2_err: NDArray[np.float64]
    q: NDArray[np.float64]
    q2: NDArray[np.float64]
    n_pixels: NDArray[np.int64]
    n_frames: int
    frame_interval_s: float


def _bin_matrix(labels: NDArray[np.int32], n_bins: int) -> scipy.sparse.csr_matrix:
    """Sparse (n_pixels, n_bins) one-hot matrix: ``values @ matrix`` sums values over each bin."""
    rows = np.flatnonzero(labels > 0)
    data = np.ones(rows.size)
    return scipy.sparse.csr_matrix((data, (rows, labels[rows] - 1)), shape=(labels.size, n_bins))


def normalize_g2(sums: MultitauSums, partition: QPartition, *, frame_interval_s: float) -> G2Curves:
    """Symmetric normalisation over static bins, averaged within dynamic bins (see the module docstring)."""
    dt = positive_float(frame_interval_s, field="frame_interval_s")
    same_shape(sums.frame_shape, partition.shape, field="q partition", against="the frames")
    dq = partition.dqmap.ravel()[sums.pixels]
    sq = partition.sqmap.ravel()[sums.pixels]
    n_dyn, n_sta = partition.n_dynamic, partition.n_static
    if n_dyn == 0 or not (dq > 0).any():
        raise InvalidInput(
            "the q partition labels none of the correlated pixels; correlate the pixels with dqmap > 0.",
            details={"field": "partition"},
        )

    # Static bins: ratio of bin averages (summing first keeps sparse, low-count pixels usable).
    static = _bin_matrix(sq, n_sta)
    n_in_static = np.asarray(static.sum(axis=0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        g2_static = (
            (sums.pair_mean @ static)
            * n_in_static
            / ((sums.past_mean @ static) * (sums.future_mean @ static))
        )
    g2_static[:, n_in_static == 0] = np.nan

    # Dynamic bins: plain mean of their static bins (boost-corr), ignoring empty or photon-less ones.
    members = _bin_matrix(partition.static_to_dynamic(), n_dyn)
    finite = np.isfinite(g2_static)
    n_used = finite.astype(np.float64) @ members
    with np.errstate(invalid="ignore", divide="ignore"):
        g2 = (np.where(finite, g2_static, 0.0) @ members) / n_used

    # Error bar: spread of the per-pixel ratio over the bin, err_d = std_p(G2/(IP·IF)) / √N_d.
    denom = sums.past_mean * sums.future_mean
    has_counts = denom > 0
    ratio = np.divide(sums.pair_mean, denom, out=np.zeros_like(denom), where=has_counts)
    dynamic = _bin_matrix(dq, n_dyn)
    n_pix = has_counts.astype(np.float64) @ dynamic
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (ratio @ dynamic) / n_pix
        var = np.maximum((ratio**2 @ dynamic) / n_pix - mean**2, 0.0)
        g2_err = np.sqrt(var / n_pix)
    g2_err[sums.n_pairs < 2] = np.nan

    return G2Curves(
        tau_frames=sums.tau_frames,
        levels=sums.levels,
        tau_s=sums.tau_frames.astype(np.float64) * dt,
        g2=np.asarray(g2, dtype=np.float64),
        g2_err=np.asarray(g2_err, dtype=np.float64),
        q=partition.dynamic_q(),
        q2=partition.dynamic_q2(),
        n_pixels=partition.dynamic_pixel_counts(),
        n_frames=sums.n_frames,
        frame_interval_s=dt,
    )


def correlate_g2(
    frames: NDArray[Any] | Iterable[NDArray[Any]],
    partition: QPartition,
    *,
    frame_interval_s: float,
    dpl: int = 4,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
) -> G2Curves:
    """Multi-tau g2(q, τ) of a frame stack (or a stream of batches) over a q partition.

    Only the pixels the partition labels (dqmap > 0) are correlated; every batch must have the
    partition's frame shape.
    """
    batch_frames = positive_int(batch_frames, field="batch_frames")
    correlator = MultitauCorrelator(partition.shape, pixel_mask=partition.mask, dpl=dpl)
    for batch in _batches(frames, batch_frames):
        correlator.process(batch)
    return normalize_g2(correlator.result(), partition, frame_interval_s=frame_interval_s)
