"""The BraggNN flow's compute steps: train (or check a given model), locate peaks, plot.

Plain module-level functions an endpoint calls with JSON keyword arguments (paths as strings) and whose
return value is JSON (never NaN):

- :func:`train_model` (compute endpoint) trains a network on the peak file's training set and saves it as
  ``braggnn_model.pt`` in the results folder, or, given a model file, checks that it loads and fits the
  network its header describes and the file's patch size, and copies it there;
- :func:`locate_peaks` (compute endpoint) runs the network and the least-squares pseudo-Voigt fit it replaces
  (:mod:`beamlink.apps.braggnn.fit`) on the same patches, timing each in the same process, and scores both
  against the true centres when the file has them; it writes ``<stem>_centres.h5``;
- :func:`plot` (non_compute) draws the error histograms and a few patches with their centres, and returns
  the error histogram and the training loss as plot data.

Bad input (an empty stack, a wrong dtype or shape, NaN in a patch, a model file that does not match the
network, torch missing) raises :class:`~beamlink.errors.InvalidInput` whose message names the file and the
fix; that message is what the CLI and the portal show when the step fails.

Results file layout (``<stem>_centres.h5``, version 1)::

    /                attrs: beamlink_format = "braggnn-centres", format_version = 1, source, patch_size
    /predicted       (n, 2) network centres (x, y), patch pixels
    /fitted          (n, 2) least-squares centres (x, y)
    /fit_converged   (n,) bool
    /patches         (n, p, p) the patches (for the figures)
    /centres         (n, 2) true centres, when known
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from beamlink.apps.braggnn._torch import require_torch
from beamlink.apps.braggnn.evaluate import centre_errors, error_summary
from beamlink.apps.braggnn.fit import fit_patches
from beamlink.apps.braggnn.inputs import read_peaks
from beamlink.apps.braggnn.model import BraggNNConfig
from beamlink.apps.braggnn.training import TrainedModel, load_model, predict, save_model, train
from beamlink.apps.step_io import finite as _finite
from beamlink.apps.step_io import output_dir as _output_dir
from beamlink.apps.step_io import path_argument as _path_argument
from beamlink.errors import InvalidInput

__all__ = ["MODEL_FILE", "locate_peaks", "plot", "read_centres", "train_model"]

logger = logging.getLogger(__name__)

MODEL_FILE = "braggnn_model.pt"
RESULTS_FORMAT = "braggnn-centres"
ERRORS_PNG = "centre_errors.png"
PATCHES_PNG = "patches.png"
_WARM_UP = 64  # patches predicted once before timing: the first call pays for torch's lazy set-up
_HISTOGRAM_BINS = 20
_SHOWN_PATCHES = 8


def _load_given_model(path: Path) -> TrainedModel:
    """The model file, its problems worded with its name and how to go on."""
    try:
        return load_model(path)
    except InvalidInput as exc:
        if exc.details.get("dependency") == "torch":
            raise
        raise InvalidInput(
            f"model file {path.name}: {exc.message} In the app, give model= the braggnn_model.pt of an "
            "earlier run's results, or leave model out to train a new one.",
            details={**exc.details, "path": str(path)},
        ) from exc


def train_model(
    data: str,
    output_dir: str,
    model: str | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train BraggNN on the peak file's ``/train`` set, or check the given ``model`` file; either way the
    model ends up as ``<output_dir>/braggnn_model.pt``.

    Training uses Adam with ``lr`` decayed to 0 over ``epochs`` on a cosine (the short-run recipe of
    :func:`beamlink.apps.braggnn.training.train`); small batches suit small training sets (measured on
    2,048 synthetic patches, 5 epochs: batch 64 → 0.075 px mean error, batch 256 → 0.15 px). Returns::

        {"model": absolute path of the model file, "model_name", "trained": bool,
         "given_model": the file passed as ``model`` (None when trained here),
         "epochs", "n_train", "loss_history": [MSE per epoch], "seconds", "threads", "device",
         "architecture": {...}, "n_parameters", "torch_version", "patch_size"}

    ``threads`` is torch's thread count for the call (None: torch's default, one per core). It is 1 by
    default: BraggNN's tensors are tiny (11x11 patches), so more threads gain little, and on a node shared
    with other work torch's spinning threads stall — measured in the demo site on a loaded 2-core machine,
    the example's training took 5 s with 1 thread and 77 s with 2.

    A model file that does not fit the network its header describes, or whose patch size differs from
    the file's patches, raises InvalidInput naming the mismatch.
    """
    require_torch("the BraggNN Train step")
    source = _path_argument(data, "data")
    peaks = read_peaks(source)
    out = _output_dir(output_dir)
    target = out.absolute() / MODEL_FILE
    if model:
        given = _path_argument(model, "model")
        trained = _load_given_model(given)
        if trained.config.patch_size != peaks.patch_size:
            raise InvalidInput(
                f"model file {given.name} was built for {trained.config.patch_size}x"
                f"{trained.config.patch_size} patches but peak file {source.name} holds {peaks.patch_size}x"
                f"{peaks.patch_size} patches; pass a model trained on this patch size, or leave model out "
                "to train one.",
                details={"field": "model", "problem": "patch_size", "path": str(given)},
            )
        if given.absolute() != target:
            shutil.copyfile(given, target)
        history = list(trained.history)
        info = trained.info
        seconds = 0.0
    else:
        if peaks.train_patches is None or peaks.train_centres is None:
            raise InvalidInput(
                f"peak file {source.name} has no training set (/train/patches and /train/centres) and no "
                "model was given; add a training set with known centres, or pass model=<a model file on "
                "the remote collection>.",
                details={"field": "model", "path": str(source)},
            )
        config = BraggNNConfig(patch_size=peaks.patch_size)
        started = time.perf_counter()
        trained = train(
            peaks.train_patches,
            peaks.train_centres,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            schedule="cosine",
            seed=seed,
            device=device,
            config=config,
            threads=threads,
        )
        seconds = time.perf_counter() - started
        save_model(trained, target)
        history = list(trained.history)
        info = trained.info
        logger.debug("trained BraggNN on %d patches in %.2f s", peaks.train_patches.shape[0], seconds)
    return {
        "model": str(target),
        "model_name": target.name,
        "trained": not model,
        "given_model": str(model) if model else None,
        "epochs": info.get("epochs", len(history)),
        "n_train": info.get("n_patches"),
        "loss_history": [_finite(v) for v in history],
        "seconds": seconds if not model else None,
        "threads": info.get("threads"),
        "device": info.get("device"),
        "architecture": trained.config.to_dict(),
        "n_parameters": trained.config.n_parameters,
        "torch_version": info.get("torch_version"),
        "patch_size": trained.config.patch_size,
    }


