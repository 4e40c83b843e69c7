"""PNG views of a peak search: the summed frame with the peaks found, and the number of peaks per ω.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot, no global state), so this is safe in
worker threads. Each function returns the PNG bytes and also writes them to ``path`` when given.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from beamlink.apps._arrays import integer, real_number
from beamlink.apps.hedm.peaksearch import correct_frames

__all__ = ["plot_peaks_per_omega", "plot_summed_frame"]


def plot_summed_frame(
    stack: object,
    peaks: Sequence[Mapping[str, Any]],
    *,
    dark: object = 0.0,
    path: str | Path | None = None,
) -> bytes:
    """Σ over frames of (I - dark) on a log scale, with a circle on every peak's (y, z)."""
    summed = correct_frames(stack, dark=dark).sum(axis=0)
    # log1p above the median: the background sinks to black and weak and strong spots both stay visible.
    shown = np.log1p(np.clip(summed - np.median(summed), 0.0, None))
    figure = Figure(figsize=(6.0, 5.4), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(shown, cmap="magma", origin="upper", interpolation="nearest")
    figure.colorbar(image, ax=axes, label="log(1 + Σ I' - median)")
    if peaks:
        axes.scatter(
            [p["z"] for p in peaks],
            [p["y"] for p in peaks],
            s=60,
            facecolors="none",
            edgecolors="cyan",
            linewidths=0.8,
        )
    axes.set_xlabel("z (px)")
    axes.set_ylabel("y (px)")
    axes.set_title(f"Summed frame, {len(peaks)} peaks")
    return _png(figure, path)


def plot_peaks_per_omega(
    peaks: Sequence[Mapping[str, Any]],
    *,
    n_frames: int,
    omega0: float = 0.0,
    domega: float = 1.0,
    path: str | Path | None = None,
) -> bytes:
    """Bar chart of how many peak centroids fall in each frame, against the frame's ω (degrees)."""
    frames = integer(n_frames, field="n_frames", minimum=1, hint="Pass the number of frames in the scan.")
    start = real_number(omega0, field="omega0")
    step = real_number(domega, field="domega", nonzero=True)
    index = np.clip(np.rint([p["frame"] for p in peaks]).astype(np.int64), 0, frames - 1)
    counts = np.bincount(index, minlength=frames)
    figure = Figure(figsize=(6.0, 3.2), dpi=100)
    axes = figure.add_subplot()
    axes.bar(start + step * np.arange(frames), counts, width=abs(step), color="tab:blue")
    axes.set_xlabel("ω (degrees)")
    axes.set_ylabel("peaks")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"Peaks per frame ({len(peaks)} in all)")
    figure.tight_layout()
    return _png(figure, path)


def _png(figure: Figure, path: str | Path | None) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
