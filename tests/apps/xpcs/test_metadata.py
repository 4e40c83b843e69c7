"""Flat metadata of a measurement file for a search record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beamlink.apps.xpcs.metadata import extract_metadata
from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, write_synthetic_measurement
from beamlink.errors import InvalidInput


def test_metadata_is_flat_json_and_complete(tmp_path: Path) -> None:
    config = SyntheticXpcsConfig(n_frames=64, seed=3)
    path = tmp_path / "run_0001.h5"
    write_synthetic_measurement(path, config)
    record = extract_metadata(path)
    json.dumps(record, allow_nan=False)
    assert all(isinstance(v, str | int | float | bool) for v in record.values())
    assert record["technique"] == "XPCS"
    assert record["file_name"] == "run_0001.h5"
    assert record["file_size_bytes"] == path.stat().st_size
    assert record["n_frames"] == 64
    assert (record["frame_height_px"], record["frame_width_px"]) == (64, 64)
    assert record["frame_dtype"] == "uint32"
    assert record["frame_interval_s"] == pytest.approx(5e-5)
    assert record["duration_s"] == pytest.approx(64 * 5e-5)
    assert record["wavelength_m"] == pytest.approx(1e-10)
    assert record["energy_kev"] == pytest.approx(12.398, rel=1e-4)
    assert record["n_dynamic_bins"] == 12
    assert record["n_static_bins"] == 24
    assert 0 < float(record["q_min_nm-1"]) < float(record["q_max_nm-1"])
    assert record["synthetic"] is True
    assert record["truth_diffusion_nm2_s"] == pytest.approx(4.9e6)
    assert record["sample_name"] == "synthetic Brownian particles"


def test_metadata_of_a_corrupted_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(InvalidInput, match=r"broken\.h5"):
        extract_metadata(path)