def locate_peaks(
    data: str,
    model: str,
    output_dir: str,
    device: str = "cpu",
    threads: int | None = 1,
) -> dict[str, Any]:
    """Centres of the peak file's ``/patches`` by the network ``model`` and by least squares, timed.

    Both run here, one after the other, on the same patches; the network is warmed up on a few patches
    first so its time is inference, not set-up. Returns::

        {"results", "results_name", "n_patches", "patch_size", "truth_known",
         "nn": {"mean", "p50", "p75", "p95", "p99.5", "max"} (px, against the true centres; None if unknown),
         "fit": the same for the least-squares fit,
         "nn_fit_deviation": the same between the two methods (always),
         "centre_baseline_px": mean error of predicting the patch middle (None if unknown),
         "nn_seconds", "fit_seconds", "nn_patches_per_s", "fit_patches_per_s",
         "speedup": fit_seconds / nn_seconds, "fit_converged": fits that converged, "device", "threads"}

    With the default ``threads=1`` both methods use one core, so ``speedup`` compares them core for core.
    """
    require_torch("the BraggNN Infer step")
    source = _path_argument(data, "data")
    peaks = read_peaks(source)
    trained = _load_given_model(_path_argument(model, "model"))
    if trained.config.patch_size != peaks.patch_size:
        raise InvalidInput(
            f"the model was built for {trained.config.patch_size}x{trained.config.patch_size} patches but "
            f"peak file {source.name} holds {peaks.patch_size}x{peaks.patch_size} patches.",
            details={"field": "model", "problem": "patch_size"},
        )
    out = _output_dir(output_dir)

    predict(trained, peaks.patches[:_WARM_UP], device=device, threads=threads)
    started = time.perf_counter()
    predicted = predict(trained, peaks.patches, device=device, threads=threads)
    nn_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fits = fit_patches(peaks.patches, patch_size=peaks.patch_size)
    fit_seconds = time.perf_counter() - started
    fitted = fits.centres

    truth = peaks.centres
    nn = fit = None
    baseline = None
    if truth is not None:
        nn = error_summary(predicted, truth)
        fit = error_summary(fitted, truth)
        middle = np.full_like(truth, (peaks.patch_size - 1) / 2)
        baseline = float(centre_errors(middle, truth).mean())
    n = peaks.n_patches
    results_path = out.absolute() / f"{source.stem}_centres.h5"
    with h5py.File(results_path, "w") as f:
        f.attrs["beamlink_format"] = RESULTS_FORMAT
        f.attrs["format_version"] = 1
        f.attrs["source"] = source.name
        f.attrs["patch_size"] = peaks.patch_size
        f.create_dataset("predicted", data=predicted)
        f.create_dataset("fitted", data=fitted)
        f.create_dataset("fit_converged", data=fits.converged)
        f.create_dataset("patches", data=peaks.patches.astype(np.float32), compression="gzip")
        if truth is not None:
            f.create_dataset("centres", data=truth)
    return {
        "results": str(results_path),
        "results_name": results_path.name,
        "n_patches": n,
        "patch_size": peaks.patch_size,
        "truth_known": truth is not None,
        "nn": nn,
        "fit": fit,
        "nn_fit_deviation": error_summary(predicted, fitted),
        "centre_baseline_px": baseline,
        "nn_seconds": nn_seconds,
        "fit_seconds": fit_seconds,
        "nn_patches_per_s": n / nn_seconds if nn_seconds > 0 else None,
        "fit_patches_per_s": n / fit_seconds if fit_seconds > 0 else None,
        "speedup": fit_seconds / nn_seconds if nn_seconds > 0 else None,
        "fit_converged": int(fits.converged.sum()),
        "device": str(device),
        "threads": threads,
    }


