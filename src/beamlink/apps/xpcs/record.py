"""The search record of one processed XPCS measurement, as the portal shows it.

Runs on the ``non_compute`` endpoint after the plots are made: the measurement's metadata and the fit
(from :func:`beamlink.apps.xpcs.steps.gather_metadata`) plus references to the figures and the results
file where the flow puts them on the portal collection, the interactive plot data, and the run id.
"""

from __future__ import annotations

from typing import Any

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
    base = portal_dir.rstrip("/")
    images = [
        {
            "collection": portal_collection,
            "path": f"{base}/{image['name']}",
            "name": image["name"],
            "caption": image.get("caption"),
            "mimetype": "image/png",
        }
        for image in figures.get("images", [])
    ]
    results_name = correlation.get("results_name")
    files = [*images]
    if isinstance(results_name, str):
        files.append(
            {
                "collection": portal_collection,
                "path": f"{base}/{results_name}",
                "name": results_name,
                "caption": "g2, fits and D (HDF5)",
                "mimetype": "application/x-hdf5",
            }
        )
    content.update(images=images, files=files, plots=figures.get("plots", []))
    if images:
        content["thumbnail"] = images[0]
    if run_id:
        content["run_id"] = run_id
    return content
