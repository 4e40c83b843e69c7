"""The ptychography app: a scan at the instrument → rPIE at the facility → object and probe in the portal.

States (the 2022 Gladier ptycho flow's shape: transfer, reconstruct, transfer back, plot, publish):

1. ``Names``/``Paths`` work out the dataset name and where its files go on each collection;
2. ``TransferRaw`` copies the scan file from ``local_collection`` to ``remote_collection``;
3. ``Reconstruct`` runs rPIE with probe refinement (or ePIE / DM) on the ``compute`` endpoint and, when the
   scan carries the truth, the comparison (global phase and phase ramp removed, NRMSE);
4. ``Plot`` draws the object and the probe and ``GatherMetadata`` builds the record, on ``non_compute``;
5. ``TransferResults`` copies the results folder to ``portal_collection``;
6. ``Publish`` writes the record to the ``ptycho`` index, whose facets are NRMSE, the final data error,
   the iterations, the algorithm and the number of scan points.

``remote_root`` is the folder behind ``remote_collection`` as the compute endpoint's host sees it.
"""

from __future__ import annotations

from beamlink.apps.app import App
from beamlink.apps.pipeline import LAYOUT, instrument_to_portal, record_inputs
from beamlink.apps.ptycho.inputs import example_scan, is_complete_scan
from beamlink.apps.ptycho.record import FACETS, record_content
from beamlink.apps.ptycho.steps import plot, reconstruct
from beamlink.apps.tools import Compute

__all__ = ["app"]

_reconstruct = Compute(
    name="Reconstruct",
    comment="rPIE with probe refinement, then NRMSE against the truth when known (heavy: compute endpoint)",
    function=reconstruct,
    endpoint="compute",
    inputs={"scan": LAYOUT.work_file, "output_dir": LAYOUT.work_results},
    wait_time=7200,
)

_plot = Compute(
    name="Plot",
    comment="object and probe amplitude and phase as PNG; convergence and phase profile as plot data",
    function=plot,
    endpoint="non_compute",
    inputs={"results": f"{_reconstruct.output}.results", "output_dir": LAYOUT.work_results},
    wait_time=600,
)

_metadata = Compute(
    name="GatherMetadata",
    comment="the search record: reconstruction summary, figures and plot data",
    function=record_content,
    endpoint="non_compute",
    inputs=record_inputs(reconstruction=_reconstruct.output, figures=_plot.output),
    wait_time=600,
)

app = App(
    name="ptycho",
    title="Ptychography: reconstruct, compare and publish",
    description=(
        "Moves a far-field ptychography scan (HDF5: diffraction patterns, scan positions, probe guess) from "
        "the instrument to the facility, reconstructs object and probe with rPIE (or ePIE / DM) on the "
        "compute endpoint, compares the object with the truth when the scan carries it (NRMSE after "
        "removing the global phase and phase ramp), draws amplitude and phase and publishes a search "
        "record with them to the portal."
    ),
    keywords=["ptychography", "rPIE", "phase retrieval"],
    tools=instrument_to_portal(
        prefix="ptycho",
        file_input="scan",
        processing=[_reconstruct, _plot],
        record=_metadata,
        facets=FACETS,
        raw_name="TransferRaw",
        raw_comment="the scan (patterns, positions, probe guess): instrument → facility",
        results_comment="reconstruction and figures: facility → portal",
        publish_comment="the record the portal shows",
    ),
    input_help={
        "scan": "path of the HDF5 scan on the local collection, e.g. incoming/P001.h5",
        "remote_root": "the folder behind the remote collection on the compute endpoint's host",
        "index": "the search index the record goes to",
        "algorithm": "rPIE, ePIE or DM",
        "n_iter": "iterations (sweeps over all scan points)",
        "alpha": "object step size / rPIE weight (null: the engine's default)",
        "beta": "probe step size / rPIE weight (null: the engine's default)",
        "update_probe": "refine the probe from the file's guess (true) or keep it as known (false)",
    },
    file_input="scan",
    file_patterns=("*.h5", "*.hdf5"),
    is_complete=is_complete_scan,
    example=example_scan,
)
