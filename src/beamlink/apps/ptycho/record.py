"""The search record of one ptychographic reconstruction, as the portal shows it.

Runs on the ``non_compute`` endpoint after the plots: the summary of the Reconstruct step (scan, engine,
data error, NRMSE against the truth when known) as flat fields the portal's facets use (``nrmse``,
``data_error_log10``, ``iterations``, ``algorithm``, ``scan_points``), references to the figures and the
results file where the flow puts them on the portal collection, the plot data and the run id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from beamlink.apps.records import with_portal_files
from beamlink.apps.step_io import finite as _number
from beamlink.errors import InvalidInput

__all__ = ["FACETS", "reconstruction_metadata", "record_content"]

FACETS: list[dict[str, Any]] = [
    {
        "field_name": "nrmse",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 0.1},
        "size": 10,
    },
    {
        "name": "final data error (log10)",
        "field_name": "data_error_log10",
        "type": "numeric_histogram",
        "histogram_range": {"low": -8, "high": 0},
        "size": 8,
    },
    {"field_name": "iterations", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 500}},
    {"field_name": "algorithm", "type": "terms"},
    {"field_name": "scan_points", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 1000}},
]
"""The portal facets of the ptycho index (FacetRequest documents)."""


def reconstruction_metadata(reconstruction: Mapping[str, Any]) -> dict[str, Any]:
    """Flat record fields from the summary :func:`beamlink.apps.ptycho.steps.reconstruct` returned:
    ``title``, ``description``, ``keywords``, ``technique`` and the numbers the facets use."""
    if not isinstance(reconstruction, Mapping) or "algorithm" not in reconstruction:
        raise InvalidInput(
            "reconstruction must be the dict the Reconstruct step returned (with its 'algorithm', "
            f"'iterations', ...), got {type(reconstruction).__name__}.",
            details={"field": "reconstruction"},
        )
    name = str(reconstruction.get("scan_name") or "scan")
    stem = PurePosixPath(name).stem
    algorithm = str(reconstruction["algorithm"])
    iterations = reconstruction.get("iterations")
    points = reconstruction.get("n_positions")
    first, final = (
        _number(reconstruction.get("initial_data_error")),
        _number(reconstruction.get("final_data_error")),
    )
    nrmse = _number(reconstruction.get("nrmse"))
    refined = bool(reconstruction.get("update_probe"))
    object_shape = list(reconstruction.get("object_shape") or [None, None])
    probe_shape = list(reconstruction.get("probe_shape") or [None, None])
    sample = reconstruction.get("sample")
    subject = str(sample) if sample else name

    keywords = ["ptychography", "coherent diffraction imaging", "phase retrieval", algorithm]
    if refined:
        keywords.append("probe refinement")
    if reconstruction.get("synthetic"):
        keywords.append("synthetic")
    probe = f"{probe_shape[0]}x{probe_shape[1]} px" if probe_shape[0] else "unknown size"
    parts = [
        f"{algorithm} reconstruction of {subject} from {points} diffraction patterns ({probe}), "
        f"{'with probe refinement' if refined else 'known probe'}, {iterations} iterations"
    ]
    if first is not None and final is not None:
        parts.append(f"data error {first:.3g} → {final:.3g}")
    if nrmse is not None:
        removed = "global phase and phase ramp" if refined else "global phase"
        parts.append(f"NRMSE {nrmse:.3g} against the known object ({removed} removed)")
    record: dict[str, Any] = {
        "title": f"Ptychography {stem}",
        "description": "; ".join(parts) + ".",
        "keywords": keywords,
        "technique": "ptychography",
        "source_file": name,
        "algorithm": algorithm,
        "iterations": iterations if isinstance(iterations, int) else None,
        "probe_refined": refined,
        "scan_points": points if isinstance(points, int) else None,
        "initial_data_error": first,
        "final_data_error": final,
        "data_error_log10": math.log10(final) if final is not None and final > 0 else None,
        "nrmse": nrmse,
        "nrmse_scale_only": _number(reconstruction.get("nrmse_scale_only")),
        "truth_known": bool(reconstruction.get("truth_known")),
        "object_height_px": object_shape[0],
        "object_width_px": object_shape[1],
        "probe_size_px": probe_shape[0],
        "photons_per_pattern": _number(reconstruction.get("photons")),
        "reconstruction_seconds": _number(reconstruction.get("seconds")),
        "synthetic": bool(reconstruction.get("synthetic")),
    }
    if sample:
        record["sample"] = str(sample)
    return record


def record_content(
    reconstruction: dict[str, Any],
    figures: dict[str, Any],
    portal_collection: str,
    portal_dir: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Record content: metadata, ``images`` and ``files`` (collection references), ``plots``, ``run_id``."""
    content = reconstruction_metadata(reconstruction)
    caption = "object, probe, data error per iteration and illuminated mask (HDF5)"
    return with_portal_files(
        content,
        figures=figures,
        portal_collection=portal_collection,
        portal_dir=portal_dir,
        files=[(reconstruction.get("results_name"), caption, "application/x-hdf5")],
        run_id=run_id,
    )
