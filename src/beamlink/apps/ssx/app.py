"""The SSX app: a run of stills at the instrument → spots and hits at the facility → the portal.

States (the Kanzus stills flow of the paper, with the DIALS dispersion spot finder in place of
``dials.stills_process``):

1. ``Names``/``Paths`` work out the run's name and where its files go on each collection;
2. ``TransferStills`` copies the run file from ``local_collection`` to ``remote_collection``;
3. ``FindSpots`` finds the spots of every still and classifies hits, on the ``compute`` endpoint;
4. ``Plot`` draws the hit-rate figure and the richest still, ``GatherMetadata`` builds the record, on
   ``non_compute``;
5. ``TransferResults`` copies the results folder to ``portal_collection``;
6. ``Publish`` writes the record (hit rate, spots per still, figures, plot data) to the search index.

``remote_root`` is the folder behind ``remote_collection`` as the compute endpoint's host sees it.
Running twice on one run file replaces its files and its record.
"""

from __future__ import annotations

from pathlib import Path

from beamlink.apps.app import App
from beamlink.apps.pipeline import LAYOUT, instrument_to_portal, record_inputs
from beamlink.apps.ssx.inputs import is_complete_run
from beamlink.apps.ssx.record import FACETS, record_content
from beamlink.apps.ssx.steps import find_spots, plot
from beamlink.apps.tools import Compute

__all__ = ["EXAMPLE_SPOT_COUNTS", "app", "example_run"]

# Spots on each still of the example, repeated: 2 hits (40 spots) in 5 stills, so the hit rate is 0.4 under
# the ≥ 16 rule; the 5-spot stills are misses that still have spots to find.
EXAMPLE_SPOT_COUNTS = (40, 0, 5, 40, 0)


def example_run(folder: Path, *, frames: int = 40, size: int = 128, name: str = "demo-ssx-R001") -> Path:
    """A synthetic run of ``frames`` stills with a known hit rate (0.4) and the spot centres as truth,
    with a masked panel gap and a few hot pixels; written under a temporary name and renamed when whole."""
    from beamlink.apps.ssx.inputs import write_run
    from beamlink.apps.ssx.synthetic import StillConfig, make_stills

    path = folder / f"{name}-{size}px-{frames}f.h5"
    if path.is_file() and is_complete_run(path):
        return path
    counts = [EXAMPLE_SPOT_COUNTS[i % len(EXAMPLE_SPOT_COUNTS)] for i in range(frames)]
    config = StillConfig(shape=(size, size), min_separation_px=10.0, n_hot_pixels=3, panel_gap_px=4)
    stack, truths, mask = make_stills(counts, config=config, seed=11)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    write_run(partial, stack, mask, sample="lysozyme microcrystals (synthetic)", truths=truths)
    partial.rename(path)
    return path


_find_spots = Compute(
    name="FindSpots",
    comment="DIALS dispersion spot finding and hit classification over every still (the compute endpoint)",
    function=find_spots,
    endpoint="compute",
    inputs={"stills": LAYOUT.work_file, "output_dir": LAYOUT.work_results},
    wait_time=7200,
)

_plot = Compute(
    name="Plot",
    comment="spots per still and the running hit rate, and the richest still with its spots, as PNG",
    function=plot,
    endpoint="non_compute",
    inputs={
        "results": f"{_find_spots.output}.results",
        "stills": LAYOUT.work_file,
        "output_dir": LAYOUT.work_results,
    },
    wait_time=600,
)

_metadata = Compute(
    name="GatherMetadata",
    comment="the search record: hit rate, spots per still, truth scores, figures and plot data",
    function=record_content,
    endpoint="non_compute",
    inputs=record_inputs(stills=LAYOUT.work_file, spotfinding=_find_spots.output, figures=_plot.output),
    wait_time=600,
)

app = App(
    name="ssx",
    title="SSX: find spots, classify hits and publish",
    description=(
        "Moves a run of serial-crystallography stills (HDF5 stack with its detector mask) from the "
        "instrument to the facility, finds the spots of every still with the DIALS dispersion threshold on "
        "the compute endpoint, classifies hits (≥ 16 spots), draws the hit-rate figure and publishes a "
        "search record with the hit rate, the spots per still and the figures to the portal."
    ),
    keywords=["ssx", "serial crystallography", "hit finding"],
    tools=instrument_to_portal(
        prefix="ssx",
        file_input="stills",
        processing=[_find_spots, _plot],
        record=_metadata,
        facets=FACETS,
        raw_name="TransferStills",
        raw_comment="the run of stills: instrument → facility",
        results_comment="spot tables, figures: facility → portal",
        publish_comment="the record the portal shows: facets on hit rate, frames, hits, spots, sample",
    ),
    input_help={
        "stills": "path of the HDF5 run of stills on the local collection, e.g. incoming/R001.h5",
        "remote_root": "the folder behind the remote collection on the compute endpoint's host",
        "index": "the search index the record goes to",
        "min_spots": "spots a still needs to be a hit (cctbx.xfel: 16)",
    },
    file_input="stills",
    file_patterns=("*.h5", "*.hdf5"),
    is_complete=is_complete_run,
    example=example_run,
)
