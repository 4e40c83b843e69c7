"""The XPCS flow's compute steps: correlate (on a Parsl endpoint), then plot and gather metadata.

Each step is a plain module-level function, pickled by reference, that an endpoint calls with JSON keyword
arguments (paths as strings) and whose return value is JSON (dicts of str, float, int, bool, list and None;
never NaN). The steps hand each other paths: :func:`correlate` writes ``<stem>_results.h5``
(:mod:`.results`) and returns its path; :func:`plot` reads it; :func:`gather_metadata` takes the measurement
and the summary :func:`correlate` returned.

A missing, corrupted or foreign measurement raises :class:`~beamlink.errors.InvalidInput` from
:func:`~beamlink.apps.xpcs.measurement.read_measurement`, whose message names the file and the fix; that
message is what the CLI and the portal show when the step fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beamlink.apps.step_io import finite as _finite
from beamlink.apps.step_io import output_dir as _output_dir
from beamlink.apps.step_io import path_argument as _path_argument
from beamlink.apps.xpcs.correlate import DEFAULT_BATCH_FRAMES, correlate_g2
from beamlink.apps.xpcs.fit import DiffusionFit, fit_diffusion, fit_g2, g2_model, reliable_bins
from beamlink.apps.xpcs.measurement import iter_frames, read_measurement
from beamlink.apps.xpcs.metadata import extract_metadata
from beamlink.apps.xpcs.results import XpcsResults, read_results, write_results
from beamlink.errors import InvalidInput

__all__ = ["correlate", "gather_metadata", "plot"]

logger = logging.getLogger(__name__)

DIFFUSION_UNIT = "nm^2/s"
G2_PNG = "g2.png"
GAMMA_PNG = "gamma_q2.png"
_PLOT_BINS = 4  # g2 curves in the portal plot: enough to see the q dependence, small enough for a record
_FIT_POINTS = 40  # points of each fitted g2 curve in the portal plot


def _json_list(values: NDArray[Any]) -> list[float | None]:
    return [_finite(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _diffusion_summary(diffusion: DiffusionFit | None, truth: Mapping[str, object]) -> dict[str, Any]:
    d = None if diffusion is None else _finite(diffusion.diffusion_nm2_s)
    d_true = _finite(truth.get("diffusion_nm2_s"))
    relative = None if d is None or not d_true else abs(d - d_true) / d_true
    return {
        "D": d,
        "D_err": None if diffusion is None else _finite(diffusion.diffusion_err),
        "D_true": d_true,
        "relative_error": relative,
        "unit": DIFFUSION_UNIT,
    }


def correlate(
    measurement: str, output_dir: str, dpl: int = 4, batch_frames: int = DEFAULT_BATCH_FRAMES
) -> dict[str, Any]:
    """Multi-tau g2 of a measurement file, Γ per q bin and D; writes ``<output_dir>/<stem>_results.h5``.

    The frames are streamed from the file in batches of ``batch_frames``; ``dpl`` is the number of lags per
    multi-tau level. Returns a JSON summary::

        {"results": absolute path of the results file, "results_name": its file name,
         "diffusion": {"D", "D_err", "D_true", "relative_error", "unit": "nm^2/s"},   (None when unknown)
         "n_frames", "frame_shape": [height, width], "n_q_bins", "n_q_bins_used",
         "seconds": wall time of the correlation (reading the frames included),
         "megapixel_frames_per_s": height·width·n_frames / 10⁶ / seconds,
         "warnings": [plain-language notes, e.g. why D is None]}

    ``D_true`` comes from the truth attributes of a synthetic measurement, else None. A missing, corrupted
    or foreign measurement raises InvalidInput naming the file.
    """
    source = _path_argument(measurement, "measurement")
    header = read_measurement(source, load_frames=False)
    out = _output_dir(output_dir)
    height, width = header.geometry.shape

    started = time.perf_counter()
    curves = correlate_g2(
        iter_frames(source, batch_frames=batch_frames),
        header.partition,
        frame_interval_s=header.frame_interval_s,
        dpl=dpl,
        batch_frames=batch_frames,
    )
    seconds = time.perf_counter() - started
    logger.debug(
        "correlated %s: %d frames of %dx%d px in %.3f s", source, curves.n_frames, height, width, seconds
    )

    fit = fit_g2(curves)
    reliable = reliable_bins(fit, frame_interval_s=curves.frame_interval_s, n_frames=curves.n_frames)
    warnings: list[str] = []
    diffusion: DiffusionFit | None = None
    try:
        diffusion = fit_diffusion(curves.q2, fit.gamma_per_s, fit.gamma_err, where=reliable)
    except InvalidInput as exc:
        # The g2 curves are still worth plotting and publishing; only D is missing.
        warnings.append(f"D was not fitted: {exc.message}")

    results_path = out.absolute() / f"{source.stem}_results.h5"
    write_results(
        results_path,
        curves=curves,
        fit=fit,
        reliable=reliable,
        diffusion=diffusion,
        source=source.name,
        frame_shape=(height, width),
        dpl=dpl,
        correlation_seconds=seconds,
        sample=header.sample,
        truth=header.truth,
    )
    return {
        "results": str(results_path),
        "results_name": results_path.name,
        "diffusion": _diffusion_summary(diffusion, header.truth),
        "n_frames": int(curves.n_frames),
        "frame_shape": [int(height), int(width)],
        "n_q_bins": int(curves.g2.shape[1]),
        "n_q_bins_used": 0 if diffusion is None else int(diffusion.n_bins),
        "seconds": seconds,
        "megapixel_frames_per_s": height * width * curves.n_frames / 1e6 / seconds if seconds > 0 else None,
        "warnings": warnings,
    }


def _g2_plot(r: XpcsResults) -> dict[str, Any]:
    """g2(τ) of up to ``_PLOT_BINS`` bins spread over q, with their fitted curves."""
    curves, fit = r.curves, r.fit
    fitted = [d for d in range(curves.g2.shape[1]) if fit.ok[d]]
    candidates = fitted or [d for d in range(curves.g2.shape[1]) if np.isfinite(curves.g2[:, d]).any()]
    picks = sorted({candidates[round(i)] for i in np.linspace(0, len(candidates) - 1, _PLOT_BINS)})
    series: list[dict[str, Any]] = []
    tau_fit = np.geomspace(curves.tau_s[0], curves.tau_s[-1], _FIT_POINTS)
    for d in picks if candidates else []:
        label = f"q = {curves.q[d]:.4g} nm⁻¹"
        series.append({"name": label, "x": _json_list(curves.tau_s), "y": _json_list(curves.g2[:, d])})
        if fit.ok[d]:
            model = g2_model(tau_fit, fit.gamma_per_s[d], fit.contrast[d], fit.baseline[d])
            series.append(
                {
                    "name": f"fit, {label}: Γ = {fit.gamma_per_s[d]:.4g} s⁻¹",
                    "x": _json_list(tau_fit),
                    "y": _json_list(model),
                }
            )
    if not series:  # the portal model wants one series at least; an all-empty measurement still plots
        series.append({"name": "g2", "x": _json_list(curves.tau_s), "y": [None] * curves.tau_s.size})
    return {
        "title": f"g2(τ) of {len(picks) if candidates else 0} of {curves.g2.shape[1]} q bins",
        "x_label": "τ (s)",
        "y_label": "g2",
        "log_x": True,
        "log_y": False,
        "series": series,
    }


def _gamma_plot(r: XpcsResults) -> dict[str, Any]:
    """Γ against q², the bins used for D apart from the others, and the line Γ = D·q²."""
    curves, fit = r.curves, r.fit
    used = r.reliable & fit.ok
    others = fit.ok & ~used
    series: list[dict[str, Any]] = [
        {"name": "Γ, used for D", "x": _json_list(curves.q2[used]), "y": _json_list(fit.gamma_per_s[used])}
    ]
    if others.any():
        series.append(
            {
                "name": "Γ, not used",
                "x": _json_list(curves.q2[others]),
                "y": _json_list(fit.gamma_per_s[others]),
            }
        )
    if r.diffusion is not None:
        q2_max = float(np.nanmax(curves.q2))
        d = r.diffusion.diffusion_nm2_s
        series.append(
            {
                "name": f"Γ = D·q², D = {d * 1e-6:.4g} µm²/s",
                "x": [0.0, _finite(q2_max)],
                "y": [0.0, _finite(d * q2_max)],
            }
        )
    return {
        "title": "Relaxation rate Γ against q²",
        "x_label": "q² (nm⁻²)",
        "y_label": "Γ (s⁻¹)",
        "log_x": False,
        "log_y": False,
        "series": series,
    }


def plot(results: str, output_dir: str) -> dict[str, Any]:
    """Draw ``g2.png`` and ``gamma_q2.png`` from a results file into ``output_dir`` (created if needed).

    Returns ``{"images": [{"name", "caption"}, ...], "plots": [...]}``: the image names are relative to
    ``output_dir``; each plot is a :class:`beamlink.protocol.search.Plot` dict (title, axis labels, log
    flags, series of x/y lists with None for missing values), a few hundred numbers in all, small enough for
    a search record.
    """
    # matplotlib is imported by this step only: the correlate step's endpoint never pays for it.
    from beamlink.apps.xpcs.plots import plot_g2, plot_gamma_q2

    r = read_results(_path_argument(results, "results"))
    out = _output_dir(output_dir)
    plot_g2(r.curves, out / G2_PNG, fit=r.fit)
    plot_gamma_q2(r.curves, r.fit, out / GAMMA_PNG, diffusion=r.diffusion, where=r.reliable)
    n_bins = r.curves.g2.shape[1]
    if r.diffusion is None:
        gamma_caption = "Γ against q²; no D: fewer than 2 q bins had a resolved decay."
    else:
        d = r.diffusion
        gamma_caption = (
            f"Γ against q² with the line Γ = D·q², D = {d.diffusion_nm2_s * 1e-6:.4g} ± "
            f"{d.diffusion_err * 1e-6:.2g} µm²/s from {d.n_bins} of {n_bins} q bins."
        )
    return {
        "images": [
            {
                "name": G2_PNG,
                "caption": f"g2(τ) per q bin of {r.source} with the fitted baseline + β·exp(-2Γτ).",
            },
            {"name": GAMMA_PNG, "caption": gamma_caption},
        ],
        "plots": [_g2_plot(r), _gamma_plot(r)],
    }


def _json_value(value: object) -> object:
    """A metadata value as strict JSON: NaN/inf become None, NumPy scalars and arrays plain Python."""
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float):
        return _finite(value)
    return value


def _fit_record(correlation: Mapping[str, Any]) -> dict[str, Any]:
    diffusion = correlation.get("diffusion")
    fit = diffusion if isinstance(diffusion, Mapping) else {}
    n_used = correlation.get("n_q_bins_used")
    n_frames = correlation.get("n_frames")
    return {
        "diffusion_nm2_s": _finite(fit.get("D")),
        "diffusion_err_nm2_s": _finite(fit.get("D_err")),
        "diffusion_true_nm2_s": _finite(fit.get("D_true")),
        "diffusion_relative_error": _finite(fit.get("relative_error")),
        "n_frames_correlated": n_frames if isinstance(n_frames, int) else None,
        "n_q_bins_used": n_used if isinstance(n_used, int) else None,
    }


def gather_metadata(measurement: str, correlation: dict[str, Any] | None = None) -> dict[str, Any]:
    """Flat search-record metadata of a measurement, with the fit summary of the correlate step.

    Returns :func:`~beamlink.apps.xpcs.metadata.extract_metadata` (NaN and infinities as None) plus
    ``title`` ("XPCS <stem>"), ``description`` (one sentence, with D when known), ``keywords`` (list),
    ``technique`` ("XPCS"), ``sample`` (the sample's name, when the file has one) and, given the summary
    ``correlation`` that :func:`correlate` returned: ``diffusion_nm2_s``, ``diffusion_err_nm2_s``,
    ``diffusion_true_nm2_s``, ``diffusion_relative_error``, ``n_frames_correlated``, ``n_q_bins_used``
    (None where the summary lacks them).
    """
    source = _path_argument(measurement, "measurement")
    if correlation is not None and not isinstance(correlation, Mapping):
        raise InvalidInput(
            f"correlation must be the dict the correlate step returned (or null), got "
            f"{type(correlation).__name__}.",
            details={"field": "correlation"},
        )
    record: dict[str, Any] = {key: _json_value(value) for key, value in extract_metadata(source).items()}
    sample = record.get("sample_name")
    subject = str(sample) if sample else source.name
    keywords = ["XPCS", "X-ray photon correlation spectroscopy", "g2", "dynamics"]
    if sample:
        record["sample"] = str(sample)
        keywords.append(str(sample))
    if record.get("synthetic"):
        keywords.append("synthetic")

    fit = _fit_record(correlation) if correlation is not None else {}
    record.update(fit)
    d, d_err = fit.get("diffusion_nm2_s"), fit.get("diffusion_err_nm2_s")
    if d is not None:
        keywords.append("diffusion")
        error = f" ± {d_err * 1e-6:.2g}" if d_err is not None else ""
        used = f" from {fit['n_q_bins_used']} q bins" if fit.get("n_q_bins_used") else ""
        description = (
            f"XPCS of {subject}: diffusion coefficient D = {d * 1e-6:.4g}{error} µm²/s{used} over "
            f"{record['n_frames']} frames."
        )
    else:
        description = (
            f"XPCS of {subject}: {record['n_frames']} frames of {record['frame_height_px']}x"
            f"{record['frame_width_px']} px every {float(record['frame_interval_s']) * 1e6:.4g} µs."
        )
    record.update(
        {
            "title": f"XPCS {source.stem}",
            "description": description,
            "keywords": keywords,
            "technique": "XPCS",
        }
    )
    return record
