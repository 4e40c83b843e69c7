"""XPCS figures: g2(τ) with the fitted curves, and Γ against q² with the D·q² line.

PNG files are drawn with the Agg canvas on a bare :class:`~matplotlib.figure.Figure` (no pyplot, so no global
figure state and no display). :func:`plot_data` returns the same content as plain JSON-serialisable dicts
for interactive plots in the portal (NaN becomes ``None``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray

from beamlink.apps.xpcs.correlate import G2Curves
from beamlink.apps.xpcs.fit import DiffusionFit, G2Fit, g2_model
from beamlink.errors import InvalidInput

__all__ = ["plot_data", "plot_g2", "plot_gamma_q2"]

_N_CURVE_POINTS = 200


def _bins(curves: G2Curves, bins: list[int] | None) -> list[int]:
    """Zero-based dynamic bin indices to draw (default: all bins with pixels)."""
    n_dyn = curves.g2.shape[1]
    if bins is None:
        return [d for d in range(n_dyn) if curves.n_pixels[d] > 0]
    bad = [b for b in bins if not 0 <= b < n_dyn]
    if bad:
        raise InvalidInput(
            f"bins {bad} are out of range; use zero-based bin indices 0..{n_dyn - 1}.",
            details={"field": "bins"},
        )
    return list(bins)


def _fit_curve(curves: G2Curves, fit: G2Fit, d: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    tau = np.geomspace(curves.tau_s[0], curves.tau_s[-1], _N_CURVE_POINTS)
    return tau, g2_model(tau, fit.gamma_per_s[d], fit.contrast[d], fit.baseline[d])


def _save(fig: Figure, path: str | Path) -> Path:
    target = Path(path)
    FigureCanvasAgg(fig)  # attach the Agg canvas: raster output without any GUI backend
    fig.savefig(target, format="png")
    return target


def plot_g2(
    curves: G2Curves,
    path: str | Path,
    *,
    fit: G2Fit | None = None,
    bins: list[int] | None = None,
    max_panels: int = 12,
) -> Path:
    """One panel per dynamic bin: g2 with error bars against τ (log axis) and the fitted curve.

    Returns ``path``."""
    chosen = _bins(curves, bins)[:max_panels]
    n_cols = min(4, max(1, len(chosen)))
    n_rows = max(1, math.ceil(len(chosen) / n_cols))
    # Fixed margins, not the constrained layout engine: it measured every tick label of every panel
    # again and took half of the drawing time.
    fig = Figure(figsize=(3.2 * n_cols, 2.6 * n_rows))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.95, wspace=0.3, hspace=0.35)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True)
    for ax in axes.ravel()[len(chosen) :]:
        ax.set_visible(False)
    for ax, d in zip(axes.ravel(), chosen, strict=False):
        ax.errorbar(
            curves.tau_s, curves.g2[:, d], yerr=curves.g2_err[:, d], fmt="o", ms=3, lw=0.8, label="data"
        )
        if fit is not None and fit.ok[d]:
            tau, model = _fit_curve(curves, fit, d)
            ax.plot(tau, model, "-", lw=1.2, label=f"Γ = {fit.gamma_per_s[d]:.4g} s⁻¹")
            ax.legend(fontsize=7, loc="upper right")
        ax.set_xscale("log")
        ax.set_title(f"q = {curves.q[d]:.4g} nm⁻¹", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("τ (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("g2")
    return _save(fig, path)


def plot_gamma_q2(
    curves: G2Curves,
    fit: G2Fit,
    path: str | Path,
    *,
    diffusion: DiffusionFit | None = None,
    where: NDArray[np.bool_] | None = None,
) -> Path:
    """Γ against ⟨q²⟩ with error bars, the bins used for D filled, and the line Γ = D·q². Returns path."""
    used = fit.ok if where is None else np.asarray(where, dtype=bool) & fit.ok
    fig = Figure(figsize=(5.0, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.errorbar(curves.q2[used], fit.gamma_per_s[used], yerr=fit.gamma_err[used], fmt="o", label="fitted Γ")
    others = fit.ok & ~used
    if others.any():
        ax.errorbar(
            curves.q2[others],
            fit.gamma_per_s[others],
            yerr=fit.gamma_err[others],
            fmt="o",
            mfc="none",
            label="not used for D",
        )
    if diffusion is not None:
        q2 = np.array([0.0, float(np.nanmax(curves.q2))])
        ax.plot(
            q2, diffusion.diffusion_nm2_s * q2, "-", label=f"D = {diffusion.diffusion_nm2_s * 1e-6:.4g} µm²/s"
        )
    ax.set_xlabel("q² (nm⁻²)")
    ax.set_ylabel("Γ (s⁻¹)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _json_list(values: NDArray[Any]) -> list[float | None]:
    """Floats with NaN/inf as None (JSON has no NaN)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def plot_data(
    curves: G2Curves,
    fit: G2Fit | None = None,
    diffusion: DiffusionFit | None = None,
    *,
    where: NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """The plotted numbers as JSON-serialisable dicts: ``{"g2": ..., "gamma_vs_q2": ...}``."""
    bins = []
    for d in range(curves.g2.shape[1]):
        entry: dict[str, Any] = {
            "bin": d + 1,
            "q_nm-1": _json_float(curves.q[d]),
            "n_pixels": int(curves.n_pixels[d]),
            "g2": _json_list(curves.g2[:, d]),
            "g2_err": _json_list(curves.g2_err[:, d]),
        }
        if fit is not None and fit.ok[d]:
            tau, model = _fit_curve(curves, fit, d)
            entry["fit"] = {
                "gamma_per_s": _json_float(fit.gamma_per_s[d]),
                "gamma_err": _json_float(fit.gamma_err[d]),
                "contrast": _json_float(fit.contrast[d]),
                "baseline": _json_float(fit.baseline[d]),
                "tau_s": _json_list(tau),
                "g2": _json_list(model),
            }
        bins.append(entry)
    out: dict[str, Any] = {
        "g2": {
            "tau_s": _json_list(curves.tau_s),
            "tau_frames": [int(t) for t in curves.tau_frames],
            "bins": bins,
        }
    }
    if fit is not None:
        used = fit.ok if where is None else np.asarray(where, dtype=bool) & fit.ok
        gamma: dict[str, Any] = {
            "q2_nm-2": _json_list(curves.q2),
            "gamma_per_s": _json_list(fit.gamma_per_s),
            "gamma_err": _json_list(fit.gamma_err),
            "used": [bool(u) for u in used],
        }
        if diffusion is not None:
            q2_max = float(np.nanmax(curves.q2))
            gamma["diffusion_nm2_s"] = _json_float(diffusion.diffusion_nm2_s)
            gamma["diffusion_err"] = _json_float(diffusion.diffusion_err)
            gamma["line"] = {
                "q2_nm-2": [0.0, q2_max],
                "gamma_per_s": [0.0, diffusion.diffusion_nm2_s * q2_max],
            }
        out["gamma_vs_q2"] = gamma
    return out
