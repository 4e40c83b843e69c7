# ruff: noqa: RUF002  (Greek letters in the docstrings are meant)
"""The ptychography flow's compute steps: reconstruct (on the compute endpoint), then plot (non_compute).

Plain module-level functions an endpoint calls with JSON keyword arguments (paths as strings) and whose
return value is JSON (never NaN). :func:`reconstruct` reads a scan file (:mod:`.inputs`), runs an engine of
:mod:`.reconstruct` (rPIE with probe refinement by default), compares the object with the truth when the file
has it (:mod:`.compare`: global phase and, when the probe was refined, phase ramp removed; NRMSE over the
illuminated region) and writes ``<stem>_reconstruction.h5``; :func:`plot` draws the object and probe
(:mod:`.plots`) and returns the convergence curve and a phase profile as plot data.

A bad scan (empty stack, wrong dtype or shape, NaN in a pattern, positions outside the object ...) raises
:class:`~beamlink.errors.InvalidInput` from :func:`~beamlink.apps.ptycho.inputs.read_scan`, whose message
names the file and the fix; that message is what the CLI and the portal show when the step fails.

Results file layout (version 1)::

    /                attrs: beamlink_format = "ptycho-reconstruction", format_version = 1, source (scan
                            file name), algorithm, iterations, update_probe, seconds
    /object, /probe  the reconstruction, complex
    /errors          (iterations,) data error E_data per iteration
    /mask            (n0, n1) bool, the illuminated region
    /aligned_object  γ·e^{iφ}·O: the object with the ambiguities removed (only when the truth is known)
    /truth/object, /truth/probe   copied from the scan (only when known)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from beamlink.apps.ptycho.compare import align_object, illumination_mask, object_nrmse
from beamlink.apps.ptycho.inputs import PtychoScan, read_scan
from beamlink.apps.ptycho.reconstruct import Reconstruction, dm, epie, rpie
from beamlink.apps.step_io import finite as _finite
from beamlink.apps.step_io import output_dir as _output_dir
from beamlink.apps.step_io import path_argument as _path_argument
from beamlink.errors import InvalidInput

__all__ = ["ALGORITHMS", "plot", "read_reconstruction", "reconstruct"]

logger = logging.getLogger(__name__)

ALGORITHMS = ("rPIE", "ePIE", "DM")
RESULTS_FORMAT = "ptycho-reconstruction"
RECONSTRUCTION_PNG = "reconstruction.png"
TRUTH_PNG = "truth.png"


def _algorithm(name: object) -> str:
    known = {a.lower(): a for a in ALGORITHMS}
    if not isinstance(name, str) or name.lower() not in known:
        raise InvalidInput(
            f"algorithm must be one of {list(ALGORITHMS)}, got {name!r}; rPIE with update_probe=true is "
            "the default.",
            details={"field": "algorithm"},
        )
    return known[name.lower()]


def _run_engine(
    algorithm: str,
    scan_arrays: tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.complex128], tuple[int, int]],
    *,
    n_iter: int,
    alpha: float | None,
    beta: float | None,
    update_probe: bool,
    probe_update_start: int,
    seed: int,
) -> Reconstruction:
    intensities, positions, probe, shape = scan_arrays
    options: dict[str, Any] = {
        "object_shape": shape,
        "n_iter": n_iter,
        "update_probe": update_probe,
        "probe_update_start": probe_update_start,
    }
    if beta is not None:
        options["beta"] = beta
    if algorithm == "DM":
        if alpha is not None:
            raise InvalidInput(
                "alpha is a PIE step size and DM has none; leave alpha out (null) or pick rPIE or ePIE.",
                details={"field": "alpha"},
            )
        return dm(intensities, positions, probe, **options)
    if alpha is not None:
        options["alpha"] = alpha
    engine = rpie if algorithm == "rPIE" else epie
    return engine(intensities, positions, probe, seed=seed, **options)


def reconstruct(
    scan: str,
    output_dir: str,
    algorithm: str = "rPIE",
    n_iter: int = 100,
    alpha: float | None = None,
    beta: float | None = None,
    update_probe: bool = True,
    probe_update_start: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Reconstruct the object (and the probe) of a scan file; write ``<output_dir>/<stem>_reconstruction.h5``.

    ``algorithm`` is rPIE, ePIE or DM; ``alpha`` and ``beta`` are the engine's step sizes or weights (None:
    the engine's defaults, 0.1 for rPIE, 1 for ePIE and DM); ``update_probe`` refines the file's probe from
    iteration ``probe_update_start`` on. Returns a JSON summary::

        {"results", "results_name", "scan_name", "sample", "synthetic", "photons",
         "algorithm", "iterations", "update_probe",
         "initial_data_error", "final_data_error",       E_data of the first and the last iteration
         "nrmse", "nrmse_scale_only",                      against the truth (None when the file has none)
         "truth_known", "n_positions", "object_shape", "probe_shape",
         "seconds", "seconds_per_iteration", "warnings"}

    ``nrmse`` removes the global complex scale and, when the probe was refined, the phase ramp too;
    ``nrmse_scale_only`` removes the scale only. A bad scan raises InvalidInput naming the file.
    """
    source = _path_argument(scan, "scan")
    engine = _algorithm(algorithm)
    if not isinstance(update_probe, bool):
        raise InvalidInput(
            f"update_probe must be true or false, got {update_probe!r}.", details={"field": "update_probe"}
        )
    data = read_scan(source)
    out = _output_dir(output_dir)

    started = time.perf_counter()
    result = _run_engine(
        engine,
        (data.intensities, data.positions, data.probe, data.object_shape),
        n_iter=n_iter,
        alpha=alpha,
        beta=beta,
        update_probe=update_probe,
        probe_update_start=probe_update_start,
        seed=seed,
    )
    seconds = time.perf_counter() - started
    if not (np.isfinite(result.object).all() and np.isfinite(result.probe).all()):
        raise InvalidInput(
            f"the {engine} reconstruction of {source.name} diverged (the object or the probe is no longer "
            "finite); lower alpha and beta, or start the probe update later (probe_update_start).",
            details={"field": "alpha", "path": str(source)},
        )
    logger.debug("%s of %s: %d iterations in %.3f s", engine, source, len(result.errors), seconds)

    mask = illumination_mask(
        data.truth_probe if data.truth_probe is not None else result.probe, data.positions, data.object_shape
    )
    nrmse = scale_only = None
    aligned = None
    if data.truth_object is not None:
        nrmse = object_nrmse(data.truth_object, result.object, mask, remove_ramp=update_probe)
        scale_only = object_nrmse(data.truth_object, result.object, mask)
        aligned = align_object(data.truth_object, result.object, mask, remove_ramp=update_probe)

    warnings: list[str] = []
    errors = result.errors
    if not errors[-1] < errors[0]:
        warnings.append(
            f"the data error did not decrease ({errors[0]:.3g} → {errors[-1]:.3g}); check the positions "
            "and the probe guess."
        )
    results_path = out.absolute() / f"{source.stem}_reconstruction.h5"
    _write_reconstruction(
        results_path,
        result,
        mask=mask,
        aligned=aligned,
        source=source.name,
        seconds=seconds,
        scan=data,
        update_probe=update_probe,
    )
    iterations = len(errors)
    return {
        "results": str(results_path),
        "results_name": results_path.name,
        "scan_name": source.name,
        "sample": data.sample or None,
        "synthetic": data.synthetic,
        "photons": _finite(data.photons),
        "algorithm": result.algorithm,
        "iterations": iterations,
        "update_probe": update_probe,
        "initial_data_error": _finite(errors[0]),
        "final_data_error": _finite(errors[-1]),
        "nrmse": _finite(nrmse),
        "nrmse_scale_only": _finite(scale_only),
        "truth_known": data.truth_known,
        "n_positions": data.n_positions,
        "object_shape": [int(v) for v in data.object_shape],
        "probe_shape": [int(v) for v in data.probe.shape],
        "seconds": seconds,
        "seconds_per_iteration": seconds / iterations,
        "warnings": warnings,
    }


