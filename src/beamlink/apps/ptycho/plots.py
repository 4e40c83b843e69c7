"""PNG of a ptychographic reconstruction: amplitude and phase of the object and of the probe.

Built with :class:`matplotlib.figure.Figure` (no pyplot, no global state), so it is safe in worker threads.
Phases use the cyclic ``twilight`` colour map (the object's stretched to its own range, the probe's over
[-π, π] and blanked where the probe is dark); with ``mask`` the object outside the illuminated region is
blanked, since nothing there was measured.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

from beamlink.errors import InvalidInput

__all__ = ["plot_reconstruction"]


def plot_reconstruction(
    obj: NDArray[np.complex128],
    probe: NDArray[np.complex128],
    *,
    mask: NDArray[np.bool_] | None = None,
    title: str = "",
    path: str | Path | None = None,
) -> bytes:
    """Four panels (object |O|, arg O, probe |P|, arg P); return the PNG bytes, also written to ``path``."""
    o, p = np.asarray(obj), np.asarray(probe)
    if o.ndim != 2 or p.ndim != 2 or o.size == 0 or p.size == 0:
        raise InvalidInput(
            f"obj and probe must be non-empty 2-D arrays, got shapes {o.shape} and {p.shape}.",
            details={"field": "obj" if o.ndim != 2 or o.size == 0 else "probe"},
        )
    if mask is not None and np.shape(mask) != o.shape:
        raise InvalidInput(
            f"mask has shape {np.shape(mask)} but the object is {o.shape}; use illumination_mask().",
            details={"field": "mask"},
        )
    blank = np.zeros(o.shape, dtype=bool) if mask is None else ~np.asarray(mask, dtype=bool)
    object_phase = np.where(blank, np.nan, np.angle(o))
    # Objects are often weak phase objects: stretch the colour scale to their phase range.
    span = float(np.nanmax(np.abs(object_phase))) if not blank.all() else np.pi
    # The probe's phase is noise where it carries no intensity.
    dark = np.abs(p) < 0.01 * np.abs(p).max()
    panels = [
        ("object amplitude", np.where(blank, np.nan, np.abs(o)), "gray", None),
        ("object phase (rad)", object_phase, "twilight", (-span, span) if span > 0 else None),
        ("probe amplitude", np.abs(p), "gray", None),
        ("probe phase (rad)", np.where(dark, np.nan, np.angle(p)), "twilight", (-np.pi, np.pi)),
    ]
    figure = Figure(figsize=(8.0, 7.0), dpi=100)
    for k, (name, values, cmap, limits) in enumerate(panels):
        axes = figure.add_subplot(2, 2, k + 1)
        low, high = limits if limits is not None else (None, None)
        image = axes.imshow(values, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.set_title(name)
        axes.set_xticks([])
        axes.set_yticks([])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
