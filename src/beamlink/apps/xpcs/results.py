"""The XPCS results file: g2 curves, per-bin fits and D of one measurement, in one small HDF5 file.

The correlate step writes it next to nothing else; the plot step (and anyone later) reads it back without
the frame stack. Layout (version 1)::

    /                 attrs: beamlink_format = "xpcs-results", format_version = 1,
                             source (measurement file name), n_frames, frame_height_px, frame_width_px,
                             frame_interval_s, dpl, correlation_seconds
    /g2/tau_frames    (n_tau,) int64        lags, frames
    /g2/levels        (n_tau,) int64        multi-tau level of each lag
    /g2/tau_s         (n_tau,) float64      lags, seconds
    /g2/g2            (n_tau, n_bins)       g2 per dynamic q bin (NaN: empty bin)
    /g2/g2_err        (n_tau, n_bins)       its 1-sigma error (NaN at single-pair lags)
    /g2/q, /g2/q2     (n_bins,)             ⟨q⟩ nm⁻¹ and ⟨q²⟩ nm⁻² per bin
    /g2/n_pixels      (n_bins,) int64       pixels per bin
    /fit/gamma_per_s, gamma_err, contrast, contrast_err, baseline, baseline_err, reduced_chi2
                      (n_bins,) float64     baseline + β·exp(-2Γτ) per bin (NaN where the fit failed)
    /fit/ok           (n_bins,) bool        the fit converged
    /fit/reliable     (n_bins,) bool        the bins used for D (see fit.reliable_bins)
    /diffusion        attrs: diffusion_nm2_s, diffusion_err, n_bins, reduced_chi2
                      (absent when fewer than 2 bins were reliable)
    /sample, /truth   attrs copied from the measurement (truth only for synthetic data)
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from beamlink.apps.step_io import open_hdf5
from beamlink.apps.xpcs.correlate import G2Curves
from beamlink.apps.xpcs.fit import DiffusionFit, G2Fit
from beamlink.apps.xpcs.measurement import AttrValue
from beamlink.errors import InvalidInput

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "XpcsResults", "read_results", "write_results"]

FORMAT_NAME = "xpcs-results"
FORMAT_VERSION = 1
_CURVE_FIELDS = ("tau_frames", "levels", "tau_s", "g2", "g2_err", "q", "q2", "n_pixels")
_FIT_FIELDS = (
    "gamma_per_s",
    "gamma_err",
    "contrast",
    "contrast_err",
    "baseline",
    "baseline_err",
    "reduced_chi2",
    "ok",
)
_DIFFUSION_FIELDS = ("diffusion_nm2_s", "diffusion_err", "n_bins", "reduced_chi2")


@dataclass(frozen=True)
class XpcsResults:
    """What the correlate step found, as the plot functions take it.

    Attributes:
        curves: the g2 curves (n_frames and frame_interval_s included).
        fit: Γ, contrast and baseline per dynamic bin.
        reliable: the bins D was fitted on, (n_bins,).
        diffusion: D from Γ = D·q², or None when fewer than 2 bins were reliable.
        source: file name of the measurement.
        frame_shape: detector frame (height, width), pixels.
        dpl: multi-tau lags per level used.
        correlation_seconds: wall time of the correlation.
        sample: the measurement's sample attributes.
        truth: the measurement's known answer (synthetic data only).
    """

    curves: G2Curves
    fit: G2Fit
    reliable: NDArray[np.bool_]
    diffusion: DiffusionFit | None
    source: str
    frame_shape: tuple[int, int]
    dpl: int
    correlation_seconds: float
    sample: Mapping[str, AttrValue] = field(default_factory=dict)
    truth: Mapping[str, AttrValue] = field(default_factory=dict)


def write_results(
    path: str | Path,
    *,
    curves: G2Curves,
    fit: G2Fit,
    reliable: NDArray[np.bool_],
    diffusion: DiffusionFit | None,
    source: str,
    frame_shape: tuple[int, int],
    dpl: int,
    correlation_seconds: float,
    sample: Mapping[str, AttrValue] | None = None,
    truth: Mapping[str, AttrValue] | None = None,
) -> Path:
    """Write a results file (layout in the module docstring); returns the path."""
    target = Path(path)
    n_bins = curves.g2.shape[1]
    used = np.asarray(reliable, dtype=bool)
    if used.shape != (n_bins,):
        raise InvalidInput(
            f"reliable must be a boolean mask of the {n_bins} q bins, got shape {used.shape}; pass "
            f"reliable_bins(fit, ...).",
            details={"field": "reliable"},
        )
    with h5py.File(target, "w") as f:
        f.attrs["beamlink_format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["source"] = source
        f.attrs["n_frames"] = int(curves.n_frames)
        f.attrs["frame_height_px"] = int(frame_shape[0])
        f.attrs["frame_width_px"] = int(frame_shape[1])
        f.attrs["frame_interval_s"] = float(curves.frame_interval_s)
        f.attrs["dpl"] = int(dpl)
        f.attrs["correlation_seconds"] = float(correlation_seconds)
        g2 = f.create_group("g2")
        for name in _CURVE_FIELDS:
            g2.create_dataset(name, data=getattr(curves, name))
        fits = f.create_group("fit")
        for name in _FIT_FIELDS:
            fits.create_dataset(name, data=getattr(fit, name))
        fits.create_dataset("reliable", data=used)
        if diffusion is not None:
            group = f.create_group("diffusion")
            for name in _DIFFUSION_FIELDS:
                group.attrs[name] = getattr(diffusion, name)
        for group_name, attrs in (("sample", sample), ("truth", truth)):
            if attrs:
                group = f.create_group(group_name)
                for key, value in attrs.items():
                    group.attrs[key] = value
    return target


def _open(path: str | Path) -> AbstractContextManager[Any]:
    return open_hdf5(
        path,
        what="results file",
        field="results",
        format_name=FORMAT_NAME,
        kind="beamlink XPCS results file",
        fix="pass the file the correlate step wrote",
        missing_fix="run the correlate step first and pass the 'results' path it returned",
        broken_fix="run the correlate step again",
    )


def _array(f: Any, name: str) -> NDArray[Any]:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise InvalidInput(
            f"results file {f.filename} has no dataset /{name}; the file is incomplete: run the correlate "
            f"step again.",
            details={"field": "results", "path": str(f.filename), "dataset": f"/{name}"},
        )
    return np.asarray(obj[()])


def _attrs(f: Any, group: str) -> dict[str, AttrValue]:
    obj = f.get(group)
    if obj is None:
        return {}
    return {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in obj.attrs.items()}


def read_results(path: str | Path) -> XpcsResults:
    """Read a results file written by :func:`write_results`; a missing, damaged or foreign file raises
    InvalidInput naming it."""
    with _open(path) as f:
        root = _attrs(f, "/")
        curve = {name: _array(f, f"g2/{name}") for name in _CURVE_FIELDS}
        fits = {name: _array(f, f"fit/{name}") for name in _FIT_FIELDS}
        reliable = _array(f, "fit/reliable").astype(bool)
        diffusion_attrs = _attrs(f, "diffusion")
        sample, truth = _attrs(f, "sample"), _attrs(f, "truth")
    try:
        curves = G2Curves(
            tau_frames=curve["tau_frames"].astype(np.int64),
            levels=curve["levels"].astype(np.int64),
            tau_s=curve["tau_s"].astype(np.float64),
            g2=curve["g2"].astype(np.float64),
            g2_err=curve["g2_err"].astype(np.float64),
            q=curve["q"].astype(np.float64),
            q2=curve["q2"].astype(np.float64),
            n_pixels=curve["n_pixels"].astype(np.int64),
            n_frames=int(root["n_frames"]),
            frame_interval_s=float(root["frame_interval_s"]),
        )
        fit = G2Fit(**{name: fits[name].astype(bool if name == "ok" else np.float64) for name in _FIT_FIELDS})
        diffusion = (
            DiffusionFit(
                diffusion_nm2_s=float(diffusion_attrs["diffusion_nm2_s"]),
                diffusion_err=float(diffusion_attrs["diffusion_err"]),
                n_bins=int(diffusion_attrs["n_bins"]),
                reduced_chi2=float(diffusion_attrs["reduced_chi2"]),
            )
            if diffusion_attrs
            else None
        )
        return XpcsResults(
            curves=curves,
            fit=fit,
            reliable=reliable,
            diffusion=diffusion,
            source=str(root["source"]),
            frame_shape=(int(root["frame_height_px"]), int(root["frame_width_px"])),
            dpl=int(root["dpl"]),
            correlation_seconds=float(root["correlation_seconds"]),
            sample=sample,
            truth=truth,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"results file {path} lacks or garbles an attribute ({exc!r}); the file is incomplete: run the "
            f"correlate step again.",
            details={"field": "results", "path": str(path)},
        ) from exc
