"""The HDF5 measurement file: round trip, streaming, and clear errors for missing or damaged files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from beamlink.apps.xpcs.correlate import correlate_g2
from beamlink.apps.xpcs.measurement import iter_frames, read_measurement, write_measurement
from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, make_measurement, write_synthetic_measurement
from beamlink.errors import InvalidInput

SMALL = SyntheticXpcsConfig(
    shape=(32, 32),
    beam_center_yx_px=(16.0, 16.0),
    ring_radii_px=(3.0, 14.0),
    n_dynamic=5,
    n_frames=300,
    seed=7,
)


@pytest.fixture
def measurement_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.h5"
    write_synthetic_measurement(path, SMALL)
    return path


def test_round_trip_keeps_frames_geometry_partition_and_truth(tmp_path: Path) -> None:
    measurement, truth = make_measurement(SMALL)
    assert measurement.frames is not None
    path = write_measurement(
        tmp_path / "x.h5",
        measurement.frames,
        geometry=measurement.geometry,
        frame_interval_s=measurement.frame_interval_s,
        partition=measurement.partition,
        sample=measurement.sample,
        truth=measurement.truth,
    )
    back = read_measurement(path)
    assert back.frames is not None
    np.testing.assert_array_equal(back.frames, measurement.frames)
    assert back.frame_dtype == "uint32"
    assert back.geometry == measurement.geometry
    assert back.frame_interval_s == measurement.frame_interval_s
    np.testing.assert_array_equal(back.partition.sqmap, measurement.partition.sqmap)
    np.testing.assert_array_equal(back.partition.dqmap, measurement.partition.dqmap)
    np.testing.assert_array_equal(back.partition.q, measurement.partition.q)
    assert back.truth["diffusion_nm2_s"] == truth.diffusion_nm2_s
    assert back.sample["name"] == "synthetic Brownian particles"


def test_streamed_file_equals_the_in_memory_generator(measurement_file: Path) -> None:
    in_memory, _ = make_measurement(SMALL)
    batches = list(iter_frames(measurement_file, batch_frames=64))
    assert [b.shape[0] for b in batches] == [64, 64, 64, 64, 44]
    np.testing.assert_array_equal(np.concatenate(batches), in_memory.frames)
    header = read_measurement(measurement_file, load_frames=False)
    assert header.frames is None
    assert header.n_frames == 300
    streamed = correlate_g2(
        iter_frames(measurement_file, batch_frames=50),
        header.partition,
        frame_interval_s=header.frame_interval_s,
    )
    assert in_memory.frames is not None
    whole = correlate_g2(in_memory.frames, in_memory.partition, frame_interval_s=in_memory.frame_interval_s)
    np.testing.assert_allclose(streamed.g2, whole.g2, rtol=1e-12)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.h5"
    with pytest.raises(InvalidInput, match="does not exist") as info:
        read_measurement(path)
    assert info.value.details["path"] == str(path)


def test_non_hdf5_and_truncated_files_are_reported_as_corrupted(
    tmp_path: Path, measurement_file: Path
) -> None:
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(measurement_file.read_bytes()[:2000])
    for path in (garbage, truncated):
        with pytest.raises(InvalidInput, match="corrupted or truncated") as info:
            read_measurement(path)
        assert str(path) in info.value.message
        assert info.value.details["field"] == "path"


def test_missing_dataset_is_named(measurement_file: Path) -> None:
    with h5py.File(measurement_file, "a") as f:
        del f["entry/qmap/sqmap"]
    with pytest.raises(InvalidInput, match="/entry/qmap/sqmap") as info:
        read_measurement(measurement_file)
    assert str(measurement_file) in info.value.message
    assert info.value.details["dataset"] == "/entry/qmap/sqmap"


def test_damaged_frame_chunk_is_caught_by_its_checksum(measurement_file: Path) -> None:
    with h5py.File(measurement_file, "r") as f:
        offset = f["entry/data/frames"].id.get_chunk_info(1).byte_offset
    with measurement_file.open("r+b") as raw:
        raw.seek(offset + 100)
        raw.write(b"\xff" * 16)
    read_measurement(measurement_file, load_frames=False)  # metadata is intact
    with pytest.raises(InvalidInput, match="corrupted") as info:
        read_measurement(measurement_file)
    assert info.value.details["dataset"] == "/entry/data/frames"
    assert str(measurement_file) in info.value.message
    with pytest.raises(InvalidInput, match="/entry/data/frames"):
        list(iter_frames(measurement_file))


def test_foreign_hdf5_and_missing_metadata_are_refused(tmp_path: Path, measurement_file: Path) -> None:
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.zeros((2, 4, 4))
    with pytest.raises(InvalidInput, match="not a beamlink XPCS measurement"):
        read_measurement(foreign)
    with h5py.File(measurement_file, "a") as f:
        del f["entry/instrument"].attrs["wavelength_m"]
    with pytest.raises(InvalidInput, match="wavelength_m") as info:
        read_measurement(measurement_file)
    assert info.value.details["missing"] == ["wavelength_m"]


def test_writer_refuses_bad_frames(tmp_path: Path) -> None:
    measurement, _ = make_measurement(SMALL)
    kwargs = {
        "geometry": measurement.geometry,
        "frame_interval_s": measurement.frame_interval_s,
        "partition": measurement.partition,
    }
    with pytest.raises(InvalidInput, match="shape"):
        write_measurement(tmp_path / "a.h5", np.ones((3, 8, 8)), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="empty"):
        write_measurement(tmp_path / "b.h5", iter([]), **kwargs)  # type: ignore[arg-type]