# -- the results file and the figures -------------------------------------------------------------------


@dataclass(frozen=True)
class CentreResults:
    """A ``<stem>_centres.h5`` file read back."""

    source: str
    patches: NDArray[np.float32]
    predicted: NDArray[np.float64]
    fitted: NDArray[np.float64]
    centres: NDArray[np.float64] | None


def read_centres(path: str | Path) -> CentreResults:
    """Read a results file written by :func:`locate_peaks`; a foreign or broken one is an InvalidInput."""
    source = Path(path)
    try:
        with h5py.File(source, "r") as f:
            if f.attrs.get("beamlink_format") != RESULTS_FORMAT:
                raise InvalidInput(
                    f"{source.name} is not a BraggNN results file (written by the Infer step); pass the "
                    "'results' path that step returned.",
                    details={"field": "results", "path": str(source)},
                )
            return CentreResults(
                source=str(f.attrs["source"]),
                patches=np.asarray(f["patches"][()]),
                predicted=np.asarray(f["predicted"][()]),
                fitted=np.asarray(f["fitted"][()]),
                centres=np.asarray(f["centres"][()]) if "centres" in f else None,
            )
    except (OSError, KeyError) as exc:
        raise InvalidInput(
            f"results file {source} cannot be read ({exc}); run the Infer step again.",
            details={"field": "results", "path": str(source)},
        ) from exc


