"""The XPCS app: raw measurement at the instrument → g2, fits and plots at the facility → the portal.

States (the paper's tutorial layout, Gladier's XPCS flow without its workarounds):

1. ``Names``/``Paths`` work out the dataset name and where its files go on each collection;
2. ``TransferRaw`` copies the measurement from ``local_collection`` to ``remote_collection``;
3. ``Correlate`` runs the multi-tau correlation and the fits on the ``compute`` endpoint;
4. ``Plot`` draws g2 and Γ(q²) and ``GatherMetadata`` builds the record, on ``non_compute``;
5. ``TransferResults`` copies the results folder to ``portal_collection``;
6. ``Publish`` writes the record (with its figures and plot data) to the search index.

``remote_root`` is the folder behind ``remote_collection`` as the compute endpoint's host sees it
(the functions read and write files there). Running twice on one measurement replaces its files and
its record: the record's subject is the dataset's place on the portal collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beamlink.apps.app import App
from beamlink.apps.pipeline import LAYOUT, instrument_to_portal, record_inputs
from beamlink.apps.tools import Compute
from beamlink.apps.xpcs.record import record_content
from beamlink.apps.xpcs.steps import correlate, plot

__all__ = ["FACETS", "app", "example_measurement", "is_complete_measurement"]


def is_complete_measurement(path: Path) -> bool:
    """Whether an HDF5 file is whole: it opens and its frame stack has every frame it announces."""
    from beamlink.apps.xpcs.measurement import read_measurement
    from beamlink.errors import BeamlinkError

    try:
        read_measurement(path, load_frames=False)
    except (BeamlinkError, OSError):
        return False
    return True


def example_measurement(folder: Path, *, frames: int = 4096, size: int = 64, name: str = "demo-A001") -> Path:
    """A synthetic measurement with a known D (4.9 µm²/s) in ``folder``: written under a temporary name
    and renamed when whole (a watcher never sees half of it); an intact earlier copy is kept."""
    from beamlink.apps.xpcs.synthetic import SyntheticXpcsConfig, write_synthetic_measurement

    path = folder / f"{name}-{size}px-{frames}f.h5"
    if path.is_file() and is_complete_measurement(path):
        return path
    config = SyntheticXpcsConfig(
        shape=(size, size),
        n_frames=frames,
        beam_center_yx_px=(size / 2, size / 2),
        ring_radii_px=(size / 16, size * 7 / 16),
    )
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    write_synthetic_measurement(partial, config)
    partial.rename(path)
    return path


_correlate = Compute(
    name="Correlate",
    comment="multi-tau g2(q, tau), the fit of Gamma per q and of D (heavy: the compute endpoint)",
    function=correlate,
    endpoint="compute",
    inputs={"measurement": LAYOUT.work_file, "output_dir": LAYOUT.work_results},
    wait_time=7200,
)

_plot = Compute(
    name="Plot",
    comment="g2 with its fits and Gamma against q^2, as PNG and as plot data",
    function=plot,
    endpoint="non_compute",
    inputs={"results": f"{_correlate.output}.results", "output_dir": LAYOUT.work_results},
    wait_time=600,
)

_metadata = Compute(
    name="GatherMetadata",
    comment="the search record: metadata, fit, figures and plot data",
    function=record_content,
    endpoint="non_compute",
    inputs=record_inputs(measurement=LAYOUT.work_file, correlation=_correlate.output, figures=_plot.output),
    wait_time=600,
)

FACETS: list[dict[str, Any]] = [
    {"field_name": "keywords", "type": "terms"},
    {"field_name": "sample", "type": "terms"},
    {
        "field_name": "diffusion_nm2_s",
        "type": "numeric_histogram",
        "histogram_range": {"low": 0, "high": 1e7},
        "size": 10,
    },
    {"field_name": "n_frames", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 65536}},
    {"field_name": "frame_rate_hz", "type": "avg"},
]

app = App(
    name="xpcs",
    title="XPCS: correlate, fit and publish",
    description=(
        "Moves an XPCS measurement (HDF5 frame stack with its q map) from the instrument to the facility, "
        "computes multi-tau g2(q, tau) on the compute endpoint, fits Gamma per q and the diffusion "
        "coefficient D, draws the figures and publishes a search record with them to the portal."
    ),
    keywords=["xpcs", "multi-tau", "diffusion"],
    tools=instrument_to_portal(
        prefix="xpcs",
        file_input="measurement",
        processing=[_correlate, _plot],
        record=_metadata,
        facets=FACETS,
        raw_comment="the raw measurement: instrument → facility",
    ),
    input_help={
        "measurement": "path of the HDF5 measurement on the local collection, e.g. incoming/A001.h5",
        "remote_root": "the folder behind the remote collection on the compute endpoint's host",
        "index": "the search index the record goes to",
    },
    file_input="measurement",
    file_patterns=("*.h5", "*.hdf5", "*.hdf"),
    is_complete=is_complete_measurement,
    example=example_measurement,
)
