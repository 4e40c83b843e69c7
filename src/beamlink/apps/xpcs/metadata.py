"""Metadata of a measurement file as one flat, JSON-serialisable dict (the content of a search record).

Only attributes, shapes and the small q maps are read, never the frame stack, so extraction costs the
same for a 10 MB and a 10 GB file. Keys are snake_case with the unit as suffix; values are str, int,
float or bool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from beamlink.apps.xpcs.measurement import FORMAT_NAME, FORMAT_VERSION, read_measurement

__all__ = ["extract_metadata"]

MetadataValue = str | int | float | bool


def extract_metadata(path: str | Path) -> dict[str, MetadataValue]:
    """Flat metadata of an XPCS measurement file (raises InvalidInput for a missing or corrupted file)."""
    source = Path(path)
    m = read_measurement(source, load_frames=False)
    g = m.geometry
    q = m.partition.q[m.partition.mask]
    record: dict[str, MetadataValue] = {
        "technique": "XPCS",
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "file_name": source.name,
        "file_size_bytes": source.stat().st_size,
        "n_frames": m.n_frames,
        "frame_height_px": g.shape[0],
        "frame_width_px": g.shape[1],
        "frame_dtype": m.frame_dtype,
        "frame_interval_s": m.frame_interval_s,
        "frame_rate_hz": 1.0 / m.frame_interval_s,
        "duration_s": m.n_frames * m.frame_interval_s,
        "pixel_size_m": g.pixel_size_m,
        "detector_distance_m": g.distance_m,
        "wavelength_m": g.wavelength_m,
        "energy_kev": g.energy_kev,
        "beam_center_y_px": g.beam_center_yx_px[0],
        "beam_center_x_px": g.beam_center_yx_px[1],
        "n_dynamic_bins": m.partition.n_dynamic,
        "n_static_bins": m.partition.n_static,
        "n_pixels_analysed": int(np.count_nonzero(m.partition.mask)),
        "q_min_nm-1": float(q.min()) if q.size else 0.0,
        "q_max_nm-1": float(q.max()) if q.size else 0.0,
        "synthetic": bool(m.truth),
    }
    for prefix, attrs in (("sample", m.sample), ("truth", m.truth)):
        for key, value in attrs.items():
            record[f"{prefix}_{key}"] = value
    return record
