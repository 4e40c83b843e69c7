"""SSX figures: spots per frame with the hit threshold, and the running hit rate.

Drawn with the Agg canvas on a bare :class:`~matplotlib.figure.Figure` (no pyplot, no display).
:func:`hit_rate_plot_data` returns the same numbers as JSON-serialisable dicts for interactive plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray

from beamlink.apps._arrays import positive_int
from beamlink.apps.ssx.classify import RunSummary

__all__ = ["hit_rate_plot_data", "plot_hit_rate", "running_hit_rate"]


def running_hit_rate(hits: NDArray[np.bool_], window: int) -> NDArray[np.float64]:
    """Hit rate over the last ``window`` frames at each frame (fewer at the start of the run)."""
    size = positive_int(window, field="window")
    counts = np.cumsum(np.asarray(hits, dtype=np.float64))
    lagged = np.concatenate([np.zeros(size), counts])[: counts.size]
    n_in_window = np.minimum(np.arange(1, counts.size + 1), size)
    rate: NDArray[np.float64] = (counts - lagged) / n_in_window
    return rate


def _default_window(n_frames: int) -> int:
    return max(1, min(100, n_frames // 10))


def plot_hit_rate(summary: RunSummary, path: str | Path, *, window: int | None = None) -> Path:
    """Two panels: spots per frame (hits filled) with the threshold, and the running hit rate.

    Returns ``path``."""
    size = window or _default_window(summary.n_frames)
    frames = np.arange(summary.n_frames)
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(frames[summary.hits], summary.spots_per_frame[summary.hits], "o", ms=3, label="hit")
    top.plot(
        frames[~summary.hits], summary.spots_per_frame[~summary.hits], "o", ms=3, mfc="none", label="miss"
    )
    top.axhline(summary.min_spots, color="grey", ls="--", lw=1, label=f"threshold ({summary.min_spots})")
    top.set_ylabel("spots")
    top.legend(fontsize=8, loc="upper right")
    top.set_title(f"hit rate {summary.hit_rate:.1%} ({summary.n_hits}/{summary.n_frames})", fontsize=10)
    bottom.plot(frames, running_hit_rate(summary.hits, size), "-")
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_ylabel(f"hit rate ({size}-frame window)")
    bottom.set_xlabel("frame")
    target = Path(path)
    FigureCanvasAgg(fig)  # attach the Agg canvas: raster output without any GUI backend
    fig.savefig(target, format="png")
    return target


def hit_rate_plot_data(summary: RunSummary, *, window: int | None = None) -> dict[str, Any]:
    """The plotted numbers as JSON-serialisable dicts."""
    size = window or _default_window(summary.n_frames)
    return {
        "frame": list(range(summary.n_frames)),
        "spots": summary.spots_per_frame.tolist(),
        "hit": summary.hits.tolist(),
        "threshold": summary.min_spots,
        "running_hit_rate": running_hit_rate(summary.hits, size).tolist(),
        "window": size,
        "hit_rate": summary.hit_rate,
    }