def _json_list(values: NDArray[Any]) -> list[float | None]:
    return [_finite(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _compared(r: CentreResults) -> list[tuple[str, NDArray[np.float64]]]:
    """(label, errors in px) of each method: against the truth when known, else the two against each other."""
    if r.centres is None:
        return [("network - least squares", centre_errors(r.predicted, r.fitted))]
    return [
        ("BraggNN", centre_errors(r.predicted, r.centres)),
        ("least squares", centre_errors(r.fitted, r.centres)),
    ]


def _draw_errors(r: CentreResults, compared: list[tuple[str, NDArray[np.float64]]], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    top = max(float(np.percentile(errors, 99)) for _, errors in compared) or 1.0
    bins = np.linspace(0.0, top, _HISTOGRAM_BINS + 1)
    for label, errors in compared:
        axes.hist(
            np.clip(errors, 0, top),
            bins=bins.tolist(),
            histtype="step",
            linewidth=1.8,
            label=f"{label}: mean {errors.mean():.3f} px",
        )
    axes.set_xlabel("centre error (px)" if r.centres is not None else "distance between the methods (px)")
    axes.set_ylabel("patches")
    axes.set_title(f"Peak-centre errors, {r.predicted.shape[0]} patches of {r.source}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")


def _draw_patches(r: CentreResults, path: Path) -> None:
    from matplotlib.figure import Figure

    shown = min(_SHOWN_PATCHES, r.patches.shape[0])
    columns = min(4, shown)
    rows = -(-shown // columns)
    figure = Figure(figsize=(2.2 * columns, 2.3 * rows + 0.4), dpi=100)
    for k in range(shown):
        axes = figure.add_subplot(rows, columns, k + 1)
        axes.imshow(r.patches[k], cmap="gray", interpolation="nearest")
        if r.centres is not None:
            axes.plot(*r.centres[k], "o", markersize=9, markerfacecolor="none", color="lime", label="true")
        axes.plot(*r.predicted[k], "+", markersize=10, color="red", label="BraggNN")
        axes.plot(*r.fitted[k], "x", markersize=8, color="cyan", label="least squares")
        axes.set_xticks([])
        axes.set_yticks([])
        if k == 0:
            axes.legend(fontsize=6, loc="lower left")
    figure.suptitle("Patches with their centres")
    figure.tight_layout()
    figure.savefig(path, format="png")


def _histogram_plot(r: CentreResults, compared: list[tuple[str, NDArray[np.float64]]]) -> dict[str, Any]:
    top = max(float(np.percentile(errors, 99)) for _, errors in compared) or 1.0
    edges = np.linspace(0.0, top, _HISTOGRAM_BINS + 1)
    middles = (edges[:-1] + edges[1:]) / 2
    series = [
        {
            "name": f"{label} (mean {errors.mean():.3f} px)",
            "x": _json_list(middles),
            "y": _json_list(np.histogram(np.clip(errors, 0, top), bins=edges)[0]),
        }
        for label, errors in compared
    ]
    return {
        "title": "Centre error histogram" if r.centres is not None else "Network - least-squares distance",
        "x_label": "error (px)",
        "y_label": "patches",
        "log_x": False,
        "log_y": False,
        "series": series,
    }


def _loss_plot(training: dict[str, Any]) -> dict[str, Any] | None:
    history = [v for v in training.get("loss_history") or [] if isinstance(v, int | float)]
    if not history:
        return None
    return {
        "title": "Training loss per epoch" + ("" if training.get("trained") else " (of the given model)"),
        "x_label": "epoch",
        "y_label": "MSE of normalised centres",
        "log_x": False,
        "log_y": True,
        "series": [{"name": "loss", "x": list(range(1, len(history) + 1)), "y": history}],
    }


def plot(results: str, training: dict[str, Any], output_dir: str) -> dict[str, Any]:
    """Draw ``centre_errors.png`` and ``patches.png`` into ``output_dir`` from a results file.

    Returns ``{"images": [{"name", "caption"}, ...], "plots": [...]}``; the plots are the error histogram
    of both methods and the training loss per epoch (from ``training``, the Train step's summary).
    """
    r = read_centres(_path_argument(results, "results"))
    out = _output_dir(output_dir)
    compared = _compared(r)
    _draw_errors(r, compared, out / ERRORS_PNG)
    _draw_patches(r, out / PATCHES_PNG)
    means = ", ".join(f"{label} {errors.mean():.3f} px" for label, errors in compared)
    what = "against the true centres" if r.centres is not None else "between the network and the fit"
    images = [
        {"name": ERRORS_PNG, "caption": f"Histogram of centre errors {what}: mean {means}."},
        {
            "name": PATCHES_PNG,
            "caption": "The first patches with the true centre (○), BraggNN's (+) and the least-squares "
            "fit's (x).",
        },
    ]
    plots = [_histogram_plot(r, compared)]
    loss = _loss_plot(training if isinstance(training, dict) else {})
    if loss is not None:
        plots.append(loss)
    return {"images": images, "plots": plots}
