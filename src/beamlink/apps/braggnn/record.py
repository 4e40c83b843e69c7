"""The search record of one BraggNN run, as the portal shows it.

Runs on the ``non_compute`` endpoint after the plots: the Train and Infer summaries as flat fields the
portal's facets use (``mean_error_px`` of the network, ``fit_error_px`` of least squares, ``speedup``,
``n_patches``, ``model_source``), references to the figures, the model and the results file where the flow
puts them on the portal collection, the plot data and the run id.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from beamlink.apps.records import with_portal_files
from beamlink.apps.step_io import finite as _number
from beamlink.errors import InvalidInput

__all__ = ["FACETS", "record_content", "run_metadata"]

FACETS: list[dict[str, Any]] = [
    {
        "field_name": "mean_error_px",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 0.5},
        "size": 10,
    },
    {
        "field_name": "fit_error_px",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 0.1},
        "size": 10,
    },
    {"field_name": "speedup", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 100}},
    {"field_name": "n_patches", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 10000}},
    {"field_name": "model_source", "type": "terms"},
]
"""The portal facets of the braggnn index (FacetRequest documents)."""


def _stat(summary: object, key: str) -> float | None:
    return _number(summary.get(key)) if isinstance(summary, Mapping) else None


def run_metadata(training: Mapping[str, Any], inference: Mapping[str, Any], data_name: str) -> dict[str, Any]:
    """Flat record fields from the summaries the Train and Infer steps returned."""
    for name, value, key in (("training", training, "model"), ("inference", inference, "n_patches")):
        if not isinstance(value, Mapping) or key not in value:
            raise InvalidInput(
                f"{name} must be the dict the {'Train' if name == 'training' else 'Infer'} step returned, "
                f"got {type(value).__name__}.",
                details={"field": name},
            )
    nn, fit = inference.get("nn"), inference.get("fit")
    mean, fit_mean = _stat(nn, "mean"), _stat(fit, "mean")
    speedup = _number(inference.get("speedup"))
    n = inference.get("n_patches")
    trained = bool(training.get("trained"))
    epochs, n_train = training.get("epochs"), training.get("n_train")
    how = f"trained here on {n_train} patches for {epochs} epochs" if trained else "a given model"
    parts = [f"BraggNN ({how}) located {n} Bragg peaks"]
    if mean is not None and fit_mean is not None:
        parts.append(
            f"mean centre error {mean:.3f} px, against {fit_mean:.3f} px for the least-squares "
            "pseudo-Voigt fit"
        )
    else:
        deviation = _stat(inference.get("nn_fit_deviation"), "mean")
        if deviation is not None:
            parts.append(f"{deviation:.3f} px from the least-squares pseudo-Voigt fit on average")
    nn_rate, fit_rate = (
        _number(inference.get("nn_patches_per_s")),
        _number(inference.get("fit_patches_per_s")),
    )
    if speedup is not None and nn_rate is not None and fit_rate is not None:
        parts.append(
            f"inference {speedup:.1f} times faster than fitting ({nn_rate:,.0f} vs {fit_rate:,.0f} patches/s)"
        )
    keywords = ["BraggNN", "Bragg peak", "peak localisation", "deep learning", "pseudo-Voigt", "HEDM"]
    history = [v for v in training.get("loss_history") or [] if isinstance(v, int | float)]
    return {
        "title": f"BraggNN {PurePosixPath(data_name).stem}",
        "description": "; ".join(parts) + ".",
        "keywords": keywords,
        "technique": "BraggNN",
        "source_file": data_name,
        "n_patches": n if isinstance(n, int) else None,
        "patch_size": training.get("patch_size"),
        "truth_known": bool(inference.get("truth_known")),
        "mean_error_px": mean,
        "p95_error_px": _stat(nn, "p95"),
        "fit_error_px": fit_mean,
        "fit_p95_error_px": _stat(fit, "p95"),
        "nn_fit_deviation_px": _stat(inference.get("nn_fit_deviation"), "mean"),
        "centre_baseline_px": _number(inference.get("centre_baseline_px")),
        "speedup": speedup,
        "nn_patches_per_s": nn_rate,
        "fit_patches_per_s": fit_rate,
        "fit_converged": inference.get("fit_converged"),
        "model_trained": trained,
        "model_source": "trained" if trained else "given",
        "training_patches": n_train if trained else None,
        "training_epochs": epochs if trained else None,
        "training_seconds": _number(training.get("seconds")),
        "final_training_loss": history[-1] if history else None,
        "n_parameters": training.get("n_parameters"),
        "device": inference.get("device"),
    }


def record_content(
    data: str,
    training: dict[str, Any],
    inference: dict[str, Any],
    figures: dict[str, Any],
    portal_collection: str,
    portal_dir: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Record content: metadata, ``images`` and ``files`` (collection references), ``plots``, ``run_id``.

    ``data`` is the peak file's path (only its name is used)."""
    content = run_metadata(training, inference, PurePosixPath(str(data)).name)
    return with_portal_files(
        content,
        figures=figures,
        portal_collection=portal_collection,
        portal_dir=portal_dir,
        files=[
            (
                inference.get("results_name"),
                "network and least-squares centres, true centres and patches (HDF5)",
                "application/x-hdf5",
            ),
            (
                training.get("model_name"),
                "the BraggNN model (torch state_dict with its architecture header)",
                "application/octet-stream",
            ),
        ],
        run_id=run_id,
    )
