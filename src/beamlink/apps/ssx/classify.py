"""Hit classification of stills and the per-run summary.

A still is a **hit** when spot finding kept at least ``min_spots`` spots (cctbx.xfel /
``dials.stills_process`` ``dispatch.hit_finder.minimum_number_of_reflections = 16``) and, if set, at most
``max_spots``.
An image rejected by the spot finder (too many strong pixels) is never a hit.

The run summary gives hit rate = n_hits / n_frames and spots per frame, the numbers a beamline watches
to steer sample delivery.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.apps._arrays import positive_int, real_array
from beamlink.apps.ssx.spotfind import FrameSpots, SpotFinderParams, find_spots
from beamlink.errors import InvalidInput

__all__ = ["HitFinderParams", "RunResult", "RunSummary", "classify_hits", "find_spots_run", "summarize_run"]


@dataclass(frozen=True)
class HitFinderParams:
    """Hit criteria: ``min_spots`` ≤ number of spots (≤ ``max_spots`` when given)."""

    min_spots: int = 16
    max_spots: int | None = None

    def __post_init__(self) -> None:
        positive_int(self.min_spots, field="min_spots", minimum=0)
        if self.max_spots is not None:
            positive_int(self.max_spots, field="max_spots", minimum=self.min_spots)


def classify_hits(frames: Sequence[FrameSpots], params: HitFinderParams | None = None) -> NDArray[np.bool_]:
    """Hit (True) or miss for each frame's spot-finding outcome."""
    p = params or HitFinderParams()
    n_spots = np.array([len(f.spots) for f in frames], dtype=np.int64)
    rejected = np.array([f.rejected for f in frames], dtype=bool)
    hits: NDArray[np.bool_] = (n_spots >= p.min_spots) & ~rejected
    if p.max_spots is not None:
        hits &= n_spots <= p.max_spots
    return hits


@dataclass(frozen=True)
class RunSummary:
    """Per-run numbers.

    Attributes:
        n_frames: frames processed.
        n_hits: frames classified as hits.
        hit_rate: n_hits / n_frames.
        spots_per_frame: spots kept in each frame, (n_frames,).
        hits: hit flag of each frame, (n_frames,).
        rejected: frames the spot finder rejected, (n_frames,).
        min_spots: the hit threshold used.
    """

    n_frames: int
    n_hits: int
    hit_rate: float
    spots_per_frame: NDArray[np.int64]
    hits: NDArray[np.bool_]
    rejected: NDArray[np.bool_]
    min_spots: int

    @property
    def mean_spots_per_frame(self) -> float:
        """Mean number of spots over all frames."""
        return float(self.spots_per_frame.mean())

    @property
    def mean_spots_per_hit(self) -> float:
        """Mean number of spots over the hits (0 when there is none)."""
        return float(self.spots_per_frame[self.hits].mean()) if self.n_hits else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (per-frame lists included)."""
        return {
            "n_frames": self.n_frames,
            "n_hits": self.n_hits,
            "hit_rate": self.hit_rate,
            "n_rejected": int(np.count_nonzero(self.rejected)),
            "mean_spots_per_frame": self.mean_spots_per_frame,
            "mean_spots_per_hit": self.mean_spots_per_hit,
            "min_spots": self.min_spots,
            "spots_per_frame": self.spots_per_frame.tolist(),
            "hits": self.hits.tolist(),
            "rejected": self.rejected.tolist(),
        }


def summarize_run(frames: Sequence[FrameSpots], params: HitFinderParams | None = None) -> RunSummary:
    """Hit rate and spots per frame of a run's spot-finding outcomes."""
    p = params or HitFinderParams()
    if not frames:
        raise InvalidInput(
            "no frames to summarise; pass the outcome of at least one still.", details={"field": "frames"}
        )
    hits = classify_hits(frames, p)
    n_hits = int(np.count_nonzero(hits))
    return RunSummary(
        n_frames=len(frames),
        n_hits=n_hits,
        hit_rate=n_hits / len(frames),
        spots_per_frame=np.array([len(f.spots) for f in frames], dtype=np.int64),
        hits=hits,
        rejected=np.array([f.rejected for f in frames], dtype=bool),
        min_spots=p.min_spots,
    )


@dataclass(frozen=True)
class RunResult:
    """Spot-finding outcome of every frame plus the run summary."""

    frames: list[FrameSpots]
    summary: RunSummary


def find_spots_run(
    stills: NDArray[Any] | Iterable[NDArray[Any]],
    mask: NDArray[np.bool_] | None = None,
    *,
    spot_params: SpotFinderParams | None = None,
    hit_params: HitFinderParams | None = None,
) -> RunResult:
    """Find spots in every still of a run and classify hits.

    ``stills`` is a (N, H, W) stack or an iterable of (H, W) images (streamed one at a time).
    """
    if isinstance(stills, np.ndarray):
        stack = real_array(
            stills, field="stills", ndim=3, axes="(n_frames, height, width)", check_finite=False
        )
        images: Iterable[NDArray[Any]] = iter(stack)
    else:
        images = stills
    outcomes = [find_spots(image, mask, spot_params) for image in images]
    return RunResult(frames=outcomes, summary=summarize_run(outcomes, hit_params))