# -- the results file --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PtychoResults:
    """A results file read back: what :func:`plot` draws."""

    object: NDArray[np.complex128]
    probe: NDArray[np.complex128]
    errors: NDArray[np.float64]
    mask: NDArray[np.bool_]
    algorithm: str
    source: str
    update_probe: bool
    aligned_object: NDArray[np.complex128] | None
    truth_object: NDArray[np.complex128] | None
    truth_probe: NDArray[np.complex128] | None


def _write_reconstruction(
    path: Path,
    result: Reconstruction,
    *,
    mask: NDArray[np.bool_],
    aligned: NDArray[np.complex128] | None,
    source: str,
    seconds: float,
    scan: PtychoScan,
    update_probe: bool,
) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["beamlink_format"] = RESULTS_FORMAT
        f.attrs["format_version"] = 1
        f.attrs["source"] = source
        f.attrs["algorithm"] = result.algorithm
        f.attrs["iterations"] = len(result.errors)
        f.attrs["update_probe"] = update_probe
        f.attrs["seconds"] = float(seconds)
        f.create_dataset("object", data=result.object)
        f.create_dataset("probe", data=result.probe)
        f.create_dataset("errors", data=result.errors)
        f.create_dataset("mask", data=mask)
        if aligned is not None:
            f.create_dataset("aligned_object", data=aligned)
        if scan.truth_object is not None:
            f.create_dataset("truth/object", data=scan.truth_object)
        if scan.truth_probe is not None:
            f.create_dataset("truth/probe", data=scan.truth_probe)


