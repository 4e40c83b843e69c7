"""The search record of one far-field HEDM peak search, as the portal shows it.

Runs on the ``non_compute`` endpoint after the plots: the scan's metadata and the search's numbers (the
facets: ``n_peaks``, ``recall`` when the scan is synthetic, ``n_grains``, ``omega_range_deg``, ``sample``),
references to the figures and the peak list on the portal collection, the interactive plot data, and the
run id.
"""

from __future__ import annotations

from typing import Any

from beamlink.apps.hedm.inputs import read_scan
from beamlink.apps.records import record_number as _number
from beamlink.apps.records import with_portal_files
from beamlink.errors import InvalidInput

__all__ = ["FACETS", "record_content"]

FACETS: list[dict[str, Any]] = [
    {"field_name": "n_peaks", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 1000}},
    {
        "field_name": "recall",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 1},
        "size": 10,
    },
    {
        "field_name": "n_grains",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 20},
        "size": 20,
    },
    {
        "field_name": "omega_range_deg",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 360},
        "size": 12,
    },
    {"field_name": "sample", "type": "terms"},
]


def record_content(
    scan: str,
    search: dict[str, Any],
    figures: dict[str, Any],
    portal_collection: str,
    portal_dir: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Record content: metadata and numbers, ``images`` and ``files`` (collection references), ``plots``,
    ``thumbnail`` (the first image) and ``run_id``."""
    if not isinstance(search, dict) or not isinstance(figures, dict):
        raise InvalidInput(
            "search and figures must be the dicts the merge and plot steps returned.",
            details={"field": "search"},
        )
    header = read_scan(scan)
    ny, nz = header.frame_shape
    low, high = header.omega_range
    n_peaks = search.get("n_peaks")
    subject = header.sample or header.path.name
    keywords = ["HEDM", "far-field", "peak search", "diffraction"]
    if header.sample:
        keywords.append(header.sample)
    truth = search.get("truth") if isinstance(search.get("truth"), dict) else None
    if truth is not None:
        keywords.append("synthetic")
    content: dict[str, Any] = {
        "title": f"HEDM {header.path.stem}",
        "description": (
            f"Far-field HEDM peak search of {subject}: {n_peaks} peaks in {header.n_frames} frames of "
            f"{ny}x{nz} px over ω = {low:g}…{high:g}°, searched in {search.get('n_blocks')} blocks of frames."
        ),
        "keywords": keywords,
        "technique": "HEDM",
        "sample": header.sample,
        "source_file": header.path.name,
        "frame_height_px": ny,
        "frame_width_px": nz,
        "frame_dtype": header.dtype,
        "n_frames": header.n_frames,
        "omega0_deg": header.omega0,
        "domega_deg": header.domega,
        "omega_min_deg": low,
        "omega_max_deg": high,
        "omega_range_deg": high - low,
        "n_peaks": n_peaks,
        "n_blocks": search.get("n_blocks"),
        "mean_peak_intensity": _number(search.get("mean_intensity")),
    }
    if truth is not None:
        content.update(
            n_true_peaks=truth.get("n_true_peaks"),
            recall=_number(truth.get("recall")),
            precision=_number(truth.get("precision")),
            mean_centroid_error=_number(truth.get("mean_error")),
            n_grains=truth.get("n_grains"),
        )
    with_portal_files(
        content,
        figures=figures,
        portal_collection=portal_collection,
        portal_dir=portal_dir,
        files=[(search.get("peaks_name"), "peaks: ω, y, z centroids, intensity, extent (CSV)", "text/csv")],
        run_id=run_id,
    )
    return {k: v for k, v in content.items() if v is not None}
