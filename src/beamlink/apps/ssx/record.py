"""The search record of one processed SSX run, as the portal shows it.

Runs on the ``non_compute`` endpoint after the plots: the run's metadata and hit-finding numbers (the
facets: ``hit_rate``, ``n_frames``, ``n_hits``, ``mean_spots_per_frame``, ``sample``), the scores against
the generator's truth when the file has one (``recall``, ``precision``, ``hit_accuracy``), references to
the figures and the results file on the portal collection, the interactive plot data, and the run id.
"""

from __future__ import annotations

from typing import Any

from beamlink.apps.records import record_number as _number
from beamlink.apps.records import with_portal_files
from beamlink.apps.ssx.inputs import read_run
from beamlink.errors import InvalidInput

__all__ = ["FACETS", "record_content"]

FACETS: list[dict[str, Any]] = [
    {
        "field_name": "hit_rate",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 1},
        "size": 10,
    },
    {"field_name": "n_frames", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 10000}},
    {"field_name": "n_hits", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 10000}},
    {
        "field_name": "mean_spots_per_frame",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 200},
        "size": 10,
    },
    {"field_name": "sample", "type": "terms"},
]


def record_content(
    stills: str,
    spotfinding: dict[str, Any],
    figures: dict[str, Any],
    portal_collection: str,
    portal_dir: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Record content: metadata and numbers, ``images`` and ``files`` (collection references),
    ``plots``, ``thumbnail`` (the first image) and ``run_id``."""
    if not isinstance(spotfinding, dict) or not isinstance(figures, dict):
        raise InvalidInput(
            "spotfinding and figures must be the dicts the find_spots and plot steps returned.",
            details={"field": "spotfinding"},
        )
    run = read_run(stills)
    height, width = run.frame_shape
    n_frames, n_hits = spotfinding.get("n_frames"), spotfinding.get("n_hits")
    hit_rate = _number(spotfinding.get("hit_rate"))
    mean_spots = _number(spotfinding.get("mean_spots_per_frame"))
    subject = run.sample or run.path.name
    keywords = ["SSX", "serial crystallography", "spot finding", "hit finding"]
    if run.sample:
        keywords.append(run.sample)
    truth = spotfinding.get("truth") if isinstance(spotfinding.get("truth"), dict) else None
    if truth is not None:
        keywords.append("synthetic")
    description = (
        f"SSX of {subject}: {n_hits} hits in {n_frames} stills of {height}x{width} px "
        f"(hit rate {hit_rate:.1%}, ≥ {spotfinding.get('min_spots')} spots a hit), "
        f"{mean_spots:.1f} spots per still on average."
        if hit_rate is not None and mean_spots is not None
        else f"SSX of {subject}: {run.n_frames} stills of {height}x{width} px."
    )
    content: dict[str, Any] = {
        "title": f"SSX {run.path.stem}",
        "description": description,
        "keywords": keywords,
        "technique": "SSX",
        "sample": run.sample,
        "source_file": run.path.name,
        "frame_height_px": height,
        "frame_width_px": width,
        "frame_dtype": run.dtype,
        "has_mask": run.mask is not None,
        "n_frames": n_frames,
        "n_hits": n_hits,
        "hit_rate": hit_rate,
        "n_rejected": spotfinding.get("n_rejected"),
        "mean_spots_per_frame": mean_spots,
        "mean_spots_per_hit": _number(spotfinding.get("mean_spots_per_hit")),
        "min_spots": spotfinding.get("min_spots"),
        "spotfinding_seconds": _number(spotfinding.get("seconds")),
        "frames_per_s": _number(spotfinding.get("frames_per_s")),
    }
    if truth is not None:
        for key in ("recall", "precision", "hit_accuracy", "true_hit_rate", "mean_centroid_error_px"):
            content[key] = _number(truth.get(key))
    with_portal_files(
        content,
        figures=figures,
        portal_collection=portal_collection,
        portal_dir=portal_dir,
        files=[
            (
                spotfinding.get("results_name"),
                "spots and hit flags of every still (HDF5)",
                "application/x-hdf5",
            )
        ],
        run_id=run_id,
    )
    return {k: v for k, v in content.items() if v is not None}