def read_reconstruction(path: str | Path) -> PtychoResults:
    """Read a results file written by :func:`reconstruct`; a foreign or broken one is an InvalidInput."""
    source = Path(path)
    try:
        with h5py.File(source, "r") as f:
            if f.attrs.get("beamlink_format") != RESULTS_FORMAT:
                raise InvalidInput(
                    f"{source.name} is not a ptychography results file (written by the Reconstruct step); "
                    "pass the 'results' path that step returned.",
                    details={"field": "results", "path": str(source)},
                )

            def optional(name: str) -> NDArray[np.complex128] | None:
                return np.asarray(f[name][()]) if name in f else None

            return PtychoResults(
                object=np.asarray(f["object"][()]),
                probe=np.asarray(f["probe"][()]),
                errors=np.asarray(f["errors"][()]),
                mask=np.asarray(f["mask"][()], dtype=bool),
                algorithm=str(f.attrs["algorithm"]),
                source=str(f.attrs["source"]),
                update_probe=bool(f.attrs["update_probe"]),
                aligned_object=optional("aligned_object"),
                truth_object=optional("truth/object"),
                truth_probe=optional("truth/probe"),
            )
    except (OSError, KeyError) as exc:
        raise InvalidInput(
            f"results file {source} cannot be read ({exc}); run the Reconstruct step again.",
            details={"field": "results", "path": str(source)},
        ) from exc


# -- plots ---------------------------------------------------------------------------------------------


def _json_list(values: NDArray[Any]) -> list[float | None]:
    return [_finite(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _convergence_plot(r: PtychoResults) -> dict[str, Any]:
    iterations = np.arange(1, r.errors.size + 1)
    return {
        "title": f"{r.algorithm} convergence: data error per iteration",
        "x_label": "iteration",
        "y_label": "E_data = Σ(|Ψ| - √I)² / ΣI",
        "log_x": False,
        "log_y": True,
        "series": [{"name": "E_data", "x": _json_list(iterations), "y": _json_list(r.errors)}],
    }


def _phase_profile_plot(r: PtychoResults) -> dict[str, Any] | None:
    """The phase along the middle illuminated row: the aligned reconstruction against the truth."""
    if r.aligned_object is None or r.truth_object is None:
        return None
    rows = np.flatnonzero(r.mask.any(axis=1))
    row = int(rows[rows.size // 2])
    lit = r.mask[row]
    columns = np.arange(r.mask.shape[1])

    def phase(values: NDArray[np.complex128]) -> list[float | None]:
        return _json_list(np.where(lit, np.angle(values[row]), np.nan))

    return {
        "title": f"Object phase along row {row}: reconstruction against the truth",
        "x_label": "column (px)",
        "y_label": "phase (rad)",
        "log_x": False,
        "log_y": False,
        "series": [
            {"name": "truth", "x": _json_list(columns), "y": phase(r.truth_object)},
            {"name": f"{r.algorithm} (aligned)", "x": _json_list(columns), "y": phase(r.aligned_object)},
        ],
    }


def plot(results: str, output_dir: str) -> dict[str, Any]:
    """Draw ``reconstruction.png`` (and ``truth.png`` when the truth is known) into ``output_dir``.

    Returns ``{"images": [{"name", "caption"}, ...], "plots": [...]}``: image names relative to
    ``output_dir``; plots (:class:`beamlink.protocol.search.Plot` dicts) are the data error per iteration and,
    with the truth, the object phase along one row, reconstruction against truth.
    """
    # matplotlib is imported by this step only: the reconstruct step's endpoint never pays for it.
    from beamlink.apps.ptycho.plots import plot_reconstruction

    r = read_reconstruction(_path_argument(results, "results"))
    out = _output_dir(output_dir)
    shown = r.aligned_object if r.aligned_object is not None else r.object
    refined = "refined probe" if r.update_probe else "known probe"
    title = f"{r.algorithm}, {r.errors.size} iterations, {refined}: {r.source}"
    plot_reconstruction(shown, r.probe, mask=r.mask, title=title, path=out / RECONSTRUCTION_PNG)
    aligned = (
        " with the global phase"
        + (" and phase ramp" if r.update_probe else "")
        + " removed against the truth"
        if r.aligned_object is not None
        else ""
    )
    images = [
        {
            "name": RECONSTRUCTION_PNG,
            "caption": f"{r.algorithm} reconstruction of {r.source} ({refined}): object amplitude and phase"
            f"{aligned}, probe amplitude and phase; the object outside the illuminated region is blank.",
        }
    ]
    if r.truth_object is not None and r.truth_probe is not None:
        plot_reconstruction(
            r.truth_object, r.truth_probe, mask=r.mask, title=f"truth: {r.source}", path=out / TRUTH_PNG
        )
        images.append(
            {"name": TRUTH_PNG, "caption": "The true object and probe the synthetic patterns were made from."}
        )
    plots = [_convergence_plot(r)]
    profile = _phase_profile_plot(r)
    if profile is not None:
        plots.append(profile)
    return {"images": images, "plots": plots}
