"""The search record of one processed XPCS measurement, as the portal shows it.

Runs on the ``non_compute`` endpoint after the plots are made: the measurement's metadata and the fit
(from :func:`beamlink.apps.xpcs.steps.gather_metadata`) plus references to the figures and the results
file where the flow puts them on the portal collection, the interactive plot data, and the run id.
"""

from __future__ import annotations

from typing import Any

from beamlink.apps.records import with_portal_files
from beamlink.apps.xpcs.steps import gather_metadata

__all__ = ["record_content"]


def record_content(
    measurement: str,
    correlation: dict[str, Any],
    figures: dict[str, Any],
    portal_collection: str,
    portal_dir: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Record content: metadata, ``images`` and ``files`` (collection references), ``plots``, ``run_id``."""
    content = gather_metadata(measurement, correlation)
    return with_portal_files(
        content,
        figures=figures,
        portal_collection=portal_collection,
        portal_dir=portal_dir,
        files=[(correlation.get("results_name"), "g2, fits and D (HDF5)", "application/x-hdf5")],
        run_id=run_id,
    )
